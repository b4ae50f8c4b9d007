"""The few-shot grid: prepare -> fine-tune -> evaluate for every (checkpoint, dataset, shots, seed).

Layout under ``RESULTS``::

    cells/<checkpoint>/<dataset>/<shots>/data/          prepared once per (checkpoint, dataset, shots)
    cells/<checkpoint>/<dataset>/<shots>/seed<S>/       train.log, test_predictions.tsv, metrics.json
                                                        (--draw per-class: also its own data/)
    summary.csv  summary.md  summary.png                mean ± std over seeds, every finished cell

A cell is finished when its ``metrics.json`` exists with the same settings, so a rerun
skips it; a crashed cell leaves ``error.txt`` and the grid goes on. The summary covers
every finished cell under ``RESULTS``, so grids run one checkpoint at a time combine; it is
written by :mod:`genemask_plugin.fewshot.grid_summary`.

``method="probe"`` fits a logistic regression on frozen embeddings (:mod:`.probe`) instead of
fine-tuning; each (dataset, shots) is prepared once under ``RESULTS/data/`` and each checkpoint
embeds every distinct sequence once (:class:`ProbeCache`), so a probe cell takes seconds.
``draw="per-class"`` trains each seed on ``shots`` sequences per class drawn from the shot
file (:func:`.protocol.draw_per_class`), and scores the test set minus the whole shot file,
so every seed and checkpoint sees the same test set. ``draw="file"`` trains on the whole file. Every file goes through
:mod:`genemask_preprocess.atomic_output`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from genemask_preprocess.atomic_output import atomic_file
from genemask_preprocess.errors import OutputError
from genemask_preprocess.kmers import NUM_SPECIALS, write_kmer_dictionary

from .evaluate import evaluate_checkpoint
from .finetune import (
    DEFAULT_ARCH,
    ModelShape,
    check_fits,
    cuda_available,
    fairseq_train_args,
    load_checkpoint_state,
    paper_recipe,
    read_model_shape,
    run_finetune,
    schedule,
    selection_metric,
)
from .grid_summary import metric_value, write_summary
from .gue import gue_split_files
from .metrics import METRIC_TITLES, METRICS, Predictions, write_predictions
from .prepare import (
    FewshotDataError,
    PreparedData,
    load_kmer_vocabulary,
    prepare_fewshot_data,
    read_checked_splits,
    read_fewshot_tsv,
)
from .probe import (
    embed_items,
    fit_probe,
    load_frozen_encoder,
    probe_result,
    random_encoder,
    read_split,
)
from .protocol import DRAW_MODES, CellFiles, draw_per_class, resolve_cell_files

SCRATCH = "none"
DEFAULT_SCRATCH_K = 6
METHODS = ("finetune", "probe")


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
    label, path = label.strip(), path.strip()
    if path.lower() == SCRATCH:
        return CheckpointSpec(label or "scratch", None)
    checkpoint = Path(path)
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
    probe_cache: ProbeCache = field(default_factory=lambda: ProbeCache(), repr=False, compare=False)

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


@dataclass
class GridReport:
    finished: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    summary_rows: list[dict] = field(default_factory=list)


def plan_cells(config: GridConfig) -> list[Cell]:
    """Every cell of the grid, with its files resolved (raises before anything runs if one is missing)."""
    slugs = [slug(spec.label) for spec in config.checkpoints]  # the cells' directory names
    duplicates = sorted({spec.label for spec in config.checkpoints if slugs.count(slug(spec.label)) > 1})
    if duplicates:
        raise FewshotDataError(f"checkpoint labels must differ (as directory names): {duplicates}; "
                               "use LABEL=PATH")
    for spec in config.checkpoints:
        if spec.path is not None and not spec.path.is_file():
            raise FewshotDataError(f"checkpoint not found: {spec.path}")
    cells = []
    for dataset in config.datasets:
        for shots in config.shots:
            files = resolve_cell_files(dataset, shots, config.roots, config.test_files)
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
    # Only when not the default, so cells finished before these options existed still count.
    if config.method != "finetune":
        settings.update(method=config.method, pooling=config.pooling)
        for key in ("epochs", "max_updates", "fairseq_args"):
            del settings[key]
    if config.draw != "file":
        settings["draw"] = config.draw
    return settings


def is_finished(config: GridConfig, cell: Cell, dictionary: Path) -> bool:
    path = cell_dir(config, cell) / "metrics.json"
    try:
        return json.loads(path.read_text()).get("settings") == cell_settings(config, cell, dictionary)
    except (OSError, ValueError):
        return False


def resolve_dictionary(config: GridConfig, spec: CheckpointSpec) -> Path:
    """The pretraining ``dict.txt`` of a checkpoint.

    In order: ``--dict``; the ``dict.txt`` of the checkpoint's training data if it still
    exists; else our fixed k-mer vocabulary, with k read from the embedding size
    (4^k + 5 rows: the specials, the k-mers and ``<mask>``). From scratch: ``--dict`` or 6-mers.
    """
    if config.dictionary is not None:
        return config.dictionary
    k = DEFAULT_SCRATCH_K
    if spec.path is not None:
        state = load_checkpoint_state(spec.path)
        cfg = state.get("cfg") or {}
        task_cfg = cfg.get("task") if isinstance(cfg, dict) else None
        data = task_cfg.get("data") if isinstance(task_cfg, dict) else getattr(task_cfg, "data", None)
        if data:
            candidate = Path(str(data).split(os.pathsep)[0]) / "dict.txt"
            if candidate.is_file():
                return candidate
        rows = next((v.shape[0] for name, v in state["model"].items()
                     if name.endswith("embed_tokens.weight")), None)
        k = next((k for k in range(1, 8) if rows == 4**k + NUM_SPECIALS + 1), None)
        if k is None:
            raise FewshotDataError(
                f"cannot tell the dictionary of {spec.path} ({rows} embeddings); pass --dict"
            )
    path = config.out / "dicts" / f"kmers_k{k}.dict.txt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_kmer_dictionary(path, k)
    return path


def prepared_data(config: GridConfig, cell: Cell, dictionary: Path, data_dir: Path | None = None) -> PreparedData:
    """The cell group's prepared data (in ``data_dir``), reused when it was built from the same files."""
    data_dir = data_dir or group_dir(config, cell) / "data"
    if cell.files.gue:
        expected = {name: str(path.resolve()) for name, path in gue_split_files(cell.files.train).items()}
    else:
        expected = {"train": str(cell.files.train.resolve()), "test": str(cell.files.test.resolve())}
    try:
        prepared = PreparedData.load(data_dir)
        sources = {name: split.source for name, split in prepared.splits.items()}
        if (prepared.dictionary == str(dictionary.resolve())
                and prepared.exclude_overlap == cell.files.exclude_overlap
                and prepared.truncate == (config.truncate if cell.files.gue else None)
                and sources == expected):
            return prepared
    except FewshotDataError:
        pass
    if cell.files.gue:
        return prepare_fewshot_data(cell.files.train, dictionary, data_dir, truncate=config.truncate)
    return prepare_fewshot_data(
        cell.files.train, dictionary, data_dir, test=cell.files.test,
        exclude_overlap=cell.files.exclude_overlap,
    )


def drawn_data(config: GridConfig, cell: Cell, dictionary: Path) -> PreparedData:
    """A seed's own prepared data for ``--draw per-class``: the drawn rows, and the group's test set."""
    directory = cell_dir(config, cell)
    rows = read_fewshot_tsv(cell.files.train, load_kmer_vocabulary(dictionary).k)
    chosen = draw_per_class([row.label for row in rows], cell.shots, cell.seed)
    drawn = directory / "drawn_train.tsv"
    with atomic_file(drawn) as handle:
        handle.write("sequence\tlabel\n")
        handle.writelines(f"{rows[i].dna}\t{rows[i].label}\n" for i in chosen)
    return prepare_fewshot_data(
        drawn, dictionary, directory / "data", test=cell.files.test,
        exclude_overlap=cell.files.exclude_overlap, overlap_source=cell.files.train,
    )


@dataclass(frozen=True)
class ResolvedCheckpoint:
    dictionary: Path
    shape: ModelShape


def resolve_checkpoint(config: GridConfig, spec: CheckpointSpec) -> ResolvedCheckpoint:
    shape = read_model_shape(spec.path) if spec.path else ModelShape(arch=config.arch)
    return ResolvedCheckpoint(resolve_dictionary(config, spec), shape)


def run_cell(config: GridConfig, cell: Cell, resolved: ResolvedCheckpoint) -> dict:
    """Prepare, fine-tune (or probe) and evaluate one cell; returns and writes its ``metrics.json``."""
    start = time.time()
    directory = cell_dir(config, cell)
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    if config.method == "probe":
        return run_probe_cell(config, cell, resolved, start)
    spec = cell.checkpoint
    if config.draw == "per-class":
        prepared = drawn_data(config, cell, resolved.dictionary)
    else:
        prepared = prepared_data(config, cell, resolved.dictionary)
    train = prepared.splits["train"]
    check_fits(max(s.max_tokens for s in prepared.splits.values()), resolved.shape, prepared.out)
    args = fairseq_train_args(
        prepared.out, directory / "train",
        checkpoint=spec.path.resolve() if spec.path else None,
        shots=cell.shots, seed=cell.seed, n_train=train.rows, num_classes=prepared.num_classes,
        shape=resolved.shape, cpu=not cuda_available(),
        epochs=config.epochs, max_updates=config.max_updates, extra=config.fairseq_args,
        valid_metric=selection_metric(prepared.labels, "valid" in prepared.splits),
    )
    final = run_finetune(args, directory / "train.log")
    result = evaluate_checkpoint(
        final, prepared.out, "test",
        out_json=directory / "test_metrics.json",
        predictions_path=directory / "test_predictions.tsv",
        batch_size=config.batch_size,
    )
    if not config.keep_checkpoints:
        shutil.rmtree(directory / "train")
    _, updates, _ = schedule(train.rows, paper_recipe(cell.shots), config.epochs, config.max_updates)
    record = {
        "checkpoint": spec.label,
        "dataset": cell.dataset,
        "shots": cell.shots,
        "seed": cell.seed,
        "metrics": {name: result[name] for name in METRICS},
        "train_per_class": train.per_class,
        "n_train": train.rows,
        "n_test": result["n"],
        "excluded_overlap": prepared.splits["test"].excluded_overlap,
        "predicted_per_class": result["predicted_per_class"],
        "updates": updates,
        "headline": prepared.headline_metric,
        "method": "finetune",
        "draw": config.draw,
        "seconds": round(time.time() - start, 1),
        "settings": cell_settings(config, cell, resolved.dictionary),
    }
    if config.draw == "per-class":
        shutil.rmtree(directory / "data")
    with atomic_file(directory / "metrics.json") as handle:  # written last: marks the cell done
        handle.write(json.dumps(record, indent=2) + "\n")
    return record


@dataclass
class GroupEmbeddings:
    """One (checkpoint, dataset, shots) group embedded: the whole shot file and the test set."""

    prepared: PreparedData
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


class ProbeCache:
    """What a probe grid reuses: each (dataset, shots) prepared once (under ``RESULTS/data``, not
    per checkpoint), its splits read once, and every checkpoint's embedding of each distinct
    sequence computed once (shot files and test sets overlap across shots), as float32."""

    def __init__(self):
        self.splits: dict[str, tuple] = {}
        self.vectors: dict[tuple, dict[bytes, np.ndarray]] = {}
        self.groups: dict[tuple, GroupEmbeddings] = {}

    def group(self, config: GridConfig, cell: Cell, resolved: ResolvedCheckpoint) -> GroupEmbeddings:
        key = (cell.checkpoint, cell.dataset, cell.shots, config.pooling)
        if key in self.groups:
            return self.groups[key]
        data_key = f"{cell.dataset}/{cell.shots}"
        if data_key not in self.splits:
            prepared = prepared_data(config, cell, resolved.dictionary,
                                     config.out / "data" / cell.dataset / str(cell.shots))
            self.splits[data_key] = (prepared, read_split(prepared.out, "train"), read_split(prepared.out, "test"))
        prepared, train, test = self.splits[data_key]
        table = self.vectors.setdefault((cell.checkpoint, config.pooling, str(resolved.dictionary)), {})
        missing = list({item.tobytes(): item for item in train.items + test.items
                        if item.tobytes() not in table}.items())
        if missing:
            if cell.checkpoint.path is None:
                model = random_encoder(Path(prepared.out) / "input0" / "dict.txt", resolved.shape.arch)
            else:
                model = load_frozen_encoder(cell.checkpoint.path, Path(prepared.out) / "input0")
            vectors = embed_items(model, [item for _, item in missing], config.pooling, config.batch_size)
            table.update(zip((k for k, _ in missing), vectors.astype(np.float32), strict=True))
        lookup = lambda items: np.stack([table[item.tobytes()] for item in items])  # noqa: E731
        group = GroupEmbeddings(prepared, lookup(train.items), train.targets, lookup(test.items), test.targets)
        self.groups = {key: group}  # a group's seeds run one after another
        return group


def run_probe_cell(config: GridConfig, cell: Cell, resolved: ResolvedCheckpoint, start: float) -> dict:
    """Fit and score the frozen-embedding probe of one cell (embeddings shared by the group's seeds)."""
    directory = cell_dir(config, cell)
    group = config.probe_cache.group(config, cell, resolved)
    labels = group.prepared.labels
    if config.draw == "per-class":
        chosen = draw_per_class([labels[c] for c in group.train_y], cell.shots, cell.seed)
    else:
        chosen = np.arange(len(group.train_y))
    train_y = group.train_y[chosen]
    probs = fit_probe(group.train_x[chosen], train_y, group.test_x, len(labels))
    predictions = Predictions(labels, np.arange(len(group.test_y)), group.test_y, probs)
    write_predictions(directory / "test_predictions.tsv", predictions)
    result = probe_result(predictions, config.pooling)
    test_split = group.prepared.splits["test"]
    excluded = test_split.excluded_overlap
    record = {
        "checkpoint": cell.checkpoint.label,
        "dataset": cell.dataset,
        "shots": cell.shots,
        "seed": cell.seed,
        "metrics": {name: result[name] for name in METRICS},
        "train_per_class": {label: int(np.sum(train_y == i)) for i, label in enumerate(labels)},
        "n_train": int(len(chosen)),
        "n_test": result["n"],
        "excluded_overlap": excluded,
        "predicted_per_class": result["predicted_per_class"],
        "headline": group.prepared.headline_metric,
        "method": "probe",
        "draw": config.draw,
        "pooling": config.pooling,
        "probe_C": result["probe_C"],
        "seconds": round(time.time() - start, 1),
        "settings": cell_settings(config, cell, resolved.dictionary),
    }
    with atomic_file(directory / "metrics.json") as handle:  # written last: marks the cell done
        handle.write(json.dumps(record, indent=2) + "\n")
    return record


def run_grid(config: GridConfig, progress: bool = True) -> GridReport:
    """Run every unfinished cell, then write the summary (table, CSV, plot)."""
    cells = plan_cells(config)
    resolved = {spec.label: resolve_checkpoint(config, spec) for spec in config.checkpoints}
    check_cell_inputs(cells, resolved)
    created_out = not config.out.exists()
    config.out.mkdir(parents=True, exist_ok=True)
    report = GridReport()
    try:
        return _run_cells(config, cells, resolved, report, progress)
    except BaseException:
        if created_out and not report.finished:
            shutil.rmtree(config.out, ignore_errors=True)
        raise


def check_cell_inputs(cells: list[Cell], resolved: dict) -> None:
    """Refuse bad few-shot files before any cell runs (a bad file would fail each of its cells)."""
    seen = set()
    for cell in cells:
        k = load_kmer_vocabulary(resolved[cell.checkpoint.label].dictionary).k
        key = (cell.files.train, cell.files.test, k)
        if key not in seen:
            seen.add(key)
            if cell.files.gue:
                splits = gue_split_files(cell.files.train)
            else:
                splits = {"train": cell.files.train, "test": cell.files.test}
            read_checked_splits(splits, k)


def _discard_cell(config: GridConfig, cell: Cell) -> None:
    """Remove an unfinished cell's folder, and the group folders it leaves empty."""
    directory = cell_dir(config, cell)
    shutil.rmtree(directory, ignore_errors=True)
    for parent in directory.parents:
        if parent == config.out or config.out not in parent.parents:
            break
        try:
            parent.rmdir()
        except OSError:
            break


def _run_cells(config: GridConfig, cells, resolved, report: GridReport, progress: bool) -> GridReport:
    bar = tqdm(cells, unit="cell", disable=not progress, dynamic_ncols=True)
    for cell in bar:
        bar.set_postfix_str(cell.name())
        checkpoint = resolved[cell.checkpoint.label]
        if is_finished(config, cell, checkpoint.dictionary):
            report.skipped += 1
            continue
        try:
            record = run_cell(config, cell, checkpoint)
        except (OSError, OutputError):  # a full disk or an unwritable folder stops the grid
            _discard_cell(config, cell)
            raise
        except Exception as err:  # one bad cell must not stop the grid
            directory = cell_dir(config, cell)
            with atomic_file(directory / "error.txt") as handle:
                handle.write(traceback.format_exc())
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
            report.failed.append((cell.name(), message))
            tqdm.write(f"cell failed: {cell.name()}: {message} (details: {directory / 'error.txt'})")
            continue
        except BaseException:  # a signal: the unfinished cell goes, finished ones stay
            _discard_cell(config, cell)
            raise
        report.finished += 1
        scores = ", ".join(f"{METRIC_TITLES[m]} {metric_value(record['metrics'][m]):.3f}" for m in METRICS)
        tqdm.write(f"{cell.name()}: {scores}")
    bar.close()
    order = [spec.label for spec in config.checkpoints]
    report.summary_rows = write_summary(config.out, order)
    return report
