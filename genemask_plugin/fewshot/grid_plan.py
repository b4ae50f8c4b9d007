"""What a few-shot grid is: its settings, its cells, where each cell's files go, when a cell is finished.

A cell is one (checkpoint, dataset, shots, seed); :func:`plan_cells` resolves every cell's files
before anything runs. Layout under the results folder ``RESULTS``::

    cells/<checkpoint>/<dataset>/<shots>/data/          prepared once per (checkpoint, dataset, shots)
    cells/<checkpoint>/<dataset>/<shots>/seed<S>/       the cell: train.log, test_predictions.tsv,
                                                        metrics.json (--draw per-class: also its own data/)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..models.defaults import DEFAULT_ARCH
from .cell_record import CELL_RECORD_FILE, read_cell_record
from .finetune_recipe import paper_recipe
from .prepare import FewshotDataError
from .protocol import DRAW_MODES, CellFiles, resolve_cell_files

SCRATCH = "none"
"""The checkpoint argument that means "no pretrained checkpoint" (train from scratch, or a random encoder)."""
METHODS = ("finetune", "probe")


def checkpoint_argument(text: str) -> Path | None:
    """A checkpoint given on the command line: its path, or ``None`` for ``none``."""
    return None if text.strip().lower() == SCRATCH else Path(text)


@dataclass(frozen=True)
class CheckpointSpec:
    label: str
    path: Path | None
    """None: train from scratch."""


def parse_checkpoint_spec(text: str) -> CheckpointSpec:
    """``LABEL=PATH``, ``PATH`` or ``none`` (from scratch); ``LABEL=none`` names the baseline."""
    label, sep, path = text.partition("=")
    if not sep or Path(text).exists():
        label, path = "", text
    label = label.strip()
    checkpoint = checkpoint_argument(path.strip())
    if checkpoint is None:
        return CheckpointSpec(label or "scratch", None)
    return CheckpointSpec(label or checkpoint.parent.name or checkpoint.stem, checkpoint)


def slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "checkpoint"


@dataclass
class GridConfig:
    checkpoints: list[CheckpointSpec]
    datasets: list[str]
    shots: list[int]
    seeds: list[int]
    out: Path
    roots: list[Path]
    test_files: dict[str, Path] = field(default_factory=dict)
    dictionary: Path | None = None
    arch: str = DEFAULT_ARCH
    """Architecture when training from scratch."""
    epochs: int | None = None
    max_updates: int | None = None
    fairseq_args: list[str] = field(default_factory=list)
    keep_checkpoints: bool = False
    batch_size: int = 64
    truncate: str | None = None
    """``prepare --truncate`` for sequences too long for the model (GUE)."""
    method: str = "finetune"
    """``finetune`` (the paper's recipe) or ``probe`` (logistic regression on frozen embeddings)."""
    draw: str = "file"
    """``file``: train on the whole shot file; ``per-class``: ``shots`` per class drawn per seed."""
    pooling: str = "mean"
    """Probe embedding: mean over k-mer tokens, or ``bos``."""
    dev: bool = True
    """GUE folders: dev.csv selects the model; False (``--no-dev``) reads none."""

    def __post_init__(self):
        if self.method not in METHODS:
            raise FewshotDataError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.draw not in DRAW_MODES:
            raise FewshotDataError(f"draw must be one of {DRAW_MODES}, got {self.draw!r}")


@dataclass(frozen=True)
class Cell:
    checkpoint: CheckpointSpec
    dataset: str
    shots: int
    seed: int
    files: CellFiles

    def name(self) -> str:
        return f"{self.checkpoint.label} / {self.dataset} / {self.shots}-shot / seed {self.seed}"


def plan_cells(config: GridConfig) -> list[Cell]:
    """Every cell of the grid, with its files resolved (raises before anything runs if one is missing)."""
    slugs = [slug(spec.label) for spec in config.checkpoints]  # the cells' directory names
    duplicates = sorted({spec.label for spec in config.checkpoints if slugs.count(slug(spec.label)) > 1})
    if duplicates:
        raise FewshotDataError(f"checkpoint labels must differ (as directory names): {duplicates}; "
                               "use LABEL=PATH")
    for spec in config.checkpoints:
        if spec.path is not None and not spec.path.exists():  # a folder or a pipe: refused when it is read
            raise FewshotDataError(f"checkpoint not found: {spec.path}")
    cells = []
    for dataset in config.datasets:
        for shots in config.shots:
            files = resolve_cell_files(dataset, shots, config.roots, config.test_files, config.dev)
            for spec in config.checkpoints:
                for seed in config.seeds:
                    cells.append(Cell(spec, dataset, shots, seed, files))
    return cells


def group_dir(config: GridConfig, cell: Cell) -> Path:
    return config.out / "cells" / slug(cell.checkpoint.label) / cell.dataset / str(cell.shots)


def cell_dir(config: GridConfig, cell: Cell) -> Path:
    return group_dir(config, cell) / f"seed{cell.seed}"


def cell_settings(config: GridConfig, cell: Cell, dictionary: Path) -> dict:
    """What a finished cell must match to be skipped on a rerun."""
    settings = {
        "checkpoint": str(cell.checkpoint.path.resolve()) if cell.checkpoint.path else SCRATCH,
        "dictionary": str(dictionary.resolve()),
        "train": str(cell.files.train.resolve()),
        "test": str(cell.files.test.resolve()),
        "exclude_overlap": cell.files.exclude_overlap,
        "epochs": config.epochs,
        "max_updates": config.max_updates,
        "fairseq_args": list(config.fairseq_args),
        "arch": config.arch if cell.checkpoint.path is None else None,
    }
    if cell.files.gue:
        settings["truncate"] = config.truncate
        if not cell.files.dev:
            settings["no_dev"] = True
    if config.method == "finetune":  # cells of the recipe before issue 20 (Adam 0.9/0.98, no clipping) rerun
        settings["optimizer"] = paper_recipe(cell.shots).optimizer_settings()
    # Only when not the default, so cells finished before these options existed still count.
    if config.method != "finetune":
        settings.update(method=config.method, pooling=config.pooling)
        for key in ("epochs", "max_updates", "fairseq_args"):
            del settings[key]
    if config.draw != "file":
        settings["draw"] = config.draw
    return settings


def is_finished(config: GridConfig, cell: Cell, dictionary: Path) -> bool:
    """The cell has a record, written with the settings it would run with now."""
    record = read_cell_record(cell_dir(config, cell) / CELL_RECORD_FILE)
    return record is not None and record.settings == cell_settings(config, cell, dictionary)
