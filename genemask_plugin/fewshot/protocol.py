"""The evaluation protocol of the GeneMask few-shot benchmarks (see the data README).

Each dataset directory holds ``SHOTS/train.tsv`` files, ``SHOTS`` being the paper's name of
the set (examples per class, except Splice-40 whose files hold 10x the name). What is
scored differs per dataset:

- Prom-core: the official ``test.tsv``.
- Prom-300: the 1000-shot file minus every sequence of the training file; trains on 10-500.
- Cohn-enh: the 500-shot file minus every sequence of the training file; trains on 10-100.
- Splice-40: its test set is held back; any ``test.tsv`` of the same format can be given.
  Training sequences are removed from it: Splice-40's shot files are not disjoint (186 of the
  301 sequences of "10" are also in "500"), so a shot file used as a test set would leak.

A dataset not listed here is scored on its ``test.tsv`` (no overlap removal). A dataset folder
in GUE format (``DATASET/train.csv``, ``dev.csv``, ``test.csv``) is trained on its whole
``train.csv`` whatever the shots (which then only pick the recipe), selected on ``dev.csv`` and
scored on ``test.csv``.

Two ways to read a shot file (``DRAW_MODES``): ``file`` trains on the whole file (so
Splice-40's "10" is 100 per class); ``per-class`` draws ``shots`` sequences per class from it
for each seed (:func:`draw_per_class`), so "10-shot" means 10 per class as in the paper's
Table 1. For the sets whose files hold exactly ``shots`` per class the two are the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .gue import gue_split_files, is_gue_folder
from .prepare import FewshotDataError


@dataclass(frozen=True)
class DatasetProtocol:
    name: str
    shots: tuple[int, ...] | None
    """The shot files the paper trains on (None: any that exists)."""
    test: str
    """The scored file, relative to the dataset directory."""
    exclude_overlap: bool


PROTOCOLS = {
    p.name: p
    for p in (
        DatasetProtocol("Prom-core", (10, 50, 100, 500, 1000), "test.tsv", False),
        DatasetProtocol("Prom-300", (10, 50, 100, 500), "1000/train.tsv", True),
        DatasetProtocol("Cohn-enh", (10, 50, 100), "500/train.tsv", True),
        DatasetProtocol("Splice-40", (10, 50, 100, 500), "test.tsv", True),
    )
}
DATASET_ORDER = tuple(PROTOCOLS)


def protocol_of(dataset: str) -> DatasetProtocol:
    return PROTOCOLS.get(dataset) or DatasetProtocol(dataset, None, "test.tsv", False)


def default_fewshot_roots() -> list[Path]:
    """The bundled ``data/fewshot`` of a source checkout (Prom-core 10 and 50 shots), if present.

    The full benchmark sets are not bundled: pass their folder with ``--fewshot-root``.
    """
    bundled = Path(__file__).resolve().parents[2] / "data" / "fewshot"  # genemask_plugin/fewshot/ -> the checkout
    return [bundled] if bundled.is_dir() else []


DRAW_MODES = ("file", "per-class")


def draw_per_class(labels: Sequence[str], per_class: int, seed: int) -> np.ndarray:
    """Sorted row indices of ``per_class`` rows of every label, drawn without replacement.

    A pure function of (labels, per_class, seed): every checkpoint gets the same draw for a seed,
    so comparisons are paired. Raises :class:`FewshotDataError` if a label has too few rows.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng([seed, per_class])
    chosen = []
    for label in sorted(set(labels.tolist())):
        rows = np.flatnonzero(labels == label)
        if len(rows) < per_class:
            raise FewshotDataError(f"cannot draw {per_class} of label {label!r}: the file has {len(rows)}")
        chosen.append(rng.choice(rows, per_class, replace=False))
    return np.sort(np.concatenate(chosen))


@dataclass(frozen=True)
class CellFiles:
    train: Path
    test: Path
    exclude_overlap: bool
    gue: bool = False
    """``train`` is a GUE folder (its train/dev/test.csv are the splits)."""
    dev: bool = True
    """GUE: its dev.csv selects the model (False: ``--no-dev``, none is read)."""


def resolve_cell_files(
    dataset: str, shots: int, roots: list[Path], test_files: dict[str, Path] | None = None, dev: bool = True
) -> CellFiles:
    """The training and scored files of one (dataset, shots) cell under the first root that has them.

    A GUE folder is checked (:func:`.gue.gue_split_files`); ``dev`` False reads no dev.csv.
    """
    gue = next((r / dataset for r in roots if is_gue_folder(r / dataset)), None)
    if gue is not None:
        return CellFiles(gue, gue_split_files(gue, dev)["test"], False, gue=True, dev=dev)
    protocol = protocol_of(dataset)
    if protocol.shots is not None and shots not in protocol.shots:
        allowed = ", ".join(map(str, protocol.shots))
        raise FewshotDataError(f"{dataset} is evaluated with {allowed} shots (data README), not {shots}")
    shown_roots = ", ".join(map(str, roots)) or "(none; pass --fewshot-root)"
    train = next((r / dataset / str(shots) / "train.tsv" for r in roots
                  if (r / dataset / str(shots) / "train.tsv").is_file()), None)
    if train is None:
        raise FewshotDataError(f"no {dataset}/{shots}/train.tsv under the few-shot roots {shown_roots}")
    test = (test_files or {}).get(dataset)
    if test is not None:
        if not Path(test).is_file():
            raise FewshotDataError(f"test file for {dataset} not found: {test}")
    else:
        test = next((r / dataset / protocol.test for r in roots
                     if (r / dataset / protocol.test).is_file()), None)
        if test is None:
            raise FewshotDataError(f"no test file {dataset}/{protocol.test} under {shown_roots} "
                                   f"(pass --test-file {dataset}=PATH)")
    return CellFiles(Path(train), Path(test), protocol.exclude_overlap)
