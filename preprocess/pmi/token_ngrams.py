"""Exact token n-gram counts over a binarized corpus: ``genemask-pmi count --tokens DATA_DIR``.

For tokenizations whose tokens do not overlap (non-overlapping k-mers, single nucleotides,
SentencePiece BPE) the units PMI-Masking ranks are token n-grams, so they are counted over the
corpus the model trains on: ``DATA_DIR/train.bin`` (``train.idx``), with the alphabet of
``DATA_DIR/dict.txt``. An n-gram never crosses an item boundary (``</s>``) or any other special
token. Each n-gram is one rolling code over its token digits (digit d = fairseq id 4 + d, first
token most significant, base V = the dictionary's regular symbols), so V^n must stay below 2^63
(:func:`check_token_max_n`); each length is counted directly, by ``np.unique`` over the codes of
the windows that start in a piece of the token stream.

Sharding is that of :mod:`genemask_preprocess.pmi.shards` with tokens for bases: shard I of N
owns the windows starting in tokens ``[floor(I*T/N), floor((I+1)*T/N))`` of the T tokens of
``train.bin``, reads ``max_n - 1`` tokens past its end, and records as inputs ``dict.txt``,
``train.idx`` and ``train.bin``, so ``merge`` sums the shards to exactly the whole count.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genemask_preprocess.formats.fairseq_dictionary import DictionaryError, read_dictionary_symbols
from genemask_preprocess.formats.indexed_dataset import memmap_indexed_tokens
from genemask_preprocess.formats.ngram_counts_file import CountsError, NgramCounts
from genemask_preprocess.kmers import NUM_SPECIALS
from genemask_preprocess.parallel_map import parallel_map
from genemask_preprocess.pmi.ngram_counts import check_max_n, sum_by_code

SPLIT = "train"
PIECE_TOKENS = 1 << 22
"""Tokens per counted piece: bounds a worker's temporary arrays (about 40 bytes per token)."""
_INT64_MAX = np.iinfo(np.int64).max


@dataclass(frozen=True)
class TokenCorpus:
    """A binarized corpus opened for counting: its alphabet and its training tokens."""

    data_dir: Path
    tokens: tuple[str, ...]
    """The dictionary's regular symbols in id order (``dict.txt``'s lines): digit d is fairseq id 4 + d."""
    total_tokens: int

    @property
    def prefix(self) -> Path:
        return self.data_dir / SPLIT

    @property
    def input_files(self) -> list[Path]:
        """What a shard's metadata describes (name, size, checksum): the dictionary and the token files."""
        return [self.data_dir / "dict.txt", self.data_dir / f"{SPLIT}.idx", self.data_dir / f"{SPLIT}.bin"]


def open_token_corpus(data_dir: str | os.PathLike) -> TokenCorpus:
    """Check ``DATA_DIR/dict.txt`` and ``DATA_DIR/train.{idx,bin}``; :class:`CountsError` (one line) if not."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise CountsError(f"--tokens {data_dir}: no such directory (expected a genemask-preprocess output)")
    try:
        symbols = read_dictionary_symbols(data_dir / "dict.txt")
    except DictionaryError as err:
        raise CountsError(f"--tokens {data_dir}: {err}") from None
    try:
        tokens = memmap_indexed_tokens(data_dir / SPLIT)
    except ValueError as err:
        raise CountsError(f"--tokens {data_dir}: {err}") from None
    if len(symbols) <= NUM_SPECIALS:
        raise CountsError(f"--tokens {data_dir}: dict.txt holds no symbols")
    return TokenCorpus(data_dir, tuple(symbols[NUM_SPECIALS:]), int(len(tokens)))


def check_token_max_n(max_n: int, vocabulary: int) -> int:
    """``max_n`` if codes of ``max_n`` tokens of a ``vocabulary``-symbol alphabet fit 63 bits, else a one-line error."""
    max_n = check_max_n(max_n)
    if vocabulary**max_n > _INT64_MAX:
        largest = max(n for n in range(1, max_n) if vocabulary**n <= _INT64_MAX)
        raise CountsError(f"--max-n {max_n}: codes of {max_n} tokens of a {vocabulary}-symbol dictionary need "
                          f"{vocabulary}^{max_n} > 2^63 values; at most --max-n {largest} for this dictionary")
    return max_n


def count_token_ngrams(
    corpus: TokenCorpus,
    max_n: int,
    *,
    token_range: tuple[int, int] | None = None,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
    piece_tokens: int = PIECE_TOKENS,
) -> NgramCounts:
    """Count every token n-gram, n = 1..``max_n``, of the corpus' training split (see module docstring).

    ``token_range`` restricts counting to the windows that start in those tokens (a shard).
    ``workers`` processes count pieces in parallel; the result does not depend on it.
    """
    vocabulary = len(corpus.tokens)
    max_n = check_token_max_n(max_n, vocabulary)
    if not isinstance(workers, (int, np.integer)) or workers < 1:
        raise CountsError(f"--workers must be at least 1, got {workers}")
    low, high = token_range if token_range is not None else (0, corpus.total_tokens)

    def pieces() -> Iterator[tuple]:
        for start in range(low, high, piece_tokens):
            stop = min(start + piece_tokens, high)
            yield str(corpus.prefix), start, stop, min(stop + max_n - 1, corpus.total_tokens), max_n, vocabulary

    parts: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(max_n + 1)]
    for start_stop, tables in parallel_map(_count_piece, pieces(), int(workers)):
        for n in range(1, max_n + 1):
            parts[n].append(tables[n])
        if progress is not None:
            progress(start_stop[1] - start_stop[0])
    tables = {}
    for n in range(1, max_n + 1):
        codes = np.concatenate([c for c, _ in parts[n]]) if parts[n] else np.zeros(0, np.int64)
        counts = np.concatenate([c for _, c in parts[n]]) if parts[n] else np.zeros(0, np.int64)
        tables[n] = sum_by_code(codes, counts)
    if token_range is None and len(tables[max_n][0]) == 0:
        raise CountsError(f"--tokens {corpus.data_dir}: no item holds {max_n} tokens, so no {max_n}-gram to count")
    return NgramCounts(tables, tokens=corpus.tokens)


def _count_piece(piece: tuple) -> tuple[tuple[int, int], list]:
    """Counts of the n-grams (every n) starting in tokens ``[start, stop)``, reading up to ``view_stop``."""
    prefix, start, stop, view_stop, max_n, vocabulary = piece
    view = np.asarray(memmap_indexed_tokens(prefix, check=False)[start:view_stop], dtype=np.int64)
    digits = view - NUM_SPECIALS
    beyond = np.flatnonzero(digits >= vocabulary)
    if len(beyond):
        raise CountsError(f"{prefix}.bin: token {start + beyond[0]} has id {view[beyond[0]]}, beyond its dict.txt "
                          f"({NUM_SPECIALS + vocabulary} symbols with fairseq's specials)")
    # reach[i]: regular tokens from i up to the next special (</s> ends every item) or the view's end.
    boundaries = np.append(np.flatnonzero(digits < 0), len(view))
    positions = np.arange(len(view))
    reach = boundaries[np.searchsorted(boundaries, positions)] - positions
    own = stop - start
    tables: list = [None]
    codes = np.where(digits >= 0, digits, 0)
    for n in range(1, max_n + 1):
        if n > 1:
            codes = codes[:-1] * vocabulary + np.maximum(digits[n - 1 :], 0)
        first = min(own, len(codes))
        window_codes = codes[:first][reach[:first] >= n]
        unique, counts = np.unique(window_codes, return_counts=True)
        tables.append((unique.astype(np.int64), counts.astype(np.int64)))
    return (start, stop), tables
