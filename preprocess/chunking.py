"""The paper's genome chunking (GENEMASK.md §1), as pure numpy over one record's 2-bit codes.

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
This module also derives the per-chunk fingerprints used for deduplication and the
train/valid split, and gathers k-mer token ids for all chunks with array operations.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from preprocess.kmers import INVALID, NUM_SPECIALS, acgt_runs

EOS = 2
"""fairseq's ``</s>`` id, which ends every item as ``fairseq-preprocess`` writes a text line."""

_WINDOW_BASES = 1 << 22
"""Chunks are processed in groups spanning about this many bases, bounding temporary arrays."""


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


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_OFFSET_TAG = np.uint64(0x0FF5E7)


def record_key(seed: int, record_name: str) -> int:
    """The 64-bit key of one record's random stream, a pure function of the run seed and the record name."""
    digest = hashlib.blake2b(f"{int(seed)}\0{record_name}".encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _uniform(u: np.ndarray) -> np.ndarray:
    return (u >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _chunk_length_draws(keys: np.ndarray, counts: np.ndarray, options: ChunkingOptions) -> np.ndarray:
    """The first ``counts[r]`` chunk lengths of each record's stream (counter-based: draw i of a record
    is a hash of its key and i, so any number of draws is consistent with any other)."""
    index = _ramps(np.ones(len(keys), dtype=np.int64), counts, 1).astype(np.uint64)
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
    offsets = np.where(bound > 1, (_uniform(splitmix64(keys ^ _OFFSET_TAG)) * bound).astype(np.int64), 0)
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


def chunk_record(codes: np.ndarray, key: int, options: ChunkingOptions, min_bases: int = 1) -> Chunks:
    """Chunk one record's codes (from :func:`preprocess.kmers.encode_bases`); ``key`` from :func:`record_key`."""
    chunks, _ = chunk_records(codes, np.array([0]), np.array([key], dtype=np.uint64), options, min_bases)
    return chunks


def _windows(chunks: Chunks):
    """Yield slices of consecutive chunks that together span about ``_WINDOW_BASES`` bases."""
    if not len(chunks):
        return
    ends = chunks.starts + chunks.lengths
    bounds = [0]
    while bounds[-1] < len(chunks):
        first = bounds[-1]
        limit = chunks.starts[first] + _WINDOW_BASES
        bounds.append(max(first + 1, int(np.searchsorted(ends, limit, side="right"))))
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        yield slice(a, b)


def _ramps(starts: np.ndarray, counts: np.ndarray, step: int) -> np.ndarray:
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


_WORD = 8
"""Bases per fingerprint word: 8-mer codes (uint16), read at stride 8, with the last word ending at the chunk end."""

_MAX_HASHED_WORDS = 1 << 14
_WORD_KEYS = np.random.default_rng(0x9E3779B9).integers(0, 2**64 - 1, size=_MAX_HASHED_WORDS, dtype=np.uint64, endpoint=True)
"""Fixed random 64-bit multipliers, one per word position: a linear universal hash over the words."""


def _reverse_complement_table(k: int) -> np.ndarray:
    """Code of the reverse complement of every k-mer code (uint16)."""
    codes = np.arange(4**k, dtype=np.int64)
    out = np.zeros_like(codes)
    for j in range(k):
        out = (out << 2) | (3 - ((codes >> (2 * j)) & 3))
    return out.astype(np.uint16)


_RC_WORD = _reverse_complement_table(_WORD)


def _window_words(codes: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """8-mer code (uint16) at every position of ``codes[lo:hi]``, zero-padded past the end and over non-ACGT."""
    n = hi - lo
    padded = np.zeros(n + _WORD, dtype=np.uint8)
    padded[:n] = codes[lo:hi]
    padded[padded >= INVALID] = 0  # gaps between chunks: no kept token or word reads them
    words = padded[: n + 1].astype(np.uint16)
    for j in range(1, _WORD):
        words <<= 2
        words |= padded[j : j + n + 1]
    return words  # n + 1 entries: the spare last one is read by </s> slots and masked away


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The SplitMix64 finaliser on a uint64 array (a bijective bit mixer)."""
    z = np.asarray(x, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _fingerprint_window(words: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw forward / reverse-complement word hashes of chunks at window-relative ``starts``."""
    n_words = (lengths + _WORD - 1) // _WORD
    heads = np.cumsum(n_words) - n_words
    lasts = heads + n_words - 1
    short = lengths < _WORD
    # Forward words at start + 8j, the last one ending at the chunk end.
    forward_at = _ramps(starts, n_words, _WORD)
    forward_at[lasts] = starts + np.maximum(lengths - _WORD, 0)
    forward = words[forward_at]
    # Reverse strand word j is the reverse complement of the forward 8-mer ending 8j before the chunk end.
    reverse_at = _ramps(starts + lengths - _WORD, n_words, -_WORD)
    reverse_at[lasts] = starts
    reverse = _RC_WORD[words[reverse_at]]
    if short.any():  # a chunk shorter than one word: keep only its own bases
        pad = (2 * (_WORD - lengths[short])).astype(np.uint16)
        forward[lasts[short]] >>= pad
        reverse[lasts[short]] = _RC_WORD[(words[starts[short]] >> pad) << pad] & ((1 << (2 * lengths[short])) - 1).astype(np.uint16)
    keys = _WORD_KEYS[_ramps(np.zeros(len(lengths), np.int64), n_words, 1)]
    fwd = np.add.reduceat((forward.astype(np.uint64) + np.uint64(1)) * keys, heads)
    rev = np.add.reduceat((reverse.astype(np.uint64) + np.uint64(1)) * keys, heads)
    return fwd, rev


def encode_chunks(
    codes: np.ndarray, chunks: Chunks, k: int | None, reverse_complement: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Fingerprints and (for k-mer tokens) token ids of all chunks, in one pass over 4 Mbp windows.

    Returns ``(forward_fp, reverse_fp, tokens, sizes)``:

    - 64-bit fingerprints of each chunk and of its reverse complement. Equal sequences
      get equal fingerprints whatever record they come from, so they serve as
      exact-duplicate keys (collision odds about 2^-60 per pair), and
      ``min(forward, reverse)`` is strand-independent.
    - with ``k``: every chunk's overlapping k-mer ids (uint16), each item followed by
      ``</s>``, concatenated, and the item sizes (int32), exactly what
      ``fairseq-preprocess`` makes of one text line per chunk. With
      ``reverse_complement`` the reverse-complement items follow the forward ones.
    """
    if len(chunks) and int(chunks.lengths.max()) > _WORD * _MAX_HASHED_WORDS:
        raise ValueError(f"chunks longer than {_WORD * _MAX_HASHED_WORDS} bases are not supported")
    if k is not None and len(chunks) and int(chunks.lengths.min()) < k:
        raise ValueError(f"chunks must be at least k={k} bases long")
    forward_fp = np.zeros(len(chunks), dtype=np.uint64)
    reverse_fp = np.zeros(len(chunks), dtype=np.uint64)
    tokens = sizes = None
    if k is not None:
        sizes = (chunks.lengths - k + 2).astype(np.int64)
        n_forward = int(sizes.sum())
        tokens = np.empty(n_forward * (2 if reverse_complement else 1), dtype=np.uint16)
        flat_offsets = np.cumsum(sizes) - sizes
        rc_table = _reverse_complement_table(k) if reverse_complement else None
        shift = np.uint16(2 * (_WORD - k))
    for window in _windows(chunks):
        starts, lengths = chunks.starts[window], chunks.lengths[window]
        lo, hi = int(starts[0]), int(starts[-1] + lengths[-1])
        rel = starts - lo
        words = _window_words(codes, lo, hi)
        forward_fp[window], reverse_fp[window] = _fingerprint_window(words, rel, lengths)
        if k is None:
            continue
        kmers = words >> shift  # the k-mer at each position is the first k bases of its 8-mer
        item_sizes = sizes[window]
        first = int(flat_offsets[window][0])
        out = slice(first, first + int(item_sizes.sum()))
        eos_at = np.cumsum(item_sizes) - 1
        block = kmers[_ramps(rel, item_sizes, 1)]
        block += np.uint16(NUM_SPECIALS)
        block[eos_at] = EOS
        tokens[out] = block
        if reverse_complement:
            # k-mer j of the reverse strand is the reverse complement of forward k-mer L-k-j;
            # the </s> slot reads index start-1 (possibly -1, the spare entry), then is overwritten.
            block = rc_table[kmers[_ramps(rel + lengths - k, item_sizes, -1)]]
            block += np.uint16(NUM_SPECIALS)
            block[eos_at] = EOS
            tokens[n_forward + out.start : n_forward + out.stop] = block
    salt = chunks.lengths.astype(np.uint64) * np.uint64(0xD6E8FEB86659FD93)
    forward_fp, reverse_fp = splitmix64(forward_fp ^ salt), splitmix64(reverse_fp ^ salt)
    if k is not None:
        sizes = sizes.astype(np.int32)
        if reverse_complement:
            sizes = np.concatenate([sizes, sizes])
    return forward_fp, reverse_fp, tokens, sizes


def chunk_fingerprints(codes: np.ndarray, chunks: Chunks) -> tuple[np.ndarray, np.ndarray]:
    """64-bit fingerprints of each chunk and of its reverse complement (see :func:`encode_chunks`)."""
    forward, reverse, _, _ = encode_chunks(codes, chunks, None)
    return forward, reverse


def chunk_kmer_tokens(
    codes: np.ndarray, chunks: Chunks, k: int, reverse_complement: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """``(tokens, sizes)`` of the chunks' k-mer items (see :func:`encode_chunks`)."""
    _, _, tokens, sizes = encode_chunks(codes, chunks, k, reverse_complement)
    return tokens, sizes


def valid_split_mask(fingerprints: np.ndarray, seed: int, valid_fraction: float) -> np.ndarray:
    """Boolean mask of items assigned to the validation split, a seeded function of the fingerprint."""
    mixed = splitmix64(fingerprints ^ splitmix64(np.array([int(seed) & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64)))
    uniform = (mixed >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
    return uniform < valid_fraction


def reverse_complement_dna(dna: str) -> str:
    """Reverse complement of an upper-case A/C/G/T string."""
    return dna.translate(_COMPLEMENT)[::-1]


_COMPLEMENT = str.maketrans("ACGT", "TGCA")
