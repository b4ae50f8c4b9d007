"""GeneMask's genome chunking, as pure numpy over the 2-bit codes of one or many records.

A record's maximal A/C/G/T runs are laid end to end (as the reference pipeline did
when it deleted every ``N``), a random start offset below ``max_start_offset`` is
skipped, and the rest is tiled with non-overlapping chunks: ``length`` bases with
probability ``full_length_probability``, otherwise a uniform length in
``min_length .. length - 1``. Unlike the reference pipeline, a chunk that would
cross a non-ACGT run is *split* there, never fused; pieces shorter than
``min_length`` (or than k) are dropped.

Randomness is counter-based: draw i of a record is a hash of ``(seed, record name, i)``,
so a record is chunked the same way whatever the number of workers or the records
batched with it, and many small records are chunked in one vectorised pass.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from genemask_preprocess.kmers import acgt_runs

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_OFFSET_TAG = np.uint64(0x0FF5E7)
_SAMPLE_TAG = np.uint64(0x5A3B1E)


@dataclass(frozen=True)
class ChunkingOptions:
    """Chunk-length distribution; the defaults are the paper's."""

    length: int = 511
    min_length: int = 6
    full_length_probability: float = 0.5
    max_start_offset: int = 1000

    def __post_init__(self):
        if not 1 <= self.min_length <= self.length:
            raise ValueError(
                f"chunk lengths must satisfy 1 <= min length ({self.min_length}) <= length ({self.length})"
            )
        if not 0.0 <= self.full_length_probability <= 1.0:
            raise ValueError(f"full-length probability must be in [0, 1], got {self.full_length_probability}")
        if self.max_start_offset < 0:
            raise ValueError(f"max start offset must be >= 0, got {self.max_start_offset}")

    @property
    def mean_length(self) -> float:
        uniform_mean = (self.min_length + self.length - 1) / 2 if self.min_length < self.length else self.length
        p = self.full_length_probability
        return p * self.length + (1 - p) * uniform_mean


@dataclass
class Chunks:
    """Chunks of one record as half-open base intervals ``[starts, starts + lengths)`` of the record."""

    starts: np.ndarray  # int64
    lengths: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.starts)


def record_key(seed: int, record_name: str) -> int:
    """The 64-bit key of one record's random stream, a pure function of the run seed and the record name."""
    digest = hashlib.blake2b(f"{int(seed)}\0{record_name}".encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The SplitMix64 finaliser on a uint64 array (a bijective bit mixer): the counter-based generator."""
    z = np.asarray(x, dtype=np.uint64) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uniform(u: np.ndarray) -> np.ndarray:
    """Floats in [0, 1) from the top 53 bits of uint64 hashes."""
    return (u >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def ramps(starts: np.ndarray, counts: np.ndarray, step: int) -> np.ndarray:
    """``concat(starts[i] + step * arange(counts[i]))`` via one cumsum (cheaper than repeat + arange)."""
    total = int(counts.sum())
    steps = np.full(total, step, dtype=np.int64)
    if total == 0:
        return steps
    offsets = np.cumsum(counts) - counts
    nonempty = counts > 0
    heads, firsts, lengths = offsets[nonempty], starts[nonempty], counts[nonempty]
    steps[heads[0]] = firsts[0]
    # At each item head, jump from where the previous item's ramp ended to this item's start.
    steps[heads[1:]] = firsts[1:] - (firsts[:-1] + step * (lengths[:-1] - 1))
    return np.cumsum(steps)


def _chunk_length_draws(keys: np.ndarray, counts: np.ndarray, options: ChunkingOptions) -> np.ndarray:
    """The first ``counts[r]`` chunk lengths of each record's stream (counter-based: draw i of a record
    is a hash of its key and i, so any number of draws is consistent with any other)."""
    index = ramps(np.ones(len(keys), dtype=np.int64), counts, 1).astype(np.uint64)
    u = splitmix64(np.repeat(keys, counts) + index * _GOLDEN)
    if options.min_length == options.length:
        return np.full(len(u), options.length, dtype=np.int64)
    span = np.uint64(options.length - options.min_length)
    lengths = options.min_length + ((u & np.uint64(0xFFFFFFFF)) * span >> np.uint64(32)).astype(np.int64)
    full = (u >> np.uint64(32)).astype(np.float64) < options.full_length_probability * 2.0**32
    lengths[full] = options.length
    return lengths


def chunk_records(
    codes: np.ndarray, record_starts: np.ndarray, keys: np.ndarray, options: ChunkingOptions, min_bases: int = 1
) -> tuple[Chunks, np.ndarray]:
    """Chunk many records at once: ``codes`` holds them back to back, record r from ``record_starts[r]``.

    ``keys[r]`` is :func:`record_key` of record r. Returns the chunks (positions in
    ``codes``, in order) and the record index of each chunk. ``min_bases`` raises
    the minimum kept length (pass k, so that every chunk yields at least one k-mer).
    """
    record_starts = np.asarray(record_starts, dtype=np.int64)
    keys = np.asarray(keys, dtype=np.uint64)
    empty = Chunks(np.zeros(0, np.int64), np.zeros(0, np.int64)), np.zeros(0, np.int64)
    runs = acgt_runs(codes)
    if not len(runs):
        return empty
    # A run never spans two records.
    inner = record_starts[1:]
    holder = np.searchsorted(runs[:, 0], inner, side="right") - 1
    split = inner[(holder >= 0) & (runs[np.maximum(holder, 0), 1] > inner) & (runs[np.maximum(holder, 0), 0] < inner)]
    run_starts = np.sort(np.concatenate([runs[:, 0], split]))
    run_ends_in_codes = np.sort(np.concatenate([runs[:, 1], split]))
    run_lengths = run_ends_in_codes - run_starts
    run_record = np.searchsorted(record_starts, run_starts, side="right") - 1

    # Work in "A/C/G/T coordinates": all runs laid end to end, as if every non-ACGT letter were deleted.
    run_ends = np.cumsum(run_lengths)
    totals = np.bincount(run_record, weights=run_lengths, minlength=len(record_starts)).astype(np.int64)
    record_ends = np.cumsum(totals)
    record_begins = record_ends - totals
    bound = np.minimum(options.max_start_offset, np.maximum(1, totals - options.length + 1))
    offsets = np.where(bound > 1, (uniform(splitmix64(keys ^ _OFFSET_TAG)) * bound).astype(np.int64), 0)
    remaining = np.maximum(totals - offsets, 0)
    counts = np.where(remaining > 0, (remaining / options.mean_length * 1.05).astype(np.int64) + 4, 0)
    while True:
        lengths = _chunk_length_draws(keys, counts, options)
        heads = np.cumsum(counts) - counts
        ends = np.cumsum(lengths)
        has = counts > 0
        before = np.zeros(len(counts), dtype=np.int64)
        before[has] = (ends - lengths)[heads[has]]
        local_ends = ends - np.repeat(before, counts)
        covered = np.ones(len(counts), dtype=bool)
        covered[has] = local_ends[(heads + counts - 1)[has]] >= remaining[has]
        if covered.all():
            break
        counts[~covered] = counts[~covered] * 2 + 16
    owner = np.repeat(np.arange(len(counts)), counts)
    inside = local_ends < remaining[owner]
    tiles = (record_begins + offsets)[owner][inside] + local_ends[inside]
    # Cut points: each record's offset, every tile end, and every run end (split, never fuse).
    cuts = np.unique(np.concatenate(([0], record_begins + offsets, tiles, run_ends)))
    starts, stops = cuts[:-1], cuts[1:]
    record = np.searchsorted(record_ends, starts, side="right")
    keep = (stops - starts >= max(options.min_length, min_bases)) & (record < len(totals))
    keep[keep] &= starts[keep] >= (record_begins + offsets)[record[keep]]
    starts, stops, record = starts[keep], stops[keep], record[keep]
    run = np.searchsorted(run_ends, starts, side="right")
    in_codes = starts - (run_ends - run_lengths)[run] + run_starts[run]
    return Chunks(in_codes.astype(np.int64), (stops - starts).astype(np.int64)), record


def sample_chunks(keys: np.ndarray, record_of_chunk: np.ndarray, fraction: float) -> np.ndarray:
    """Which chunks a ``--sample`` fraction keeps: each with probability ``fraction``, independently.

    Counter-based, like the chunk lengths: chunk i of a record (in order along the record) is
    kept iff ``uniform(splitmix64((key ^ SAMPLE_TAG) + (i + 1) * GOLDEN)) < fraction``, with
    ``key`` the record's :func:`record_key`. So the choice depends only on the seed, the record
    name and the chunk's place in it, never on workers or batches. ``record_of_chunk`` is
    sorted, as :func:`chunk_records` returns it.
    """
    keys = np.asarray(keys, dtype=np.uint64)
    per_record = np.bincount(record_of_chunk, minlength=len(keys))
    index = ramps(np.ones(len(keys), dtype=np.int64), per_record, 1).astype(np.uint64)
    u = uniform(splitmix64((keys[record_of_chunk] ^ _SAMPLE_TAG) + index * _GOLDEN))
    return u < fraction


def chunk_record(codes: np.ndarray, key: int, options: ChunkingOptions, min_bases: int = 1) -> Chunks:
    """Chunk one record's codes (from :func:`genemask_preprocess.kmers.encode_bases`); ``key`` from :func:`record_key`."""
    chunks, _ = chunk_records(codes, np.array([0]), np.array([key], dtype=np.uint64), options, min_bases)
    return chunks
