"""GUE-format datasets (DNABERT-2's benchmark layout) and fitting long sequences to the model.

A GUE dataset is a folder holding ``train.csv``, ``dev.csv`` and ``test.csv``, each with the
header ``sequence,label`` and raw DNA of any length (GUE's go up to 1 000 bp). ``prepare``
turns ``dev`` into the ``valid`` split, which ``finetune`` then uses for model selection
(best dev MCC); ``test`` is scored once, by ``evaluate``.

A folder is checked before anything is read (:func:`gue_split_files`): ``train.csv`` and
``test.csv`` are required, ``dev.csv`` is expected unless the user says ``--no-dev`` (then no
model selection: the last checkpoint is scored), and any other table in the folder (a
``valid.csv``, a ``train_2.csv``) is refused by name rather than silently left out.

A sequence of L bases gives L - k + 1 overlapping k-mers (L // k + L % k tokens at stride k),
plus ``<s>`` and ``</s>``. When that exceeds ``max_positions``, ``prepare`` stops with a one-line
error unless ``--truncate`` says which window to keep, the longest that fits (``max_positions - 2
+ k - 1`` bases; ``(max_positions - 2) * k`` at stride k): ``start`` (the first bases) or
``centre`` (the middle ones; a promoter or splice site is usually centred in GUE windows).
"""

from __future__ import annotations

from pathlib import Path

from genemask_preprocess.errors import InputError
from genemask_preprocess.kmers import KmerTokenization

GUE_SPLIT_FILES = {"train": "train.csv", "valid": "dev.csv", "test": "test.csv"}
"""Our split name -> GUE's file name."""
TRUNCATE_CHOICES = ("start", "centre")
SPECIAL_TOKENS_PER_ITEM = 2
"""``<s>`` and ``</s>`` around the k-mers."""


def is_gue_folder(path: str | Path) -> bool:
    return Path(path).is_dir() and (Path(path) / GUE_SPLIT_FILES["train"]).is_file()


TABLE_SUFFIXES = (".csv", ".tsv", ".csv.gz", ".tsv.gz")
"""Files that look like a split: refused in a GUE folder unless they are one of its three."""


class GueFolderError(InputError):
    """A GUE folder without a split it needs, or with a table it would silently leave out."""


def gue_split_files(folder: str | Path, dev: bool = True) -> dict[str, Path]:
    """``{"train": train.csv, "valid": dev.csv, "test": test.csv}``, checked; without ``dev``, no ``valid``.

    Raises :class:`GueFolderError`, naming the file, for a missing ``train.csv`` or ``test.csv``, a
    missing ``dev.csv`` (unless ``dev`` is False: ``--no-dev``) and any other table in the folder.
    """
    folder = Path(folder)
    layout = "a GUE folder holds train.csv, dev.csv and test.csv"
    for name in (GUE_SPLIT_FILES["train"], GUE_SPLIT_FILES["test"]):
        if not (folder / name).is_file():
            raise GueFolderError(f"{folder / name}: no such file ({layout})")
    others = sorted(path.name for path in folder.iterdir() if path.name.lower().endswith(TABLE_SUFFIXES)
                    and path.name not in GUE_SPLIT_FILES.values())
    if others:
        hint = " (rename it dev.csv)" if others[0].lower().startswith("val") else ""
        raise GueFolderError(f"{folder / others[0]}: not a GUE split{hint}; {layout}, and nothing else is read: "
                             "move other tables out of the folder")
    if dev and not (folder / GUE_SPLIT_FILES["valid"]).is_file():
        raise GueFolderError(f"{folder / GUE_SPLIT_FILES['valid']}: no such file ({layout}; dev.csv selects the "
                             "model); pass --no-dev to fine-tune without it and score the last checkpoint")
    splits = {split: folder / name for split, name in GUE_SPLIT_FILES.items()}
    if not dev:
        del splits["valid"]
    return splits


def max_bases(max_positions: int, k: int, stride: int = 1) -> int:
    """Longest sequence, in bases, whose k-mer tokens plus ``<s>`` and ``</s>`` fit ``max_positions``."""
    return KmerTokenization(k, stride).max_bases(max_positions - SPECIAL_TOKENS_PER_ITEM)


def fit_sequence(dna: str, k: int, max_positions: int, truncate: str | None, stride: int = 1) -> tuple[str, bool]:
    """``(dna, False)`` if it fits, else the kept window and True; ``ValueError`` without ``truncate``."""
    limit = max_bases(max_positions, k, stride)
    if len(dna) <= limit:
        return dna, False
    if truncate is None:
        tokens = KmerTokenization(k, stride).num_tokens(len(dna)) + SPECIAL_TOKENS_PER_ITEM
        raise ValueError(
            f"{len(dna)} bases give {tokens} tokens with <s> and </s>, over --max-positions {max_positions} "
            f"(at most {limit} bases); pass --truncate start or --truncate centre"
        )
    if truncate == "start":
        return dna[:limit], True
    if truncate == "centre":
        offset = (len(dna) - limit) // 2
        return dna[offset : offset + limit], True
    raise ValueError(f"--truncate must be one of {TRUNCATE_CHOICES}, got {truncate!r}")
