"""COUNTS files: exact n-gram counts, binary (``.npz``) or as an ``ngram<TAB>count`` TSV.

Binary format (written by :func:`save_counts`, read by :func:`load_counts`): a NumPy
``.npz`` archive (uncompressed zip of ``.npy`` arrays) with

- ``format``: the string ``"genemask-ngram-counts"``; ``version``: int (1);
- ``max_n``: int N; ``both_strands``: bool;
- for every n in 1..N either ``dense_{n}`` (the 4^n counts indexed by the n-gram's
  base-4 code, A=0 C=1 G=2 T=3, first base most significant) or the sparse pair
  ``codes_{n}`` (sorted unique codes, uint32 or uint64) and ``counts_{n}`` (their counts),
  whichever is smaller. Count arrays are the smallest unsigned dtype that holds them;
- optional ``shard`` (only in the files of ``genemask-pmi count --shard I/N``): a JSON
  string with the shard's inputs, slice, ``max_n`` and strand setting (see
  :mod:`genemask_preprocess.pmi.shards`). Readers that do not know it ignore it, so the
  version stays 1, and files without it load as before.

The TSV interchange form (:func:`write_counts_tsv`, :func:`read_counts_tsv`) has the
header ``ngram<TAB>count`` and one row per n-gram with count > 0, all lengths in one file.
:func:`load_counts` tells the two apart by the zip magic. Pure numpy (no genome reader).
"""

from __future__ import annotations

import json
import os
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from genemask_preprocess.atomic_output import atomic_file
from genemask_preprocess.errors import InputError
from genemask_preprocess.formats.input_file import open_input, open_seekable, open_text
from genemask_preprocess.kmers import codes_of_kmers, kmers_of_codes

COUNTS_FORMAT = "genemask-ngram-counts"
COUNTS_VERSION = 1
MAX_N = 31
"""Longest n-gram: its 2n-bit code must fit a uint64 with room for the shifts."""
DENSE_MAX_N = 12
"""Longest n held as a dense 4^n array (128 MiB of int64); longer n are sparse."""
_NPZ_MAGIC = b"PK\x03\x04"
_INT64_MAX = np.iinfo(np.int64).max
_INTEGER_RE = re.compile(r"-?[0-9]+")
_ACGT = frozenset("ACGT")


class CountsError(InputError):
    """Bad COUNTS input or impossible counting request."""


@dataclass
class NgramCounts:
    """Counts of every n-gram of lengths ``1..max_n`` (or any subset of lengths, for TSV input).

    ``tables[n] = (codes, counts)``: sorted unique base-4 codes (int64) with their counts
    (int64, all > 0). ``first_rows[n]`` is the 1-based TSV row of the first n-gram of that
    length when the counts came from a TSV (for error messages), else absent.
    """

    tables: dict[int, tuple[np.ndarray, np.ndarray]]
    both_strands: bool = False
    first_rows: dict[int, int] = field(default_factory=dict)
    shard: dict | None = None
    """A shard's metadata (inputs, slice, max_n, strands), or None for counts of a whole."""

    @property
    def lengths(self) -> list[int]:
        return sorted(self.tables)

    @property
    def max_n(self) -> int:
        return max(self.tables) if self.tables else 0

    def codes(self, n: int) -> np.ndarray:
        return self.tables[n][0]

    def counts(self, n: int) -> np.ndarray:
        return self.tables[n][1]

    def total(self, n: int) -> int:
        """Number of counted n-gram positions, N_n."""
        return int(self.tables[n][1].sum())

    def dense(self, n: int) -> np.ndarray:
        """All 4^n counts indexed by code (only for n <= DENSE_MAX_N)."""
        if n > DENSE_MAX_N:
            raise ValueError(f"a dense array of 4^{n} counts is too large")
        out = np.zeros(4**n, dtype=np.int64)
        codes, counts = self.tables[n]
        out[codes] = counts
        return out

    def lookup(self, n: int, codes: np.ndarray) -> np.ndarray:
        """Counts (int64, 0 when absent) of the n-grams with the given codes."""
        table_codes, table_counts = self.tables[n]
        if len(table_codes) == 0:
            return np.zeros(len(codes), dtype=np.int64)
        pos = np.searchsorted(table_codes, codes)
        pos = np.minimum(pos, len(table_codes) - 1)
        found = table_codes[pos] == codes
        return np.where(found, table_counts[pos], 0)

    def count_of(self, ngram: str) -> int:
        """Count of one n-gram string (0 when absent, or when it has a non-ACGT letter)."""
        try:
            codes = codes_of_kmers([ngram], len(ngram))
        except ValueError:  # never counted
            return 0
        return int(self.lookup(len(ngram), codes)[0])


def save_counts(counts: NgramCounts, path: str | os.PathLike) -> None:
    """Write COUNTS in the binary ``.npz`` format (atomically)."""
    arrays: dict[str, np.ndarray] = {
        "format": np.array(COUNTS_FORMAT),
        "version": np.array(COUNTS_VERSION),
        "max_n": np.array(counts.max_n),
        "both_strands": np.array(counts.both_strands),
    }
    for n, (codes, values) in counts.tables.items():
        values = values.astype(_count_dtype(values))
        if n <= DENSE_MAX_N and len(codes) * (values.itemsize + 4) > (4**n) * values.itemsize:
            dense = np.zeros(4**n, dtype=values.dtype)
            dense[codes] = values
            arrays[f"dense_{n}"] = dense
        else:
            arrays[f"codes_{n}"] = codes.astype(np.uint32 if n <= 16 else np.uint64)
            arrays[f"counts_{n}"] = values
    if counts.shard is not None:
        arrays["shard"] = np.array(json.dumps(counts.shard, sort_keys=True))
    with atomic_file(path, "wb") as handle:
        np.savez(handle, **arrays)


def _count_dtype(values: np.ndarray):
    top = int(values.max()) if len(values) else 0
    for dtype in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dtype).max:
            return dtype
    return np.uint64


def load_counts(path: str | os.PathLike) -> NgramCounts:
    """Read COUNTS in either format (binary ``.npz`` or ``ngram<TAB>count`` TSV), checked."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CountsError(f"{path}: no such file")
    if os.path.isdir(path):
        raise CountsError(f"{path}: is a directory, expected a COUNTS file")
    try:
        with open_input(path, decompress=False) as handle:
            magic = handle.read(4)
    except OSError as err:
        raise CountsError(f"{path}: cannot read: {err.strerror}") from None
    if magic == _NPZ_MAGIC:
        return _load_npz(path)
    return read_counts_tsv(path)


def _load_npz(path: str) -> NgramCounts:
    try:
        with open_seekable(path) as handle, np.load(handle, allow_pickle=False) as data:
            if "format" not in data or str(data["format"]) != COUNTS_FORMAT:
                raise CountsError(f"{path}: not a genemask-pmi COUNTS file")
            if int(data["version"]) > COUNTS_VERSION:
                raise CountsError(f"{path}: COUNTS format version {int(data['version'])} is newer than this tool")
            both = bool(data["both_strands"])
            max_n = int(data["max_n"])
            tables = {}
            for key in data.files:
                if key.startswith("dense_"):
                    n = _length_of_key(path, key)
                    dense = _count_array(path, key, data[key])
                    if dense.shape != (4**n,):
                        raise CountsError(f"{path}: {key} holds {dense.size} counts, expected 4^{n} = {4**n}")
                    codes = np.flatnonzero(dense).astype(np.int64)
                    tables[n] = (codes, dense[codes])
                elif key.startswith("codes_"):
                    n = _length_of_key(path, key)
                    tables[n] = _sparse_table(path, n, data[key], data[f"counts_{n}"])
            shard = json.loads(str(data["shard"])) if "shard" in data.files else None
    except CountsError:
        raise
    except (OSError, ValueError, KeyError, EOFError, TypeError, zipfile.BadZipFile, zlib.error) as err:
        raise CountsError(f"{path}: corrupt COUNTS file (truncated or damaged?): {err}") from None
    if not 1 <= max_n <= MAX_N or not tables or max(tables) != max_n:
        raise CountsError(f"{path}: corrupt COUNTS file: max_n is {max_n} but it holds n = {sorted(tables)}")
    counts = NgramCounts(tables, both_strands=both, shard=shard)
    check_consistent(counts, path)
    return counts


def iter_count_arrays(path: str | os.PathLike) -> Iterator[tuple[int, np.ndarray | None, np.ndarray]]:
    """``(n, codes, counts)`` per length of a binary COUNTS file as stored, for summing many files fast.

    ``codes`` is None for a dense length (``counts`` then holds all 4^n counts); counts keep
    their stored unsigned dtype. Use :func:`load_counts` for anything else.
    """
    path = os.fspath(path)
    try:
        with open_seekable(path) as handle, np.load(handle, allow_pickle=False) as data:
            if "format" not in data.files or str(data["format"]) != COUNTS_FORMAT:
                raise CountsError(f"{path}: not a genemask-pmi COUNTS file")
            for key in data.files:
                if key.startswith("dense_"):
                    yield int(key[6:]), None, data[key]
                elif key.startswith("codes_"):
                    n = int(key[6:])
                    yield n, data[key], data[f"counts_{n}"]
    except CountsError:
        raise
    except (OSError, ValueError, KeyError, EOFError, TypeError, zipfile.BadZipFile, zlib.error) as err:
        raise CountsError(f"{path}: corrupt COUNTS file: {err}") from None


def read_shard_metadata(path: str | os.PathLike) -> dict | None:
    """The ``shard`` metadata of a binary COUNTS file without loading its counts; None if it has none."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CountsError(f"{path}: no such file")
    try:
        with open_input(path, decompress=False) as handle:
            if handle.read(4) != _NPZ_MAGIC:
                return None  # a TSV: never a shard
        with open_seekable(path) as handle, np.load(handle, allow_pickle=False) as data:
            if "format" not in data.files or str(data["format"]) != COUNTS_FORMAT:
                raise CountsError(f"{path}: not a genemask-pmi COUNTS file")
            return json.loads(str(data["shard"])) if "shard" in data.files else None
    except CountsError:
        raise
    except (OSError, ValueError, KeyError, EOFError, TypeError, zipfile.BadZipFile, zlib.error) as err:
        raise CountsError(f"{path}: corrupt COUNTS file: {err}") from None


def _length_of_key(path: str, key: str) -> int:
    digits = key.split("_", 1)[1]
    if not digits.isdigit() or not 1 <= int(digits) <= MAX_N:
        raise CountsError(f"{path}: corrupt COUNTS file: unexpected array {key!r}")
    return int(digits)


def _count_array(path: str, key: str, values: np.ndarray) -> np.ndarray:
    """Counts as int64, refusing what no counting gives: non-integers (NaN), negatives, beyond int64."""
    if values.ndim != 1 or values.dtype.kind not in "ui":
        raise CountsError(f"{path}: {key} holds {values.dtype} values of shape {values.shape}; counts are 1-D integers")
    if values.size and values.dtype.kind == "i" and values.min() < 0:
        raise CountsError(f"{path}: {key} holds a negative count ({int(values.min())})")
    if values.size and values.dtype == np.uint64 and values.max() > np.uint64(_INT64_MAX):
        raise CountsError(f"{path}: {key} holds a count beyond the int64 range ({int(values.max())})")
    return values.astype(np.int64)


def _sparse_table(path: str, n: int, codes: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if codes.ndim != 1 or codes.dtype.kind not in "ui":
        raise CountsError(f"{path}: codes_{n} holds {codes.dtype} values of shape {codes.shape}; codes are 1-D integers")
    values = _count_array(path, f"counts_{n}", values)
    if len(values) != len(codes):
        raise CountsError(f"{path}: codes_{n} has {len(codes)} entries but counts_{n} has {len(values)}")
    codes = codes.astype(np.uint64).astype(np.int64) if codes.dtype == np.uint64 else codes.astype(np.int64)
    if len(codes) and (codes.min() < 0 or codes.max() >= 4**n or np.any(codes[1:] <= codes[:-1])):
        raise CountsError(f"{path}: codes_{n} are not sorted unique {n}-gram codes")
    keep = values > 0
    return codes[keep], values[keep]


def check_consistent(counts: NgramCounts, path: str | os.PathLike) -> None:
    """Refuse counts no genome gives: an n-gram counted more often than its own prefix or suffix.

    Every occurrence of an (n+1)-gram contains an occurrence of its first n and of its last n
    bases, so it cannot be counted more often than either. A hand edit or a damaged file breaks
    this, and a 6-gram counted above its 5-gram prefix would rank first in every table.
    (Sums over the four extensions are not checked: tools that count across record joins, as
    the published GeneMask counts were, exceed them slightly.)
    """
    for n in counts.lengths:
        total = counts.counts(n).sum(dtype=np.float64)
        if total >= 2.0**62:
            raise CountsError(f"{os.fspath(path)}: the {n}-gram counts add up to {total:.3g}, beyond any genome")
        if n + 1 not in counts.tables:
            continue
        codes, values = counts.tables[n + 1]
        for part, shorter in (("prefix", codes >> 2), ("suffix", codes & (4**n - 1))):
            bad = np.flatnonzero(values > counts.lookup(n, shorter))
            if len(bad):
                i = bad[0]
                gram = kmers_of_codes(codes[i : i + 1], n + 1)[0]
                sub = kmers_of_codes(shorter[i : i + 1], n)[0]
                raise CountsError(
                    f"{os.fspath(path)}: inconsistent counts: {gram} is counted {int(values[i])} times, more than "
                    f"its {part} {sub} ({int(counts.lookup(n, shorter[i : i + 1])[0])}); the file was edited or damaged"
                )


def write_counts_tsv(counts: NgramCounts, path: str | os.PathLike) -> None:
    """Write the ``ngram<TAB>count`` interchange TSV (all lengths, count > 0), atomically."""
    with atomic_file(path, "w") as handle:
        handle.write("ngram\tcount\n")
        for n in counts.lengths:
            codes, values = counts.tables[n]
            keep = values > 0
            names = kmers_of_codes(codes[keep], n)
            handle.writelines(f"{s}\t{c}\n" for s, c in zip(names, values[keep].tolist(), strict=True))


def read_counts_tsv(path: str | os.PathLike) -> NgramCounts:
    """Read an ``ngram<TAB>count`` TSV; any bad row raises :class:`CountsError` naming it."""
    path = os.fspath(path)
    by_length: dict[int, tuple[list[str], list[int], list[int]]] = {}
    try:
        handle = open_text(path, encoding="ascii", decompress=False)
    except OSError as err:
        raise CountsError(f"{path}: cannot read: {err.strerror}") from None
    with handle:
        try:
            header = handle.readline().rstrip("\r\n")
            if header.split("\t")[:2] != ["ngram", "count"]:
                raise CountsError(f"{path}: row 1: expected the header 'ngram<TAB>count', got {header[:60]!r}")
            for row_no, line in enumerate(handle, start=2):
                line = line.rstrip("\r\n")
                if not line:
                    continue
                fields = line.split("\t")
                if len(fields) < 2:
                    raise CountsError(f"{path}: row {row_no}: expected 'ngram<TAB>count', got {line[:60]!r}")
                ngram, raw = fields[0].strip().upper(), fields[1].strip()
                if not ngram or not set(ngram) <= _ACGT:
                    raise CountsError(f"{path}: row {row_no}: {fields[0][:40]!r} is not an A/C/G/T n-gram")
                if len(ngram) > MAX_N:
                    raise CountsError(f"{path}: row {row_no}: n-gram longer than {MAX_N}")
                if not _INTEGER_RE.fullmatch(raw):
                    raise CountsError(f"{path}: row {row_no}: count {raw[:30]!r} is not an integer")
                value = int(raw)
                if value < 0:
                    raise CountsError(f"{path}: row {row_no}: count {value} is negative")
                if value > _INT64_MAX:
                    raise CountsError(f"{path}: row {row_no}: count {raw[:30]} is beyond the int64 range")
                entry = by_length.setdefault(len(ngram), ([], [], []))
                entry[0].append(ngram)
                entry[1].append(value)
                entry[2].append(row_no)
        except UnicodeDecodeError:
            raise CountsError(f"{path}: not a text COUNTS TSV (binary or non-ASCII content)") from None
    if not by_length:
        raise CountsError(f"{path}: no n-gram rows")
    tables, first_rows = {}, {}
    for n, (ngrams, values, rows) in sorted(by_length.items()):
        codes = codes_of_kmers(ngrams, n)
        order = np.argsort(codes, kind="stable")
        codes, counts, row_arr = codes[order], np.asarray(values, np.int64)[order], np.asarray(rows)[order]
        dup = np.flatnonzero(codes[1:] == codes[:-1])
        if len(dup):
            raise CountsError(f"{path}: row {row_arr[dup[0] + 1]}: duplicate n-gram {ngrams[order[dup[0] + 1]]!r}")
        keep = counts > 0
        tables[n] = (codes[keep], counts[keep])
        first_rows[n] = int(min(rows))
    counts = NgramCounts(tables, first_rows=first_rows)
    check_consistent(counts, path)
    return counts
