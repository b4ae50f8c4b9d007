"""GUE-format datasets (DNABERT-2's benchmark layout) and fitting long sequences to the model.

A GUE dataset is a folder holding ``train.csv``, ``dev.csv`` and ``test.csv``, each with the
header ``sequence,label`` and raw DNA of any length (GUE's go up to 1 000 bp). ``prepare``
turns ``dev`` into the ``valid`` split, which ``finetune`` then uses for model selection
(best dev MCC); ``test`` is scored once, by ``evaluate``.

A sequence of L bases gives L - k + 1 overlapping k-mers (L // k + L % k tokens at stride k),
plus ``<s>`` and ``</s>``. When that exceeds ``max_positions``, ``prepare`` stops with a one-line
error unless ``--truncate`` says which window to keep, the longest that fits (``max_positions - 2
+ k - 1`` bases; ``(max_positions - 2) * k`` at stride k): ``start`` (the first bases) or
``centre`` (the middle ones; a promoter or splice site is usually centred in GUE windows).
"""

from __future__ import annotations

from pathlib import Path

from genemask_preprocess.kmers import KmerTokenization

GUE_SPLIT_FILES = {"train": "train.csv", "valid": "dev.csv", "test": "test.csv"}
"""Our split name -> GUE's file name."""
TRUNCATE_CHOICES = ("start", "centre")
SPECIAL_TOKENS_PER_ITEM = 2
"""``<s>`` and ``</s>`` around the k-mers."""


def is_gue_folder(path: str | Path) -> bool:
    return Path(path).is_dir() and (Path(path) / GUE_SPLIT_FILES["train"]).is_file()


def gue_split_files(folder: str | Path) -> dict[str, Path]:
    """``{"train": train.csv, "valid": dev.csv, "test": test.csv}`` of the files that exist."""
    folder = Path(folder)
    return {split: folder / name for split, name in GUE_SPLIT_FILES.items() if (folder / name).is_file()}


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
