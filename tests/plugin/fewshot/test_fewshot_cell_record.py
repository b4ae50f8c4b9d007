"""A grid cell's record (metrics.json): the committed results of earlier versions read, and write back the same."""

import json
from pathlib import Path

import pytest

from genemask_plugin.fewshot.cell_record import (
    CellRecord,
    read_cell_record,
    read_cell_records,
    write_cell_record,
)

RESULTS = Path(__file__).resolve().parents[3] / "docs" / "results"
COMMITTED = sorted(RESULTS.glob("**/metrics.json"))


def test_there_are_committed_records_of_both_methods_and_older_versions():
    kinds = {tuple(json.loads(path.read_text())) for path in COMMITTED}
    assert len(COMMITTED) > 1000
    assert any("pooling" in kind for kind in kinds)  # probe
    assert any("method" in kind and "pooling" not in kind for kind in kinds)  # finetune
    assert any("method" not in kind for kind in kinds)  # finetune before method/draw existed


@pytest.mark.parametrize("path", COMMITTED[::50], ids=lambda p: str(p.relative_to(RESULTS)))
def test_a_committed_record_reads_and_writes_back_byte_for_byte(path):
    text = path.read_text()
    record = read_cell_record(path)
    assert record is not None
    data = json.loads(text)
    written = {name: value for name, value in record.to_json().items() if name in data}
    assert json.dumps(written, indent=2) + "\n" == text  # same values, same key order
    if "method" not in data:  # written before probes and draws existed
        assert (record.method, record.draw, record.headline) == ("finetune", "file", "accuracy")


def test_every_committed_record_is_read_and_found(tmp_path):
    records = read_cell_records(RESULTS, any_depth=True)
    assert len(records) == len(COMMITTED)
    assert {r.method for r in records} == {"finetune", "probe"}
    assert read_cell_records(RESULTS) == []  # a results folder's own grid only: none at the top


def record(method, **extra):
    return CellRecord("genemask@1", "Prom-core", 10, 2, {"accuracy": 0.5, "macro_f1": 0.4, "mcc": None,
                      "auroc": 0.6}, {"0": 10, "1": 10}, 20, 100, 3, {"0": 60, "1": 40}, 1.5, {"arch": None},
                      method=method, draw="per-class", headline="mcc", **extra)


def test_method_fields_are_written_by_their_method_only(tmp_path):
    finetune = record("finetune", updates=80).to_json()
    probe = record("probe", pooling="mean", probe_C=1.0).to_json()
    assert list(finetune) == ["checkpoint", "dataset", "shots", "seed", "metrics", "train_per_class", "n_train",
                              "n_test", "excluded_overlap", "predicted_per_class", "updates", "headline", "method",
                              "draw", "seconds", "settings"]
    assert [k for k in probe if k not in finetune] == ["pooling", "probe_C"] and "updates" not in probe
    write_cell_record(tmp_path / "cells" / "a" / "b" / "10" / "seed2" / "metrics.json", record("probe", pooling="bos",
                                                                                             probe_C=1.0))
    assert read_cell_records(tmp_path) == [record("probe", pooling="bos", probe_C=1.0)]


def test_what_is_not_a_record_reads_as_an_unfinished_cell(tmp_path):
    path = tmp_path / "metrics.json"
    assert read_cell_record(path) is None  # missing
    for text in ("{", "[]", json.dumps({"checkpoint": "x", "dataset": "y"})):
        path.write_text(text)
        assert read_cell_record(path) is None
    with pytest.raises(ValueError, match="missing shots, seed"):
        CellRecord.from_json({"checkpoint": "x", "dataset": "y"})
