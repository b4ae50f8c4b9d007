"""Sharded counting: which bases a shard owns, what it records about its inputs, and the exact merge.

Lay the inputs' records end to end (inputs in command-line order, records in file order)
and call their total length T. Shard ``I/N`` owns the n-gram windows that *start* at a base
in ``[floor(I*T/N), floor((I+1)*T/N))``. It reads up to ``max_n - 1`` bases past its end
(the overlap) so the windows it owns are whole, but never counts a window that starts
there, so every window of every length is counted by exactly one shard and the sum of the
shards is the count of the whole, bit for bit. Record ends split windows exactly as in a
single count. T comes from the inputs' ``.fai`` indexes when every input has one that fits
its file (:mod:`~genemask_preprocess.formats.fasta_index`), else from one reading pass.

A shard's COUNTS file carries, besides its counts, its ``shard`` metadata (see
:func:`shard_metadata`): its inputs (file name, size in bytes, SHA-256 of the bytes), its
slice, ``max_n`` and the strand setting. A rerun of the same shard skips it when that
metadata matches; ``merge`` refuses shards that do not fit together, before summing.

Token n-grams (``count --tokens DATA_DIR --shard I/N``) shard the same way over the T tokens of
``train.bin`` instead of bases (``total_bases`` then counts tokens, and ``unit`` is ``"tokens"``);
their inputs are ``dict.txt``, ``train.idx`` and ``train.bin``, and ``merge`` keeps their alphabet.

The checksum is SHA-256 of the file's bytes (as ``sha256sum`` prints it): sound against
any change to an input, and cheap beside counting (hashing reads the compressed file once
at about 1 GB/s, counting decompresses and counts every base several times slower).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from genemask_preprocess.formats.genome import GenomeSource
from genemask_preprocess.formats.ngram_counts_file import (
    DENSE_MAX_N,
    CountsError,
    NgramCounts,
    iter_count_arrays,
    read_shard_metadata,
    read_token_alphabet,
)
from genemask_preprocess.pmi.ngram_counts import sum_by_code

_HASH_BLOCK = 1 << 20


_SHARD_KEYS = frozenset({"inputs", "index", "count", "start", "stop", "total_bases", "max_n", "both_strands"})


class ShardError(CountsError):
    """A bad ``--shard`` request, or shards that do not merge."""


@dataclass(frozen=True)
class ShardSlice:
    """Shard ``index`` of ``count``: it owns the windows starting in bases ``[start, stop)`` of ``total_bases``."""

    index: int
    count: int
    start: int
    stop: int
    total_bases: int

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> ``(I, N)`` with ``0 <= I < N``."""
    try:
        index_text, count_text = text.split("/")
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise ShardError(f"--shard {text!r}: expected I/N, e.g. 0/8 (shards are numbered 0..N-1)") from None
    if count < 1 or not 0 <= index < count:
        raise ShardError(f"--shard {text}: need N >= 1 and 0 <= I < N (shards are numbered 0..N-1)")
    return index, count


def shard_slice(index: int, count: int, total_bases: int) -> ShardSlice:
    """The bases shard ``index`` of ``count`` owns: an even cut of ``total_bases``."""
    return ShardSlice(index, count, index * total_bases // count, (index + 1) * total_bases // count, total_bases)


def file_checksum(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, hex (as ``sha256sum`` prints it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def describe_inputs(paths: Sequence[str | os.PathLike]) -> list[dict]:
    """Each input's ``name`` (file name), ``size`` (bytes) and ``sha256``, in order."""
    return [
        {"name": os.path.basename(os.fspath(path)), "size": os.path.getsize(path), "sha256": file_checksum(path)}
        for path in paths
    ]


def exact_total_bases(sources: Sequence[GenomeSource]) -> int:
    """All bases of the inputs: from their ``.fai`` indexes where those were checked against the
    file (see :mod:`~genemask_preprocess.formats.fasta_index`), else by reading them once."""
    total = 0
    for source in sources:
        if source.index() is not None:
            total += source.total_bases
        else:
            total += sum(len(record.sequence) for record in source.records())
    return total


def shard_metadata(inputs: list[dict], piece: ShardSlice, max_n: int, both_strands: bool) -> dict:
    """What a shard records (the ``shard`` entry of its COUNTS file)."""
    return {
        "inputs": inputs,
        "index": piece.index,
        "count": piece.count,
        "start": piece.start,
        "stop": piece.stop,
        "total_bases": piece.total_bases,
        "max_n": int(max_n),
        "both_strands": bool(both_strands),
    }


def is_done(path: str | os.PathLike, inputs: list[dict], index: int, count: int, max_n: int,
            both_strands: bool) -> bool:
    """Whether ``path`` already holds this very shard (same inputs, slice, ``max_n`` and strands)."""
    if not os.path.isfile(path):
        return False
    try:
        meta = read_shard_metadata(path)
    except CountsError:
        return False  # not a shard file: counting replaces it
    return meta is not None and (
        meta["inputs"] == inputs and (meta["index"], meta["count"]) == (index, count)
        and meta["max_n"] == max_n and meta["both_strands"] == bool(both_strands)
    )


def check_shards(paths: Sequence[str]) -> list[dict]:
    """Every shard's metadata, checked to form one whole; raises :class:`ShardError` (one line) if not."""
    metas = []
    for path in paths:
        meta = read_shard_metadata(path)
        if meta is None:
            raise ShardError(f"{path}: not a shard (no shard metadata); merge takes files written by 'count --shard I/N'")
        if not isinstance(meta, dict) or not _SHARD_KEYS <= meta.keys():
            raise ShardError(f"{path}: corrupt shard metadata")
        metas.append(meta)
    first, first_path = metas[0], paths[0]
    for path, meta in zip(paths[1:], metas[1:], strict=True):
        if meta["max_n"] != first["max_n"]:
            raise ShardError(f"{path}: --max-n {meta['max_n']} differs from {first_path}'s --max-n {first['max_n']}")
        if meta["both_strands"] != first["both_strands"]:
            raise ShardError(
                f"{path}: counted {_strands(meta)}, but {first_path} {_strands(first)} (--both-strands differs)"
            )
        if meta["inputs"] != first["inputs"]:
            raise ShardError(f"{path}: different inputs from {first_path}: {_first_difference(meta, first)}")
        if meta["count"] != first["count"]:
            raise ShardError(
                f"{path}: shard {meta['index']}/{meta['count']} is from a split into {meta['count']} shards, "
                f"{first_path} into {first['count']}"
            )
    count = first["count"]
    holder: dict[int, str] = {}
    for path, meta in zip(paths, metas, strict=True):
        if meta["index"] in holder:
            raise ShardError(f"duplicate shard {meta['index']}/{count}: {holder[meta['index']]} and {path}")
        holder[meta["index"]] = path
    missing = [i for i in range(count) if i not in holder]
    if missing:
        listed = ", ".join(f"{i}/{count}" for i in missing[:20]) + (", ..." if len(missing) > 20 else "")
        raise ShardError(f"missing {len(missing)} of {count} shards: {listed}")
    by_index = sorted(metas, key=lambda meta: meta["index"])
    bounds = [(meta["start"], meta["stop"]) for meta in by_index]
    if bounds[0][0] != 0 or bounds[-1][1] != first["total_bases"] or any(
        a[1] != b[0] for a, b in zip(bounds, bounds[1:], strict=False)
    ):
        raise ShardError("the shards' slices do not tile the inputs (edited shard metadata?)")
    return metas


def _strands(meta: dict) -> str:
    return "on both strands" if meta["both_strands"] else "on one strand"


def _first_difference(meta: dict, first: dict) -> str:
    mine, theirs = meta["inputs"], first["inputs"]
    if [i["name"] for i in mine] != [i["name"] for i in theirs]:
        return f"{_names(mine)} vs {_names(theirs)}"
    for a, b in zip(mine, theirs, strict=True):
        if a != b:
            return f"{a['name']} has another size or checksum (was the file changed?)"
    return "inputs differ"


def _names(inputs: list[dict]) -> str:
    return "[" + ", ".join(i["name"] for i in inputs) + "]"


def merge_counts(parts: Iterable[NgramCounts]) -> NgramCounts:
    """The exact sum of several COUNTS of the same lengths, strand setting and alphabet (consumed one at a time)."""
    parts = iter(parts)
    first = next(parts, None)
    if first is None:
        return NgramCounts({})
    totals = _Totals(list(first.tables), first.tokens)
    for part in (first, *parts):
        if part.tokens != first.tokens:
            raise ShardError("cannot add counts of different alphabets (bases, or another dictionary's tokens)")
        for n, (codes, counts) in part.tables.items():
            totals.add(n, codes, counts)
    return totals.result(first.both_strands)


def merge_count_files(paths: Sequence[str | os.PathLike], both_strands: bool) -> NgramCounts:
    """:func:`merge_counts` of COUNTS files, adding their dense arrays as stored (no conversion)."""
    totals = None
    for path in paths:
        tokens = read_token_alphabet(path)
        if totals is None:
            totals = _Totals([], tokens)
        elif tokens != totals.tokens:
            raise ShardError(f"{path}: counts of another alphabet than {paths[0]} (bases or another dictionary's tokens)")
        for n, codes, counts in iter_count_arrays(path):
            totals.add(n, codes, counts)
    return totals.result(both_strands) if totals is not None else NgramCounts({}, both_strands=both_strands)


class _Totals:
    """Running sums per length: for bases, dense int64 arrays up to DENSE_MAX_N, sparse parts beyond;
    for tokens (alphabet ``tokens``), sparse parts."""

    def __init__(self, order: list[int], tokens: tuple[str, ...] | None = None):
        self.order = order  # the lengths in the first part's order, so the output is written alike
        self.tokens = tokens
        self.dense: dict[int, np.ndarray] = {}
        self.sparse: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}

    def add(self, n: int, codes: np.ndarray | None, counts: np.ndarray) -> None:
        """Add one table: ``codes`` unique (or None with ``counts`` holding all 4^n)."""
        if n not in self.order:
            self.order.append(n)
        if counts.dtype == np.uint64:  # int64 + uint64 would go through float64
            counts = counts.astype(np.int64)
        if self.tokens is not None and codes is None:
            raise CountsError(f"a dense table of token {n}-grams (token counts are stored sparse)")
        if self.tokens is None and n <= DENSE_MAX_N:
            total = self.dense.get(n)
            if total is None:
                total = self.dense[n] = np.zeros(4**n, dtype=np.int64)
            if codes is None:
                total += counts
            else:
                total[codes] += counts  # codes are unique within a table
        elif codes is None:
            raise CountsError(f"a dense table of {n}-grams is too large")
        else:
            self.sparse.setdefault(n, []).append((codes.astype(np.int64), counts.astype(np.int64)))

    def result(self, both_strands: bool) -> NgramCounts:
        tables = {}
        for n, total in self.dense.items():
            codes = np.flatnonzero(total).astype(np.int64)
            tables[n] = (codes, total[codes])
        for n, pieces in self.sparse.items():
            tables[n] = sum_by_code(np.concatenate([c for c, _ in pieces]), np.concatenate([c for _, c in pieces]))
        return NgramCounts({n: tables[n] for n in self.order}, both_strands=both_strands, tokens=self.tokens)
