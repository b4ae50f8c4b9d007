"""Running one grid cell: its data, fine-tuning or probing, its record. Both methods go through :func:`run_cell`.

- ``finetune`` (the paper's recipe): prepare the cell's data (once per (checkpoint, dataset, shots),
  or per seed with ``--draw per-class``), fine-tune with ``fairseq-train`` (:class:`.finetune.FinetuneRun`,
  as ``genemask-fewshot finetune`` does) and score the test split (:func:`.evaluate.evaluate_checkpoint`).
- ``probe``: a logistic regression on frozen embeddings (:mod:`.probe`). Each (dataset, shots) is
  prepared once under ``RESULTS/data/`` and each checkpoint embeds every distinct sequence once
  (:class:`ProbeCache`), so a probe cell takes seconds.

``draw="per-class"`` trains each seed on ``shots`` sequences per class drawn from the shot file
(:func:`.protocol.draw_per_class`) and scores the test set minus the whole shot file, so every
seed and checkpoint sees the same test set. Every file goes through
:mod:`genemask_preprocess.atomic_output`.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genemask_preprocess.atomic_output import atomic_file
from genemask_preprocess.formats.fairseq_dictionary import (
    load_kmer_vocabulary,
    write_kmer_dictionary,
)
from genemask_preprocess.kmers import KmerTokenization, tokenization_of_embedding_rows

from ..checkpoints import ModelShape, load_checkpoint_state, read_model_shape, training_data
from .cell_record import CELL_RECORD_FILE, CellRecord, write_cell_record
from .evaluate import evaluate_checkpoint
from .finetune import FinetuneRun, run_finetune
from .grid_plan import Cell, CheckpointSpec, GridConfig, cell_dir, cell_settings, group_dir
from .gue import gue_split_files
from .metrics import METRICS, Predictions, write_predictions
from .prepare import FewshotDataError, PreparedData, prepare_fewshot_data, read_fewshot_tsv
from .probe import (
    embed_items,
    fit_probe,
    load_frozen_encoder,
    probe_result,
    random_encoder,
    read_split,
)
from .protocol import draw_per_class

DEFAULT_SCRATCH_K = 6
"""k of the fixed vocabulary a from-scratch model gets without ``--dict``."""


# ---------------------------------------------------------------------------------------------
# A checkpoint's dictionary and shape, and a cell's data


@dataclass(frozen=True)
class ResolvedCheckpoint:
    dictionary: Path
    shape: ModelShape


def resolve_checkpoint(config: GridConfig, spec: CheckpointSpec) -> ResolvedCheckpoint:
    shape = read_model_shape(spec.path) if spec.path else ModelShape(arch=config.arch)
    return ResolvedCheckpoint(resolve_dictionary(config, spec), shape)


def resolve_dictionary(config: GridConfig, spec: CheckpointSpec) -> Path:
    """The pretraining ``dict.txt`` of a checkpoint.

    In order: ``--dict``; the ``dict.txt`` of the checkpoint's training data if it still
    exists; else our fixed k-mer vocabulary, with k and the stride read from the embedding size
    (4^k + 5 rows: the specials, the k-mers and ``<mask>``; 4^k + 9 at stride k, with the single
    bases). From scratch: ``--dict`` or overlapping 6-mers.
    """
    if config.dictionary is not None:
        return config.dictionary
    tokenization = KmerTokenization(DEFAULT_SCRATCH_K)
    if spec.path is not None:
        state = load_checkpoint_state(spec.path)
        data = training_data(state)
        if data is not None and (data / "dict.txt").is_file():
            return data / "dict.txt"
        rows = next((v.shape[0] for name, v in state["model"].items()
                     if name.endswith("embed_tokens.weight")), None)
        tokenization = tokenization_of_embedding_rows(rows) if rows is not None else None
        if tokenization is None:
            raise FewshotDataError(
                f"cannot tell the dictionary of {spec.path} ({rows} embeddings); pass --dict"
            )
    stride = f"_stride{tokenization.stride}" if tokenization.stride != 1 else ""
    path = config.out / "dicts" / f"kmers_k{tokenization.k}{stride}.dict.txt"
    if not path.exists():
        write_kmer_dictionary(path, tokenization.k, tokenization.stride)
    return path


def prepared_data(config: GridConfig, cell: Cell, dictionary: Path, data_dir: Path | None = None) -> PreparedData:
    """The cell group's prepared data (in ``data_dir``), reused when it was built from the same files."""
    data_dir = data_dir or group_dir(config, cell) / "data"
    if cell.files.gue:
        expected = {name: str(path.resolve()) for name, path in gue_split_files(cell.files.train, cell.files.dev).items()}
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
        return prepare_fewshot_data(cell.files.train, dictionary, data_dir, truncate=config.truncate,
                                    dev=cell.files.dev)
    return prepare_fewshot_data(
        cell.files.train, dictionary, data_dir, test=cell.files.test,
        exclude_overlap=cell.files.exclude_overlap,
    )


def drawn_data(config: GridConfig, cell: Cell, dictionary: Path) -> PreparedData:
    """A seed's own prepared data for ``--draw per-class``: the drawn rows, and the group's test set."""
    directory = cell_dir(config, cell)
    rows = read_fewshot_tsv(cell.files.train, load_kmer_vocabulary(dictionary).kmer_text_length)
    chosen = draw_per_class([row.label for row in rows], cell.shots, cell.seed)
    drawn = directory / "drawn_train.tsv"
    with atomic_file(drawn) as handle:
        handle.write("sequence\tlabel\n")
        handle.writelines(f"{rows[i].dna}\t{rows[i].label}\n" for i in chosen)
    return prepare_fewshot_data(
        drawn, dictionary, directory / "data", test=cell.files.test,
        exclude_overlap=cell.files.exclude_overlap, overlap_source=cell.files.train,
    )


# ---------------------------------------------------------------------------------------------
# The two methods


@dataclass(frozen=True)
class MethodResult:
    """What a method hands :func:`run_cell`: the data it trained on and its scores on the test split."""

    prepared: PreparedData
    train_per_class: dict[str, int]
    n_train: int
    scores: dict
    """The test split's metrics JSON (:func:`.metrics.scores_json`, plus the method's settings)."""
    updates: int | None = None


def finetune_cell(config: GridConfig, cell: Cell, resolved: ResolvedCheckpoint, directory: Path) -> MethodResult:
    """Fine-tune on the cell's data with ``fairseq-train``, then score the test split."""
    if config.draw == "per-class":
        prepared = drawn_data(config, cell, resolved.dictionary)
    else:
        prepared = prepared_data(config, cell, resolved.dictionary)
    checkpoint = cell.checkpoint.path
    run = FinetuneRun(prepared, checkpoint.resolve() if checkpoint else None, resolved.shape, cell.shots,
                      cell.seed, config.epochs, config.max_updates, tuple(config.fairseq_args))
    final = run_finetune(run.train_args(directory / "train"), directory / "train.log")
    scores = evaluate_checkpoint(
        final, prepared.out, "test",
        out_json=directory / "test_metrics.json",
        predictions_path=directory / "test_predictions.tsv",
        batch_size=config.batch_size,
    )
    if not config.keep_checkpoints:
        shutil.rmtree(directory / "train")
    if config.draw == "per-class":
        shutil.rmtree(directory / "data")
    train = prepared.splits["train"]
    return MethodResult(prepared, train.per_class, train.rows, scores, run.updates)


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


def probe_cell(config: GridConfig, cell: Cell, resolved: ResolvedCheckpoint, directory: Path,
               cache: ProbeCache) -> MethodResult:
    """Fit and score the frozen-embedding probe (embeddings shared by the group's seeds)."""
    group = cache.group(config, cell, resolved)
    labels = group.prepared.labels
    if config.draw == "per-class":
        chosen = draw_per_class([labels[c] for c in group.train_y], cell.shots, cell.seed)
    else:
        chosen = np.arange(len(group.train_y))
    train_y = group.train_y[chosen]
    probs = fit_probe(group.train_x[chosen], train_y, group.test_x, len(labels))
    predictions = Predictions(labels, np.arange(len(group.test_y)), group.test_y, probs)
    write_predictions(directory / "test_predictions.tsv", predictions)
    train_per_class = {label: int(np.sum(train_y == i)) for i, label in enumerate(labels)}
    return MethodResult(group.prepared, train_per_class, int(len(chosen)), probe_result(predictions, config.pooling))


# ---------------------------------------------------------------------------------------------
# The one runner


def run_cell(config: GridConfig, cell: Cell, resolved: ResolvedCheckpoint, cache: ProbeCache) -> CellRecord:
    """Run one cell with the grid's method, then write its record (``metrics.json``, last) and return it."""
    start = time.time()
    directory = cell_dir(config, cell)
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    if config.method == "probe":
        result = probe_cell(config, cell, resolved, directory, cache)
    else:
        result = finetune_cell(config, cell, resolved, directory)
    scores = result.scores
    record = CellRecord(
        checkpoint=cell.checkpoint.label, dataset=cell.dataset, shots=cell.shots, seed=cell.seed,
        metrics={name: scores[name] for name in METRICS},
        train_per_class=result.train_per_class, n_train=result.n_train, n_test=scores["n"],
        excluded_overlap=result.prepared.splits["test"].excluded_overlap,
        predicted_per_class=scores["predicted_per_class"],
        seconds=round(time.time() - start, 1), settings=cell_settings(config, cell, resolved.dictionary),
        method=config.method, draw=config.draw, headline=result.prepared.headline_metric,
        updates=result.updates, pooling=scores.get("pooling"), probe_C=scores.get("probe_C"),
    )
    write_cell_record(directory / CELL_RECORD_FILE, record)  # written last: marks the cell done
    return record
