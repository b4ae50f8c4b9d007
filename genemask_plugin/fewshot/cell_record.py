"""A grid cell's result: one record, written as the cell's ``metrics.json`` once the cell is finished.

The record is written last, atomically, by :func:`.cell_runner.run_cell`, so its presence marks a
finished cell. The resumable grid compares its ``settings`` with the cell's; the summary
(:mod:`.grid_summary`) and the statistics (:mod:`.statistics`) read every record under a results
folder. Records written before a field existed are read with the value that field stood for
then: ``method`` ``finetune``, ``draw`` ``file``, ``headline`` ``accuracy``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

from genemask_preprocess.atomic_output import atomic_file

CELL_RECORD_FILE = "metrics.json"
CELL_PATTERN = "cells/*/*/*/seed*/" + CELL_RECORD_FILE
"""Where a grid's records lie under its results folder: ``cells/<checkpoint>/<dataset>/<shots>/seed<S>/``."""
_METHOD_FIELDS = ("updates", "pooling", "probe_C")
"""Written only by the method they belong to (absent, not null, in the other's records)."""


@dataclass(frozen=True)
class CellRecord:
    """What one (checkpoint, dataset, shots, seed) cell scored, and the settings it ran with."""

    checkpoint: str
    """The checkpoint's label (``STRATEGY@SEED`` in a multi-seed experiment)."""
    dataset: str
    shots: int
    seed: int
    metrics: dict[str, float | None]
    """Accuracy, macro-F1, MCC and AUROC on the test set (``None`` where undefined)."""
    train_per_class: dict[str, int]
    n_train: int
    n_test: int
    excluded_overlap: int
    """Test sequences left out because the training file holds them too."""
    predicted_per_class: dict[str, int]
    seconds: float
    settings: dict
    """What a rerun must match to skip this cell (:func:`.grid_plan.cell_settings`)."""
    method: str = "finetune"
    draw: str = "file"
    headline: str = "accuracy"
    """The metric tables lead with (``mcc`` for GUE data)."""
    updates: int | None = None
    """Fine-tuning updates (``finetune`` only)."""
    pooling: str | None = None
    """Embedding pooling (``probe`` only)."""
    probe_C: float | None = None
    """The regression's inverse L2 strength (``probe`` only)."""

    def to_json(self) -> dict:
        """The ``metrics.json`` content, keys in the order the grid has always written them."""
        order = ("checkpoint", "dataset", "shots", "seed", "metrics", "train_per_class", "n_train", "n_test",
                 "excluded_overlap", "predicted_per_class", "updates", "headline", "method", "draw", "pooling",
                 "probe_C", "seconds", "settings")
        values = {name: getattr(self, name) for name in order}
        return {name: value for name, value in values.items() if not (name in _METHOD_FIELDS and value is None)}

    @classmethod
    def from_json(cls, data: dict) -> CellRecord:
        """A record from ``metrics.json`` content; ``ValueError`` if a field without a default is missing."""
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        fields = dataclasses.fields(cls)
        missing = [f.name for f in fields if f.default is dataclasses.MISSING and f.name not in data]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        return cls(**{f.name: data[f.name] for f in fields if f.name in data})


def write_cell_record(path: str | os.PathLike, record: CellRecord) -> None:
    with atomic_file(path) as handle:
        handle.write(json.dumps(record.to_json(), indent=2) + "\n")


def read_cell_record(path: str | os.PathLike) -> CellRecord | None:
    """The record at ``path``; ``None`` if there is none or it is not one (the cell is then unfinished)."""
    try:
        return CellRecord.from_json(json.loads(Path(path).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def read_cell_records(results: str | os.PathLike, any_depth: bool = False) -> list[CellRecord]:
    """Every finished cell's record of the grid in ``results`` (``any_depth``: of every grid below it)."""
    paths = Path(results).glob(("**/" if any_depth else "") + CELL_PATTERN)
    return [record for record in map(read_cell_record, sorted(paths)) if record is not None]
