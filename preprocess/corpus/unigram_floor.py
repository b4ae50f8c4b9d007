"""The unigram floor of a binarized corpus: the masked-LM loss of a model that knows only token frequencies.

A model that has learned no context predicts every masked token from the training split's
unigram distribution, so its validation loss is the cross-entropy of the validation split's
regular tokens under that distribution. A masked-LM's validation loss must fall below this
floor before it can be said to read a token from its context.

- ``cross_entropy_bits``: the floor. The training counts are smoothed by adding 1/2 to every
  regular symbol of the dictionary (Jeffreys' prior), so a token never seen in training costs a
  finite number of bits.
- ``train_entropy_bits``: the plain (maximum-likelihood) entropy of the training split's unigram
  distribution; the two agree when the splits are large and alike.

Regular tokens are every dictionary symbol after fairseq's four specials, except fairseq's
``madeupword`` padding; ``</s>`` and ``<unk>`` are not counted. numpy only: the token files are
memory-mapped and counted in blocks, so a genome-scale split needs little memory.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from genemask_preprocess.errors import InputError
from genemask_preprocess.formats.fairseq_dictionary import read_dictionary_symbols
from genemask_preprocess.formats.indexed_dataset import read_indexed_dataset
from genemask_preprocess.kmers import NUM_SPECIALS

SMOOTHING = 0.5
"""Added to every regular symbol's training count (add-1/2, Jeffreys)."""
_COUNT_BLOCK = 1 << 24  # tokens counted at a time


class UnigramFloorError(InputError):
    """A corpus whose floor cannot be computed (missing split, no regular tokens; one line)."""


@dataclass(frozen=True)
class UnigramFloor:
    """A corpus's unigram floor (bits per token) and what it was computed from."""

    cross_entropy_bits: float
    """The validation split's regular tokens under the training split's smoothed unigram distribution."""
    train_entropy_bits: float
    """Entropy of the training split's unigram distribution (no smoothing)."""
    train_tokens: int
    valid_tokens: int
    symbols: int
    """Regular symbols of the dictionary (4 096 for k = 6)."""

    def as_dict(self) -> dict:
        return asdict(self)


def regular_symbol_ids(symbols: list[str]) -> np.ndarray:
    """Token ids of the regular symbols among a dictionary's ``symbols`` (fairseq's four specials first)."""
    return np.array([i for i, s in enumerate(symbols) if i >= NUM_SPECIALS and not s.startswith("madeupword")],
                    dtype=np.int64)


def token_counts(path_prefix: str | os.PathLike, num_ids: int, dictionary: str | os.PathLike = "its dictionary") -> np.ndarray:
    """How often each token id below ``num_ids`` (the size of ``dictionary``) occurs in a binarized split
    (``PREFIX.bin``/``.idx``)."""
    try:
        tokens, _ = read_indexed_dataset(path_prefix, mmap=True)
    except (OSError, ValueError) as err:
        raise UnigramFloorError(f"cannot read {path_prefix}.{{bin,idx}}: {err}") from None
    counts = np.zeros(num_ids, dtype=np.int64)
    for start in range(0, len(tokens), _COUNT_BLOCK):
        block = np.asarray(tokens[start : start + _COUNT_BLOCK]).astype(np.int64)
        if block.size and int(block.max()) >= num_ids:
            raise UnigramFloorError(f"{path_prefix}.bin holds token id {int(block.max())}, beyond the {num_ids} "
                                    f"symbols of {dictionary}")
        counts += np.bincount(block, minlength=num_ids)
    return counts


def smoothed_unigram(counts: np.ndarray, smoothing: float = SMOOTHING) -> np.ndarray:
    """Probabilities ``(counts + smoothing) / (total + smoothing * len(counts))``."""
    counts = np.asarray(counts, dtype=np.float64)
    return (counts + smoothing) / (counts.sum() + smoothing * len(counts))


def entropy_bits(counts: np.ndarray) -> float:
    """Entropy in bits of the distribution proportional to ``counts`` (0 log 0 = 0)."""
    counts = np.asarray(counts, dtype=np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def unigram_floor(data: str | os.PathLike, train: str = "train", valid: str = "valid") -> UnigramFloor:
    """The unigram floor of the corpus in ``data`` (``dict.txt``, ``TRAIN`` and ``VALID`` splits)."""
    data = Path(data)
    symbols = read_dictionary_symbols(data / "dict.txt")
    regular = regular_symbol_ids(symbols)
    num_ids = len(symbols) + 1  # the masked-LM tasks append <mask>
    train_counts = token_counts(data / train, num_ids, data / "dict.txt")[regular]
    valid_counts = token_counts(data / valid, num_ids, data / "dict.txt")[regular]
    for split, counts in ((train, train_counts), (valid, valid_counts)):
        if counts.sum() == 0:
            raise UnigramFloorError(f"{data / split}: no regular tokens")
    log_p = np.log2(smoothed_unigram(train_counts))
    return UnigramFloor(
        cross_entropy_bits=float(-(valid_counts * log_p).sum() / valid_counts.sum()),
        train_entropy_bits=entropy_bits(train_counts),
        train_tokens=int(train_counts.sum()),
        valid_tokens=int(valid_counts.sum()),
        symbols=len(regular),
    )
