"""GUE-format datasets in genemask-fewshot: prepare (dev as valid, --truncate), dev selection, round trip."""

import csv
import json
from pathlib import Path

import pytest

from genemask_plugin.checkpoints import LAST_CHECKPOINT
from genemask_plugin.fewshot.cli import main
from genemask_plugin.fewshot.finetune import (
    BEST_CHECKPOINT,
    fairseq_train_args,
    final_checkpoint_name,
    selection_metric,
)
from genemask_plugin.fewshot.grid_plan import (
    GridConfig,
    cell_settings,
    parse_checkpoint_spec,
    plan_cells,
)
from genemask_plugin.fewshot.gue import fit_sequence, max_bases
from genemask_plugin.fewshot.prepare import FewshotDataError, PreparedData, prepare_fewshot_data
from genemask_preprocess.formats.fairseq_dictionary import write_kmer_dictionary
from genemask_preprocess.formats.indexed_dataset import read_indexed_dataset

GUE = Path(__file__).resolve().parents[2] / "data" / "gue_prom_core"


@pytest.fixture
def dict6(tmp_path):
    path = tmp_path / "dict.txt"
    write_kmer_dictionary(path, 6)
    return path


def csv_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_gue_folder_becomes_train_valid_test(tmp_path, dict6):
    prepared = prepare_fewshot_data(GUE, dict6, tmp_path / "out")
    assert prepared.source_format == "gue" and prepared.headline_metric == "mcc"
    assert {name: s.rows for name, s in prepared.splits.items()} == {"train": 100, "valid": 40, "test": 60}
    assert prepared.splits["valid"].source == str((GUE / "dev.csv").resolve())
    # each item is the sequence's 65 6-mers + </s>, ids from the dictionary
    tokens, sizes = read_indexed_dataset(tmp_path / "out" / "input0" / "valid")
    first = csv_rows(GUE / "dev.csv")[0]["sequence"]
    assert sizes[0] == len(first) - 6 + 2
    assert PreparedData.load(tmp_path / "out").headline_metric == "mcc"


@pytest.mark.parametrize("mode, expected", [("start", "ACGTACGTAC"[:8]), ("centre", "ACGTACGTAC"[1:9])])
def test_truncate_keeps_the_start_or_the_centre(mode, expected):
    # 10 bases, k = 3, 8 positions: 6 k-mers + <s> + </s> -> at most 8 bases
    assert max_bases(8, 3) == 8
    assert fit_sequence("ACGTACGTAC", 3, 8, mode) == (expected, True)
    assert fit_sequence("ACGTACGT", 3, 8, None) == ("ACGTACGT", False)


def test_too_long_without_truncate_is_a_one_line_error(tmp_path, dict6, capsys):
    out = tmp_path / "out"
    assert main(["prepare", str(GUE), "--dict", str(dict6), "--out", str(out), "--max-positions", "40"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train.csv line 2: 70 bases give 67 tokens" in err
    assert "--truncate start or --truncate centre" in err and not out.exists()
    assert main(["prepare", str(GUE), "--dict", str(dict6), "--out", str(out), "--max-positions", "40",
                 "--truncate", "centre"]) == 0
    # --max-positions counts <s> and </s>, and so does the report
    assert "test: 60 sequences (0: 30, 1: 30), up to 40 tokens with <s> and </s>, 60 truncated (centre)" in capsys.readouterr().out
    meta = json.loads((out / "fewshot.json").read_text())
    assert meta["truncate"] == "centre" and meta["splits"]["train"]["max_tokens"] == 39  # 38 6-mers + </s>


def test_dev_csv_without_header_leaves_nothing(tmp_path, dict6, capsys):
    folder = tmp_path / "gue"
    folder.mkdir()
    for name in ("train.csv", "test.csv"):
        (folder / name).write_bytes((GUE / name).read_bytes())
    (folder / "dev.csv").write_text("".join((GUE / "dev.csv").read_text().splitlines(True)[1:]))
    assert main(["prepare", str(folder), "--dict", str(dict6), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "dev.csv: expected a header 'sequence,label'" in err
    assert not (tmp_path / "out").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["dict.txt", "gue"]


def test_folder_without_train_csv_and_extra_files_are_errors(tmp_path, dict6):
    with pytest.raises(FewshotDataError, match="folder without train.csv"):
        prepare_fewshot_data(tmp_path, dict6, tmp_path / "out")
    with pytest.raises(FewshotDataError, match="do not pass --valid or --test"):
        prepare_fewshot_data(GUE, dict6, tmp_path / "out", test=GUE / "test.csv")


def gue_copy(tmp_path, *names, renamed=None):
    """A GUE folder holding copies of the fixture's ``names``, and ``renamed`` {new name: fixture file}."""
    folder = tmp_path / "gue"
    folder.mkdir()
    for name in names:
        (folder / name).write_bytes((GUE / name).read_bytes())
    for new, old in (renamed or {}).items():
        (folder / new).write_bytes((GUE / old).read_bytes())
    return folder


@pytest.mark.parametrize("names, renamed, named", [
    (("train.csv", "dev.csv"), None, "test.csv: no such file"),
    (("dev.csv", "test.csv"), {"training.csv": "train.csv"}, "train.csv"),  # not a GUE folder at all
    (("train.csv", "test.csv"), {"valid.csv": "dev.csv"}, "valid.csv: not a GUE split (rename it dev.csv)"),
    (("train.csv", "dev.csv", "test.csv"), {"train_2.csv": "train.csv"}, "train_2.csv: not a GUE split"),
    (("train.csv", "test.csv"), None, "dev.csv: no such file"),
])
def test_a_gue_folder_missing_a_split_or_holding_another_table_is_refused(tmp_path, dict6, capsys, names, renamed,
                                                                          named):
    folder = gue_copy(tmp_path, *names, renamed=renamed)
    assert main(["prepare", str(folder), "--dict", str(dict6), "--out", str(tmp_path / "out")]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("genemask-fewshot: error: ") and named in line, line
    assert not (tmp_path / "out").exists()


def test_no_dev_prepares_a_gue_folder_without_dev_csv(tmp_path, dict6, capsys):
    folder = gue_copy(tmp_path, "train.csv", "test.csv")
    assert main(["prepare", str(folder), "--dict", str(dict6), "--out", str(tmp_path / "out")]) == 1
    assert "pass --no-dev" in capsys.readouterr().err
    assert main(["prepare", str(folder), "--dict", str(dict6), "--out", str(tmp_path / "out"), "--no-dev"]) == 0
    assert set(PreparedData.load(tmp_path / "out").splits) == {"train", "test"}  # no model selection


def test_no_dev_is_explicit_even_when_dev_csv_exists(tmp_path, dict6):
    assert set(prepare_fewshot_data(GUE, dict6, tmp_path / "out", dev=False).splits) == {"train", "test"}


def test_grid_refuses_a_gue_folder_without_dev_csv_before_any_cell(tmp_path, dict6, capsys):
    folder = gue_copy(tmp_path, "train.csv", "test.csv")
    args = ["grid", "--checkpoint", "scratch=none", "--datasets", folder.name, "--shots", "50", "--seeds", "1",
            "--fewshot-root", str(folder.parent), "--dict", str(dict6), "--out", str(tmp_path / "results")]
    assert main(args) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert f"{folder / 'dev.csv'}: no such file" in line and "--no-dev" in line
    assert not (tmp_path / "results").exists()


def test_grid_no_dev_plans_and_prepares_gue_cells_without_dev_csv(tmp_path, dict6):
    from genemask_plugin.fewshot.cell_runner import prepared_data

    folder = gue_copy(tmp_path, "train.csv", "test.csv")
    config = GridConfig(checkpoints=[parse_checkpoint_spec("none")], datasets=[folder.name], shots=[50], seeds=[1],
                        out=tmp_path / "results", roots=[tmp_path], dev=False)
    (cell,) = plan_cells(config)
    assert cell.files.gue and not cell.files.dev and cell.files.test == folder / "test.csv"
    assert cell_settings(config, cell, dict6)["no_dev"] is True  # a cell finished with dev.csv is not reused
    assert set(prepared_data(config, cell, dict6).splits) == {"train", "test"}


def test_dev_split_selects_the_model_by_mcc():
    common = dict(checkpoint=None, shots=50, seed=1, n_train=100, num_classes=2)
    plain = fairseq_train_args("d", "s", **common)
    assert "--disable-validation" in plain and final_checkpoint_name(plain) == LAST_CHECKPOINT
    selected = fairseq_train_args("d", "s", valid_metric=selection_metric(["0", "1"], True), **common)
    assert "--disable-validation" not in selected and final_checkpoint_name(selected) == BEST_CHECKPOINT
    joined = " ".join(selected)
    assert "--valid-subset valid --best-checkpoint-metric mcc --maximize-best-checkpoint-metric --report-mcc" in joined
    assert selection_metric(["neg", "pos"], True) == "accuracy"  # fairseq's MCC parses labels as integers
    assert selection_metric(["0", "1"], False) is None


@pytest.mark.slow
def test_gue_round_trip_prepare_finetune_evaluate(tmp_path, dict6, capsys, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    data, run = tmp_path / "data", tmp_path / "ft"
    assert main(["prepare", str(GUE), "--dict", str(dict6), "--out", str(data)]) == 0
    assert main(["finetune", "none", str(data), "--shots", "50", "--out", str(run), "--epochs", "2"]) == 0
    assert f"fine-tuned model: {run / BEST_CHECKPOINT}" in capsys.readouterr().out
    log = (run / "train.log").read_text()
    assert log.count("valid on 'valid' subset") == 2 and "best_mcc" in log  # dev scored every epoch
    assert main(["evaluate", str(run / BEST_CHECKPOINT), str(data)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("test (60 sequences): MCC ")  # the headline for GUE data
    metrics = json.loads(out.splitlines()[-1])
    assert set(metrics) == {"accuracy", "macro_f1", "mcc", "auroc"}
    assert all(isinstance(value, float) for value in metrics.values())
    written = json.loads((run / "test_metrics.json").read_text())
    assert written["n"] == 60 and written["mcc"] == pytest.approx(metrics["mcc"])


@pytest.mark.slow
def test_grid_runs_a_gue_folder_and_leads_with_mcc(tmp_path, dict6, capsys, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    results = tmp_path / "results"
    args = ["grid", "--checkpoint", "scratch=none", "--datasets", GUE.name, "--shots", "50", "--seeds", "1",
            "--fewshot-root", str(GUE.parent), "--dict", str(dict6), "--max-updates", "4", "--out",
            str(results), "--no-progress"]
    assert main(args) == 0
    capsys.readouterr()
    cell = results / "cells" / "scratch" / GUE.name / "50" / "seed1"
    record = json.loads((cell / "metrics.json").read_text())
    assert record["n_train"] == 100 and record["n_test"] == 60 and record["headline"] == "mcc"
    assert "valid on 'valid' subset" in (cell / "train.log").read_text()  # dev selects the model
    header = (results / "summary.md").read_text().splitlines()[0]
    assert header.startswith("| dataset | shots | per class | checkpoint | MCC | accuracy |")
    assert main(args) == 0  # finished: skipped on a rerun
    assert "0 cells run, 1 already finished" in capsys.readouterr().out
