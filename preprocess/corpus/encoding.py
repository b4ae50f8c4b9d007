"""Chunks -> fairseq items: k-mer token ids and fingerprints of all chunks in one pass.

One pass over windows of about 4 Mbp computes every position's 8-mer word once; the
fingerprints (:mod:`genemask_preprocess.corpus.fingerprints`) hash those words, and
the k-mer at a position (k <= 8) is the first k bases of its word. Each item is a
chunk's k-mer ids followed by ``</s>``, exactly what ``fairseq-preprocess``
makes of one text line per chunk: its overlapping k-mers (stride 1), or its non-overlapping
k-mers from the chunk's start and then a remainder of fewer than k bases as single-base tokens
(stride k, :class:`~genemask_preprocess.kmers.KmerTokenization`).
"""

from __future__ import annotations

import numpy as np

from genemask_preprocess.corpus.chunking import Chunks, ramps
from genemask_preprocess.corpus.fingerprints import MAX_HASHED_WORDS, WORD, seal, word_hashes
from genemask_preprocess.kmers import EOS_ID, INVALID, NUM_SPECIALS, reverse_complement_codes

_WINDOW_BASES = 1 << 22
"""Chunks are processed in groups spanning about this many bases, bounding temporary arrays."""


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


def window_words(codes: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """8-mer code (uint16) at every position of ``codes[lo:hi]``, zero-padded past the end and over non-ACGT.

    The same rolling code as :func:`genemask_preprocess.kmers.kmer_codes`, kept here in
    uint16 over padded gaps because this is the hot path: a quarter of the memory traffic
    of int64 codes, and one array serves the fingerprints and every k <= 8.
    """
    n = hi - lo
    padded = np.zeros(n + WORD, dtype=np.uint8)
    padded[:n] = codes[lo:hi]
    padded[padded >= INVALID] = 0  # gaps between chunks: no kept token or word reads them
    words = padded[: n + 1].astype(np.uint16)
    for j in range(1, WORD):
        words <<= 2
        words |= padded[j : j + n + 1]
    return words  # n + 1 entries: the spare last one is read by </s> slots and masked away


def encode_chunks(
    codes: np.ndarray, chunks: Chunks, k: int | None, reverse_complement: bool = False, stride: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Fingerprints and (for k-mer tokens) token ids of all chunks, in one pass over 4 Mbp windows.

    Returns ``(forward_fp, reverse_fp, tokens, sizes)``:

    - 64-bit fingerprints of each chunk and of its reverse complement. Equal sequences
      get equal fingerprints whatever record they come from, so they serve as
      exact-duplicate keys (collision odds about 2^-60 per pair), and
      ``min(forward, reverse)`` is strand-independent.
    - with ``k``: every chunk's k-mer ids (uint16) at ``stride`` 1 (overlapping) or k
      (non-overlapping, remainder as single bases), each item followed by
      ``</s>``, concatenated, and the item sizes (int32), exactly what
      ``fairseq-preprocess`` makes of one text line per chunk. With
      ``reverse_complement`` the reverse-complement items follow the forward ones (a reverse
      complement is tokenized from its own start).
    """
    if len(chunks) and int(chunks.lengths.max()) > WORD * MAX_HASHED_WORDS:
        raise ValueError(f"chunks longer than {WORD * MAX_HASHED_WORDS} bases are not supported")
    if k is not None and len(chunks) and int(chunks.lengths.min()) < k:
        raise ValueError(f"chunks must be at least k={k} bases long")
    forward_fp = np.zeros(len(chunks), dtype=np.uint64)
    reverse_fp = np.zeros(len(chunks), dtype=np.uint64)
    tokens = sizes = None
    non_overlapping = k is not None and stride == k > 1
    if k is not None:
        if non_overlapping:
            sizes = (chunks.lengths // k + chunks.lengths % k + 1).astype(np.int64)
        else:
            sizes = (chunks.lengths - k + 2).astype(np.int64)
        n_forward = int(sizes.sum())
        tokens = np.empty(n_forward * (2 if reverse_complement else 1), dtype=np.uint16)
        flat_offsets = np.cumsum(sizes) - sizes
        rc_table = reverse_complement_codes(np.arange(4**k), k).astype(np.uint16) if reverse_complement else None
        shift = np.uint16(2 * (WORD - k))
    for window in _windows(chunks):
        starts, lengths = chunks.starts[window], chunks.lengths[window]
        lo, hi = int(starts[0]), int(starts[-1] + lengths[-1])
        rel = starts - lo
        words = window_words(codes, lo, hi)
        forward_fp[window], reverse_fp[window] = word_hashes(words, rel, lengths)
        if k is None:
            continue
        item_sizes = sizes[window]
        first = int(flat_offsets[window][0])
        out = slice(first, first + int(item_sizes.sum()))
        if non_overlapping:
            tokens[out] = _non_overlapping_items(words, rel, lengths, item_sizes, k, reverse=False)
            if reverse_complement:
                tokens[n_forward + out.start : n_forward + out.stop] = _non_overlapping_items(
                    words, rel, lengths, item_sizes, k, reverse=True
                )
            continue
        kmers = words >> shift  # the k-mer at each position is the first k bases of its 8-mer
        eos_at = np.cumsum(item_sizes) - 1
        block = kmers[ramps(rel, item_sizes, 1)]
        block += np.uint16(NUM_SPECIALS)
        block[eos_at] = EOS_ID
        tokens[out] = block
        if reverse_complement:
            # k-mer j of the reverse strand is the reverse complement of forward k-mer L-k-j;
            # the </s> slot reads index start-1 (possibly -1, the spare entry), then is overwritten.
            block = rc_table[kmers[ramps(rel + lengths - k, item_sizes, -1)]]
            block += np.uint16(NUM_SPECIALS)
            block[eos_at] = EOS_ID
            tokens[n_forward + out.start : n_forward + out.stop] = block
    forward_fp, reverse_fp = seal(forward_fp, reverse_fp, chunks.lengths)
    if k is not None:
        sizes = sizes.astype(np.int32)
        if reverse_complement:
            sizes = np.concatenate([sizes, sizes])
    return forward_fp, reverse_fp, tokens, sizes


def _non_overlapping_items(
    words: np.ndarray, rel: np.ndarray, lengths: np.ndarray, item_sizes: np.ndarray, k: int, reverse: bool
) -> np.ndarray:
    """Token ids (uint16) of a window's chunks cut into k-mers from the start, the remainder as single
    bases, each item ending with ``</s>``; with ``reverse``, of their reverse complements.

    Token t of a chunk of L = m k + r bases is k-mer t (t < m), else single base t - m + m k.
    On the reverse strand k-mer t is the reverse complement of the forward k-mer at L - (t + 1) k,
    and remainder base p (counted from the reverse strand's start) complements forward base L - 1 - p.
    """
    whole = np.repeat(lengths // k, item_sizes)
    length = np.repeat(lengths, item_sizes)
    t = ramps(np.zeros(len(lengths), dtype=np.int64), item_sizes, 1)
    is_kmer = t < whole
    base_at = whole * k + (t - whole)  # remainder bases (and the </s> slot, overwritten below)
    if reverse:
        at = np.where(is_kmer, length - (t + 1) * k, length - 1 - np.minimum(base_at, length - 1))
    else:
        at = np.where(is_kmer, t * k, np.minimum(base_at, length - 1))
    word = words[np.repeat(rel, item_sizes) + at]
    kmer = (word >> np.uint16(2 * (WORD - k))).astype(np.int64)
    base = (word >> np.uint16(2 * (WORD - 1))).astype(np.int64)
    if reverse:
        kmer = reverse_complement_codes(kmer, k)
        base = 3 - base
    block = np.where(is_kmer, NUM_SPECIALS + kmer, NUM_SPECIALS + 4**k + base).astype(np.uint16)
    block[np.cumsum(item_sizes) - 1] = EOS_ID
    return block


def chunk_fingerprints(codes: np.ndarray, chunks: Chunks) -> tuple[np.ndarray, np.ndarray]:
    """64-bit fingerprints of each chunk and of its reverse complement (see :func:`encode_chunks`)."""
    forward, reverse, _, _ = encode_chunks(codes, chunks, None)
    return forward, reverse
