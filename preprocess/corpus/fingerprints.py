"""Chunk fingerprints: the exact-duplicate keys and the seeded train/valid split.

A chunk's fingerprint is a linear universal hash of its 8-mer words (read at stride 8,
the last one ending at the chunk end), mixed with its length. Equal sequences get equal
fingerprints whatever record they come from (collision odds about 2^-60 per pair), and
the reverse strand's fingerprint is computed from the same words, so
``min(forward, reverse)`` is strand-independent. The split is a seeded function of the
fingerprint, so a chunk and its copies always land in the same split.
"""

from __future__ import annotations

import numpy as np

from genemask_preprocess.corpus.chunking import ramps, splitmix64, uniform
from genemask_preprocess.kmers import reverse_complement_codes

WORD = 8
"""Bases per fingerprint word: 8-mer codes (uint16)."""

MAX_HASHED_WORDS = 1 << 14
_WORD_KEYS = np.random.default_rng(0x9E3779B9).integers(0, 2**64 - 1, size=MAX_HASHED_WORDS, dtype=np.uint64, endpoint=True)
"""Fixed random 64-bit multipliers, one per word position: a linear universal hash over the words."""

_RC_WORD = reverse_complement_codes(np.arange(4**WORD), WORD).astype(np.uint16)
_LENGTH_SALT = np.uint64(0xD6E8FEB86659FD93)


def word_hashes(words: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw forward / reverse-complement word hashes of chunks at ``starts`` of a window's 8-mer ``words``.

    ``words[i]`` is the 8-mer code at position i, zero-padded past the end (see
    :func:`genemask_preprocess.corpus.encoding.window_words`). :func:`seal` finishes them.
    """
    n_words = (lengths + WORD - 1) // WORD
    heads = np.cumsum(n_words) - n_words
    lasts = heads + n_words - 1
    short = lengths < WORD
    # Forward words at start + 8j, the last one ending at the chunk end.
    forward_at = ramps(starts, n_words, WORD)
    forward_at[lasts] = starts + np.maximum(lengths - WORD, 0)
    forward = words[forward_at]
    # Reverse strand word j is the reverse complement of the forward 8-mer ending 8j before the chunk end.
    reverse_at = ramps(starts + lengths - WORD, n_words, -WORD)
    reverse_at[lasts] = starts
    reverse = _RC_WORD[words[reverse_at]]
    if short.any():  # a chunk shorter than one word: keep only its own bases
        pad = (2 * (WORD - lengths[short])).astype(np.uint16)
        forward[lasts[short]] >>= pad
        reverse[lasts[short]] = _RC_WORD[(words[starts[short]] >> pad) << pad] & ((1 << (2 * lengths[short])) - 1).astype(np.uint16)
    keys = _WORD_KEYS[ramps(np.zeros(len(lengths), np.int64), n_words, 1)]
    fwd = np.add.reduceat((forward.astype(np.uint64) + np.uint64(1)) * keys, heads)
    rev = np.add.reduceat((reverse.astype(np.uint64) + np.uint64(1)) * keys, heads)
    return fwd, rev


def seal(forward: np.ndarray, reverse: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Final 64-bit fingerprints from raw word hashes: the length is mixed in, so a prefix differs."""
    salt = lengths.astype(np.uint64) * _LENGTH_SALT
    return splitmix64(forward ^ salt), splitmix64(reverse ^ salt)


def valid_split_mask(fingerprints: np.ndarray, seed: int, valid_fraction: float) -> np.ndarray:
    """Boolean mask of items assigned to the validation split, a seeded function of the fingerprint."""
    mixed = splitmix64(fingerprints ^ splitmix64(np.array([int(seed) & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64)))
    return uniform(mixed) < valid_fraction
