"""Exact genome-wide n-gram counts for n = 1..N over the A/C/G/T runs of a genome.

One pass computes the rolling base-4 codes of the N-grams; every shorter length is
then derived from the longer one without touching the genome again: the n-grams of
a run are the n-prefixes of its (n+1)-grams plus the one n-gram that ends at the
run's end. So ``counts[n] = sum over the last base of counts[n+1] + tails[n]``,
which costs O(4^n) (dense) or O(distinct) (sparse) per length instead of O(genome).
Windows that contain a non-ACGT letter are never counted; sequences are split,
never fused, at such letters. The result is a
:class:`~genemask_preprocess.formats.ngram_counts_file.NgramCounts`.
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from genemask_preprocess.formats.genome import GenomeSource, open_genome
from genemask_preprocess.formats.ngram_counts_file import (
    DENSE_MAX_N,
    MAX_N,
    CountsError,
    NgramCounts,
)
from genemask_preprocess.kmers import (
    INVALID,
    codes_of_digits,
    encode_bases,
    kmer_codes,
    reverse_complement_codes,
)
from genemask_preprocess.parallel_map import parallel_map
from genemask_preprocess.pmi.memory_plan import check_memory, default_piece_bases, guess_total_bases


@dataclass(frozen=True)
class CountPlan:
    """A checked counting request: the open genomes and the sizes they will be counted with."""

    sources: tuple[GenomeSource, ...]
    max_n: int
    both_strands: bool
    workers: int
    total_bases: int
    """The bases to count: known from .fai indexes or ``base_range``, else guessed from file sizes."""
    piece_bases: int
    base_range: tuple[int, int] | None = None
    """Count only the windows starting in these bases of the genomes laid end to end (a shard)."""

    @property
    def source(self) -> GenomeSource:
        return self.sources[0]


def plan_count(
    genome: str | os.PathLike | Sequence[str | os.PathLike],
    max_n: int = 10,
    *,
    both_strands: bool = False,
    workers: int = 1,
    piece_bases: int | None = None,
    base_range: tuple[int, int] | None = None,
) -> CountPlan:
    """Open the genome(s) and check every limit (``max_n``, ``workers``, memory) before any counting.

    Several genomes are counted as one (their records one after the other). ``base_range``
    (see :mod:`genemask_preprocess.pmi.shards`) restricts counting to the windows that start
    in those bases. Raises ``GenomeInputError`` for bad input and :class:`CountsError` for an
    impossible request.
    """
    if not isinstance(workers, (int, np.integer)) or workers < 1:
        raise CountsError(f"--workers must be at least 1, got {workers}")
    max_n = check_max_n(max_n)
    genomes = [genome] if isinstance(genome, (str, os.PathLike)) else list(genome)
    sources = tuple(open_genome(path) for path in genomes)
    if base_range is not None:
        total_bases = base_range[1] - base_range[0]
    else:
        total_bases = sum(source.total_bases or guess_total_bases(source.path) for source in sources)
    check_memory(max_n, total_bases, int(workers), both_strands)
    piece_bases = piece_bases or default_piece_bases(total_bases, int(workers))
    return CountPlan(sources, max_n, both_strands, int(workers), total_bases, piece_bases, base_range)


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
    clipped to 1..16 Mbp). Raises as :func:`plan_count`.
    """
    plan = plan_count(genome, max_n, both_strands=both_strands, workers=workers, piece_bases=piece_bases)
    return run_count(plan, progress)


def run_count(plan: CountPlan, progress: Callable[[int], None] | None = None) -> NgramCounts:
    """Count the genome of a :func:`plan_count` plan."""
    max_n = plan.max_n
    sizes: deque[int] = deque()  # bases of the pieces in flight, in order, for progress

    def work() -> Iterator[tuple[np.ndarray, int, bool, int]]:
        indexes = [source.index() for source in plan.sources] if plan.base_range is not None else [None]
        if None in indexes:
            records = itertools.chain.from_iterable(source.records() for source in plan.sources)
            owned = _owned(records, plan.base_range)
        else:  # every input has a .fai: read only the shard's bases
            owned = _owned_by_region(plan.sources, indexes, plan.base_range, max_n)
        for view, own, at_end, bases in _pieces(owned, max_n, plan.piece_bases):
            sizes.append(bases)
            yield view, own, at_end, max_n

    top = _Accumulator(max_n)
    tails = [[] for _ in range(max_n)]  # tails[n]: codes of the n-grams ending at run ends
    for top_part, tail_parts in parallel_map(_count_piece, work(), plan.workers):
        top.add(top_part)
        for n in range(1, max_n):
            tails[n].append(tail_parts[n])
        bases = sizes.popleft()
        if progress is not None:
            progress(bases)
    tables = {max_n: top.result()}
    for n in range(max_n - 1, 0, -1):
        tail_codes = np.concatenate(tails[n]) if tails[n] else np.zeros(0, np.int64)
        tables[n] = _shorten(tables[n + 1], n, tail_codes)
    if len(tables[max_n][0]) == 0:  # the same input genemask-preprocess refuses
        raise CountsError(
            f"{plan.source.path}: no A/C/G/T run of {max_n} or more bases, so no {max_n}-gram to count "
            "(header-only, all-N or too short?)"
        )
    if plan.both_strands:
        tables = {n: _add_reverse_complement(n, *table) for n, table in tables.items()}
    return NgramCounts(tables, both_strands=plan.both_strands)


def check_max_n(max_n: int) -> int:
    if not isinstance(max_n, (int, np.integer)) or not 1 <= max_n <= MAX_N:
        raise CountsError(f"--max-n must be an integer from 1 to {MAX_N}, got {max_n!r}")
    return int(max_n)


def _owned(records: Iterable, base_range: tuple[int, int] | None) -> Iterator[tuple[str, int, int, int, int]]:
    """``(text, text_start, own_start, own_stop, length)`` per record that holds owned windows.

    The owned windows start at bases ``[own_start, own_stop)`` of a record of ``length``
    bases; ``text`` holds its bases from ``text_start`` on (here the whole record). Without
    ``base_range`` every record is owned whole; with it, only the part inside ``[base_range)``
    of the records laid end to end, and reading stops after it.
    """
    if base_range is None:
        for record in records:
            yield record.sequence, 0, 0, len(record.sequence), len(record.sequence)
        return
    low, high = base_range
    offset = 0
    for record in records:
        length = len(record.sequence)
        start, stop = max(low - offset, 0), min(high - offset, length)
        offset += length
        if start < stop:
            yield record.sequence, 0, start, stop, length
        if offset >= high:
            return


def _owned_by_region(sources, indexes, base_range: tuple[int, int], max_n: int):
    """As :func:`_owned`, reading only the owned bases and the ``max_n - 1`` after them through the ``.fai``."""
    low, high = base_range
    offset = 0
    for source, index in zip(sources, indexes, strict=True):
        spans = []
        for name, length in index:
            start, stop = max(low - offset, 0), min(high - offset, length)
            offset += length
            if start < stop:
                spans.append((name, start, stop, length))
            if offset >= high:
                break
        regions = source.regions((name, start, min(stop + max_n - 1, length)) for name, start, stop, length in spans)
        for (_, start, stop, length), text in zip(spans, regions, strict=True):
            yield text, start, start, stop, length
        if offset >= high:
            return


def _pieces(owned: Iterable, max_n: int, piece_bases: int) -> Iterator[tuple[np.ndarray, int, bool, int]]:
    """Yield ``(view, own_length, ends_at_record_end, bases)`` pieces of the genome.

    Small records are joined with an INVALID separator (which splits runs exactly as a
    record boundary does). Large records, and parts of records (a shard's edges), are cut
    into pieces that own the windows starting in ``[0, own_length)`` and see ``max_n - 1``
    extra bases so no window is lost.
    """
    sep = np.array([INVALID], dtype=np.uint8)
    batch: list[np.ndarray] = []
    batch_len = 0
    for text, text_start, own_start, own_stop, length in owned:
        if own_start > 0 or own_stop < length:
            if batch:
                joined = np.concatenate(batch)
                yield joined, len(joined), True, batch_len
                batch, batch_len = [], 0
            read_stop = min(own_stop + max_n - 1, length)
            codes = encode_bases(text[own_start - text_start : read_stop - text_start])
            for start in range(0, own_stop - own_start, piece_bases):
                own = min(piece_bases, own_stop - own_start - start)
                stop = min(start + own + max_n - 1, len(codes))
                yield codes[start:stop], own, own_start + stop == length, own
            continue
        codes = encode_bases(text)
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
    # uint32 while 2n bits fit: half the memory traffic of int64 in the hot loop.
    return kmer_codes(codes & np.uint8(3), n, dtype=np.uint32 if n <= 16 else np.int64)


def _count_piece(piece: tuple[np.ndarray, int, bool, int]):
    """Counts of the max_n-grams starting in ``[0, own)`` and the tail codes per shorter n."""
    view, own, at_end, max_n = piece
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
        tails.append(codes_of_digits(view[first[:, None] + np.arange(n)]))
    return top, tails


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
        return sum_by_code(codes, counts)


def sum_by_code(codes: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique codes with the summed counts of each."""
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
    return sum_by_code(
        np.concatenate([prefix_codes, tail_codes]),
        np.concatenate([prefix_counts, np.ones(len(tail_codes), np.int64)]),
    )


def _add_reverse_complement(n: int, codes: np.ndarray, counts: np.ndarray):
    """Counts over both strands: every window on the minus strand is a reverse-complemented plus window."""
    return sum_by_code(
        np.concatenate([codes, reverse_complement_codes(codes, n)]), np.concatenate([counts, counts])
    )
