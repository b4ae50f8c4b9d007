"""Exact genome-wide n-gram counts for n = 1..N over the A/C/G/T runs of a genome.

One pass computes the rolling base-4 codes of the N-grams; every shorter length is
then derived from the longer one without touching the genome again: the n-grams of
a run are the n-prefixes of its (n+1)-grams plus the one n-gram that ends at the
run's end. So ``counts[n] = sum over the last base of counts[n+1] + tails[n]``,
which costs O(4^n) (dense) or O(distinct) (sparse) per length instead of O(genome).
Windows that contain a non-ACGT letter are never counted; sequences are split,
never fused, at such letters.

COUNTS binary format (``.npz``, written by :func:`save_counts`, read by :func:`load_counts`):
a NumPy ``.npz`` archive (uncompressed zip of ``.npy`` arrays) with

- ``format``: the string ``"genemask-ngram-counts"``; ``version``: int (1);
- ``max_n``: int N; ``both_strands``: bool;
- for every n in 1..N either ``dense_{n}`` (the 4^n counts indexed by the n-gram's
  base-4 code, A=0 C=1 G=2 T=3, first base most significant) or the sparse pair
  ``codes_{n}`` (sorted unique codes, uint32 or uint64) and ``counts_{n}`` (their counts),
  whichever is smaller. Count arrays are the smallest unsigned dtype that holds them.

The TSV interchange form (:func:`write_counts_tsv`, :func:`read_counts_tsv`) has the
header ``ngram<TAB>count`` and one row per n-gram with count > 0, all lengths in one file.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from preprocess.genome_reader import open_genome
from preprocess.kmers import INVALID, encode_bases

COUNTS_FORMAT = "genemask-ngram-counts"
COUNTS_VERSION = 1
MAX_N = 31
"""Longest n-gram: its 2n-bit code must fit a uint64 with room for the shifts."""
DENSE_MAX_N = 12
"""Longest n counted into a dense 4^n array (128 MiB of int64); longer n sort and merge."""
_NPZ_MAGIC = b"PK\x03\x04"


class CountsError(Exception):
    """Bad COUNTS input or impossible request; the message is one line meant for the user."""


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
        """Count of one n-gram string (0 when absent)."""
        codes = _codes_of_strings([ngram.upper()], len(ngram))
        return int(self.lookup(len(ngram), codes)[0])


# --------------------------------------------------------------------------- counting


def count_ngrams(
    genome: str | os.PathLike,
    max_n: int = 10,
    *,
    both_strands: bool = False,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
    piece_bases: int | None = None,
) -> NgramCounts:
    """Count every n-gram, n = 1..``max_n``, of a FASTA/TSV genome (see module docstring).

    ``workers`` processes count pieces of the genome in parallel (at most ``2 * workers``
    pieces in flight, so memory stays bounded); the result does not depend on it.
    ``progress(bases)`` is called as pieces finish. ``piece_bases`` overrides the size of
    the pieces the genome is cut into (by default a quarter of the genome per worker,
    clipped to 1..16 Mbp). Raises ``GenomeInputError`` for bad
    input and :class:`CountsError` when ``max_n`` is out of range or needs too much memory.
    """
    max_n = check_max_n(max_n)
    source = open_genome(genome)
    total_bases = source.total_bases or guess_total_bases(source.path)
    workers = max(1, int(workers))
    check_memory(max_n, total_bases, workers, both_strands)
    piece_bases = piece_bases or _default_piece_bases(total_bases, workers)
    pieces = _pieces(source.records(), max_n, piece_bases)
    top = _Accumulator(max_n)
    tails = [[] for _ in range(max_n)]  # tails[n]: codes of the n-grams ending at run ends
    for result, bases in _map_bounded(_count_piece, pieces, max_n, workers):
        top.add(result[0])
        for n in range(1, max_n):
            tails[n].append(result[1][n])
        if progress is not None:
            progress(bases)
    tables = {max_n: top.result()}
    for n in range(max_n - 1, 0, -1):
        tail_codes = np.concatenate(tails[n]) if tails[n] else np.zeros(0, np.int64)
        tables[n] = _shorten(tables[n + 1], n, tail_codes)
    if both_strands:
        tables = {n: _add_reverse_complement(n, *table) for n, table in tables.items()}
    return NgramCounts(tables, both_strands=both_strands)


def check_max_n(max_n: int) -> int:
    if not isinstance(max_n, (int, np.integer)) or not 1 <= max_n <= MAX_N:
        raise CountsError(f"--max-n must be an integer from 1 to {MAX_N}, got {max_n!r}")
    return int(max_n)


def estimate_memory(max_n: int, total_bases: int, workers: int, both_strands: bool) -> int:
    """Peak bytes :func:`count_ngrams` needs for a genome of ``total_bases`` bases."""
    piece = _default_piece_bases(total_bases, workers)
    per_worker = piece * 40  # codes, validity, the int64 copy bincount/sort make
    strands = 2 if both_strands else 1
    merged = 0
    for n in range(1, max_n + 1):
        if n <= DENSE_MAX_N:
            merged += (4**n) * 8 * (3 if n == max_n else 1)
        else:  # sparse: codes + counts, and a merge copy of both
            merged += min(4**n, total_bases * strands) * 32
    if max_n <= DENSE_MAX_N:
        per_worker += (4**max_n) * 8 * 2
    # The reader holds one record (as text, bytes and codes); chromosome-sized at most.
    reader = 3 * min(total_bases, 250_000_000)
    return workers * per_worker + merged + reader


def _default_piece_bases(total_bases: int, workers: int) -> int:
    return int(np.clip(total_bases // (4 * workers) + 1, 1 << 20, 1 << 24))


def available_memory() -> int:
    """Bytes of memory available without swapping (MemAvailable), or a large number if unknown."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def check_memory(max_n: int, total_bases: int, workers: int, both_strands: bool) -> None:
    """Raise :class:`CountsError` naming the figures if counting would not fit in memory."""
    need = estimate_memory(max_n, total_bases, workers, both_strands)
    have = int(available_memory() * 0.8)
    if need <= have:
        return
    fits = [n for n in range(1, max_n) if estimate_memory(n, total_bases, workers, both_strands) <= have]
    hint = f"; --max-n {fits[-1]} fits" if fits else ""
    raise CountsError(
        f"--max-n {max_n} needs about {need / 2**30:.1f} GiB of memory for {total_bases:,} bases "
        f"with {workers} worker(s), but only {have / 2**30:.1f} GiB is available{hint}"
    )


def guess_total_bases(path: str) -> int:
    """Genome size from the file size when there is no .fai (gzip DNA compresses about 4x)."""
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        gz = handle.read(2) == b"\x1f\x8b"
    return size * 4 if gz else size


def _pieces(records: Iterable, max_n: int, piece_bases: int) -> Iterator[tuple[np.ndarray, int, bool, int]]:
    """Yield ``(view, own_length, ends_at_record_end, bases)`` pieces of the genome.

    Small records are joined with an INVALID separator (which splits runs exactly as a
    record boundary does). Large records are cut into pieces that own the windows
    starting in ``[0, own_length)`` and see ``max_n - 1`` extra bases so no window is lost.
    """
    sep = np.array([INVALID], dtype=np.uint8)
    batch: list[np.ndarray] = []
    batch_len = 0
    for record in records:
        codes = encode_bases(record.sequence.encode("ascii", errors="replace"))
        if len(codes) >= piece_bases:
            if batch:
                joined = np.concatenate(batch)
                yield joined, len(joined), True, batch_len
                batch, batch_len = [], 0
            for start in range(0, len(codes), piece_bases):
                own = min(piece_bases, len(codes) - start)
                stop = min(start + own + max_n - 1, len(codes))
                yield codes[start:stop], own, stop == len(codes), own
            continue
        if batch:
            batch.append(sep)
        batch.append(codes)
        batch_len += len(codes)
        if batch_len >= piece_bases:
            joined = np.concatenate(batch)
            yield joined, len(joined), True, batch_len
            batch, batch_len = [], 0
    if batch:
        joined = np.concatenate(batch)
        yield joined, len(joined), True, batch_len


def rolling_codes(codes: np.ndarray, n: int) -> np.ndarray:
    """Base-4 codes of the ``len(codes) - n + 1`` windows of length n (INVALID read as A)."""
    m = len(codes) - n + 1
    if m <= 0:
        return np.zeros(0, dtype=np.uint64)
    dtype = np.uint32 if n <= 16 else np.uint64
    bits = codes & np.uint8(3)
    out = bits[:m].astype(dtype)
    for j in range(1, n):
        out <<= dtype(2)
        out |= bits[j : j + m]
    return out


def _count_piece(view: np.ndarray, own: int, at_end: bool, max_n: int):
    """Counts of the max_n-grams starting in ``[0, own)`` and the tail codes per shorter n."""
    m = min(own, max(len(view) - max_n + 1, 0))
    window_codes = rolling_codes(view, max_n)[:m]
    invalid_at = np.flatnonzero(view == INVALID)
    if len(invalid_at):
        # A window starting at i is valid iff no invalid letter lies in [i, i + max_n).
        bad = np.zeros(len(view) + 1, dtype=np.int32)
        bad[invalid_at + 1] = 1
        np.cumsum(bad, out=bad)
        window_codes = window_codes[bad[max_n : max_n + m] == bad[:m]]
    if max_n <= DENSE_MAX_N and len(window_codes) >= (4**max_n) // 8:
        top = ("dense", np.bincount(window_codes, minlength=4**max_n).astype(np.int64))
    else:
        codes, counts = np.unique(window_codes.astype(np.int64), return_counts=True)
        top = ("sparse", codes, counts.astype(np.int64))
    # Runs of A/C/G/T, keeping only ends that are real (a non-ACGT letter or the record
    # end), not the edge of the view.
    run_start = np.concatenate(([0], invalid_at + 1))
    run_end = np.concatenate((invalid_at, [len(view)]))
    real = (run_end < len(view)) | at_end
    run_start, run_end = run_start[real], run_end[real]
    tails: list[np.ndarray] = [np.zeros(0, np.int64)]
    for n in range(1, max_n):
        first = run_end - n
        keep = (first >= run_start) & (first < own)
        first = first[keep]
        code = np.zeros(len(first), dtype=np.int64)
        for j in range(n):
            code = (code << 2) | (view[first + j] & 3)
        tails.append(code)
    return top, tails


def _map_bounded(func, pieces, max_n: int, workers: int):
    """Yield ``(func(piece), bases)`` with at most ``2 * workers`` pieces in flight."""
    if workers == 1:
        for view, own, at_end, bases in pieces:
            yield func(view, own, at_end, max_n), bases
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        pending: deque = deque()
        for view, own, at_end, bases in pieces:
            pending.append((pool.apply_async(func, (view, own, at_end, max_n)), bases))
            if len(pending) >= 2 * workers:
                job, done = pending.popleft()
                yield job.get(), done
        while pending:
            job, done = pending.popleft()
            yield job.get(), done


class _Accumulator:
    """Sums per-piece counts of the longest n-grams, densely when 4^n fits."""

    def __init__(self, n: int):
        self.n = n
        self.dense = np.zeros(4**n, dtype=np.int64) if n <= DENSE_MAX_N else None
        self.sparse: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, part) -> None:
        if part[0] == "dense":
            self.dense += part[1]
        elif self.dense is not None:
            self.dense[part[1]] += part[2]
        else:
            self.sparse.append((part[1], part[2]))

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        if self.dense is not None:
            codes = np.flatnonzero(self.dense).astype(np.int64)
            return codes, self.dense[codes]
        if not self.sparse:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        codes = np.concatenate([c for c, _ in self.sparse])
        counts = np.concatenate([c for _, c in self.sparse])
        self.sparse = []
        return _sum_by_code(codes, counts)


def _sum_by_code(codes: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(codes, kind="stable")
    codes, counts = codes[order], counts[order]
    return _reduce_sorted(codes, counts)


def _reduce_sorted(codes: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum the counts of equal codes in a sorted code array."""
    if len(codes) == 0:
        return codes.astype(np.int64), counts.astype(np.int64)
    first = np.concatenate(([True], codes[1:] != codes[:-1]))
    starts = np.flatnonzero(first)
    return codes[starts].astype(np.int64), np.add.reduceat(counts, starts).astype(np.int64)


def _shorten(longer: tuple[np.ndarray, np.ndarray], n: int, tail_codes: np.ndarray):
    """Counts of the n-grams from those of the (n+1)-grams plus the n-grams at run ends."""
    codes, counts = longer
    if n <= DENSE_MAX_N:
        dense = np.bincount(codes >> 2, weights=counts, minlength=4**n)
        # float64 weights are exact below 2^53, far above any genome's count.
        dense = np.rint(dense).astype(np.int64)
        dense += np.bincount(tail_codes, minlength=4**n)
        nonzero = np.flatnonzero(dense).astype(np.int64)
        return nonzero, dense[nonzero]
    # Right-shifting sorted codes keeps them sorted, so the prefix sums are one reduceat.
    prefix_codes, prefix_counts = _reduce_sorted(codes >> 2, counts)
    if len(tail_codes) == 0:
        return prefix_codes, prefix_counts
    return _sum_by_code(
        np.concatenate([prefix_codes, tail_codes]),
        np.concatenate([prefix_counts, np.ones(len(tail_codes), np.int64)]),
    )


def reverse_complement_codes(codes: np.ndarray, n: int) -> np.ndarray:
    """Codes of the reverse complements of n-grams given by code."""
    comp = (~codes.astype(np.int64)) & ((1 << (2 * n)) - 1)  # complement: A<->T, C<->G is 3 - x
    out = np.zeros(len(codes), dtype=np.int64)
    for _ in range(n):
        out = (out << 2) | (comp & 3)
        comp >>= 2
    return out


def _add_reverse_complement(n: int, codes: np.ndarray, counts: np.ndarray):
    """Counts over both strands: every window on the minus strand is a reverse-complemented plus window."""
    return _sum_by_code(
        np.concatenate([codes, reverse_complement_codes(codes, n)]), np.concatenate([counts, counts])
    )


# --------------------------------------------------------------------------- files


def save_counts(counts: NgramCounts, path: str | os.PathLike) -> None:
    """Write COUNTS in the binary ``.npz`` format (atomically: temp file + rename)."""
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
    with atomic_output(path, "wb") as handle:
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
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except OSError as err:
        raise CountsError(f"{path}: cannot read: {err.strerror}") from None
    if magic == _NPZ_MAGIC:
        return _load_npz(path)
    return read_counts_tsv(path)


def _load_npz(path: str) -> NgramCounts:
    try:
        with np.load(path, allow_pickle=False) as data:
            if "format" not in data or str(data["format"]) != COUNTS_FORMAT:
                raise CountsError(f"{path}: not a genemask-pmi COUNTS file")
            if int(data["version"]) > COUNTS_VERSION:
                raise CountsError(f"{path}: COUNTS format version {int(data['version'])} is newer than this tool")
            both = bool(data["both_strands"])
            tables = {}
            for key in data.files:
                if key.startswith("dense_"):
                    n = int(key[6:])
                    dense = data[key].astype(np.int64)
                    codes = np.flatnonzero(dense).astype(np.int64)
                    tables[n] = (codes, dense[codes])
                elif key.startswith("codes_"):
                    n = int(key[6:])
                    tables[n] = (data[key].astype(np.int64), data[f"counts_{n}"].astype(np.int64))
    except CountsError:
        raise
    except (OSError, ValueError, KeyError) as err:
        raise CountsError(f"{path}: corrupt COUNTS file: {err}") from None
    return NgramCounts(tables, both_strands=both)


def _codes_of_strings(ngrams: list[str], n: int) -> np.ndarray:
    """Codes of equal-length n-gram strings (caller checks they are A/C/G/T)."""
    raw = np.frombuffer("".join(ngrams).encode("ascii", errors="replace"), dtype=np.uint8)
    bits = encode_bases(raw).reshape(len(ngrams), n).astype(np.int64)
    code = np.zeros(len(ngrams), dtype=np.int64)
    for j in range(n):
        code = (code << 2) | bits[:, j]
    return code


def strings_of_codes(codes: np.ndarray, n: int) -> list[str]:
    """n-gram strings of codes (vectorised decode)."""
    codes = np.asarray(codes, dtype=np.int64)
    shifts = 2 * np.arange(n - 1, -1, -1, dtype=np.int64)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)[(codes[:, None] >> shifts) & 3]
    blob = letters.tobytes().decode("ascii")
    return [blob[i : i + n] for i in range(0, len(blob), n)]


def write_counts_tsv(counts: NgramCounts, path: str | os.PathLike) -> None:
    """Write the ``ngram<TAB>count`` interchange TSV (all lengths, count > 0), atomically."""
    with atomic_output(path, "w") as handle:
        handle.write("ngram\tcount\n")
        for n in counts.lengths:
            codes, values = counts.tables[n]
            keep = values > 0
            names = strings_of_codes(codes[keep], n)
            handle.writelines(f"{s}\t{c}\n" for s, c in zip(names, values[keep].tolist(), strict=True))


def read_counts_tsv(path: str | os.PathLike) -> NgramCounts:
    """Read an ``ngram<TAB>count`` TSV; any bad row raises :class:`CountsError` naming it."""
    path = os.fspath(path)
    by_length: dict[int, tuple[list[str], list[int], list[int]]] = {}
    valid_letters = set("ACGT")
    try:
        handle = open(path, encoding="ascii", newline="")
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
                if not ngram or not set(ngram) <= valid_letters:
                    raise CountsError(f"{path}: row {row_no}: {fields[0][:40]!r} is not an A/C/G/T n-gram")
                if len(ngram) > MAX_N:
                    raise CountsError(f"{path}: row {row_no}: n-gram longer than {MAX_N}")
                try:
                    value = int(raw)
                except ValueError:
                    raise CountsError(f"{path}: row {row_no}: count {raw[:30]!r} is not an integer") from None
                if value < 0:
                    raise CountsError(f"{path}: row {row_no}: count {value} is negative")
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
        codes = _codes_of_strings(ngrams, n)
        order = np.argsort(codes, kind="stable")
        codes, counts, row_arr = codes[order], np.asarray(values, np.int64)[order], np.asarray(rows)[order]
        dup = np.flatnonzero(codes[1:] == codes[:-1])
        if len(dup):
            raise CountsError(f"{path}: row {row_arr[dup[0] + 1]}: duplicate n-gram {ngrams[order[dup[0] + 1]]!r}")
        keep = counts > 0
        tables[n] = (codes[keep], counts[keep])
        first_rows[n] = int(min(rows))
    return NgramCounts(tables, first_rows=first_rows)


class atomic_output:
    """Open a temporary file next to ``path``; rename it into place only on a clean exit."""

    def __init__(self, path: str | os.PathLike, mode: str = "w"):
        self.path = os.fspath(path)
        self.mode = mode

    def __enter__(self):
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise CountsError(f"{self.path}: output directory does not exist")
        fd, self.tmp = tempfile.mkstemp(prefix=f".{os.path.basename(self.path)}.", suffix=".tmp", dir=directory)
        self.handle = os.fdopen(fd, self.mode)
        return self.handle

    def __exit__(self, exc_type, exc, tb):
        self.handle.close()
        if exc_type is None:
            os.chmod(self.tmp, 0o644)
            os.replace(self.tmp, self.path)
        else:
            os.unlink(self.tmp)
        return False
