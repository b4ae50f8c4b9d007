"""fairseq ``dict.txt``: the dictionary of a binarized corpus, and of few-shot class labels.

A ``dict.txt`` is UTF-8 text with one symbol per line, ``SYMBOL COUNT``: the symbol, one space,
then an integer count (the line is split at its last space). A line may end with fairseq's flag
`` #fairseq:overwrite`` after the count; blank lines are skipped. fairseq's ``Dictionary.load``
puts its four specials ``<s> <pad> </s> <unk>`` (ids 0 to 3) before the file's symbols, so the
symbol of the file's first line has token id 4; the masked-LM tasks append ``<mask>`` at load
time. Counts are not used once a corpus is binarized.

The dictionaries this project writes:

- **k-mers** (``genemask-preprocess``, ``genemask-hf import``): all 4^k k-mers in A<C<G<T order,
  count ``1`` (:func:`write_kmer_dictionary`), so a k-mer's token id is 4 + its base-4 code
  (:mod:`genemask_preprocess.kmers`). Non-overlapping k-mers (``--stride K``, k >= 2) append the
  four single bases ``A C G T`` (ids 4 + 4^k ..), the tokens of a remainder shorter than k: that
  tail is what tells a stride-k dictionary from an overlapping one. A k-mer dictionary in another
  order, such as a frequency-ordered one from ``fairseq-preprocess``, is read by symbol
  (:func:`load_kmer_vocabulary`).
- **SentencePiece pieces** (``genemask-preprocess --tokenizer sentencepiece``): the model's pieces
  in id order without its ``<unk>``, count ``1``.
- **class labels** (``genemask-fewshot prepare``, ``label/dict.txt``): the classes in class order
  with their training counts, so class i is token id 4 + i.

A token file (``.bin``) holds ids in the dtype ``fairseq-preprocess`` picks for the dictionary's
size (:func:`fairseq_int_dtype`). numpy only; writing goes through
:func:`~genemask_preprocess.atomic_output.atomic_file`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genemask_preprocess.atomic_output import atomic_file
from genemask_preprocess.errors import InputError
from genemask_preprocess.formats.input_file import open_text
from genemask_preprocess.kmers import (
    BASES,
    FAIRSEQ_SPECIALS,
    NUM_SPECIALS,
    KmerTokenization,
    encode_bases,
    is_acgt,
    kmer_codes,
    non_overlapping_kmer_codes,
    tokenization_of_symbols,
)

OVERWRITE_FLAG = "#fairseq:overwrite"
MAX_LOOKUP_K = 12
"""Longest k-mers a dictionary read by symbol may hold (its lookup table has 4^k entries)."""


class DictionaryError(InputError):
    """A missing or malformed ``dict.txt``, or one that is not the dictionary a command needs."""


def fairseq_int_dtype(num_symbols: int) -> type:
    """The token dtype ``fairseq-preprocess`` picks for a dictionary of this size."""
    return np.uint16 if num_symbols < 65500 else np.uint32


def read_dictionary_symbols(path: str | os.PathLike) -> list[str]:
    """Symbols of a ``dict.txt`` as ``Dictionary.load`` orders them: the four specials, then the file's."""
    path = Path(path)
    try:
        with open_text(path, encoding="utf-8", decompress=False) as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DictionaryError(f"cannot read dictionary {path}: {err}") from None
    symbols = list(FAIRSEQ_SPECIALS)
    for number, line in enumerate(lines, 1):
        line = line.rstrip()
        if not line:
            continue
        fields = line.rsplit(" ", 1)
        if fields[-1] == OVERWRITE_FLAG:
            fields = fields[0].rsplit(" ", 1)
        if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
            raise DictionaryError(
                f"{path} line {number}: expected 'symbol count' (a fairseq dict.txt), got {line!r}"
            )
        symbols.append(fields[0])
    return symbols


def write_dictionary(path: str | os.PathLike, symbols: Sequence[str], counts: Sequence[int] | None = None) -> None:
    """Write ``symbols`` (without fairseq's specials) as a ``dict.txt``; every count is 1 unless given."""
    if counts is not None and len(counts) != len(symbols):
        raise ValueError(f"{len(symbols)} symbols but {len(counts)} counts")
    bad = next((s for s in symbols if not s or s != "".join(s.split())), None)
    if bad is not None:
        raise ValueError(f"a dict.txt symbol must be non-empty without whitespace, got {bad!r}")
    counts = [1] * len(symbols) if counts is None else counts
    with atomic_file(path, encoding="utf-8") as handle:
        handle.writelines(f"{symbol} {int(count)}\n" for symbol, count in zip(symbols, counts, strict=True))


def write_kmer_dictionary(path: str | os.PathLike, k: int, stride: int = 1) -> None:
    """Write the fixed vocabulary of k-mers of ``k`` and ``stride`` (all 4^k k-mers in A<C<G<T order,
    then for stride k >= 2 the single bases ``A C G T``) as a ``dict.txt``."""
    write_dictionary(path, KmerTokenization(k, stride).symbols)


@dataclass(frozen=True)
class KmerVocabulary:
    """A k-mer ``dict.txt`` as a vectorised k-mer code -> token id lookup, and its tokenization."""

    path: Path
    symbols: list[str]
    k: int
    id_of_code: np.ndarray
    """int64 array of length 4^k: token id of each k-mer code, -1 if the k-mer is not in the dict."""
    stride: int = 1
    """1 (overlapping k-mers) or k (non-overlapping; then ``id_of_base`` holds the remainder's tokens)."""
    id_of_base: np.ndarray | None = None
    """int64 array of length 4: token id of each single base A, C, G, T (stride k >= 2 only)."""

    @property
    def dtype(self) -> type:
        return fairseq_int_dtype(len(self.symbols))

    @property
    def tokenization(self) -> KmerTokenization:
        return KmerTokenization(self.k, self.stride)

    @property
    def kmer_text_length(self) -> int | None:
        """The k of the overlapping k-mer strings a few-shot row may be written in (DNABERT's format):
        this k for an overlapping dictionary, where another k means the wrong dictionary; None (any k,
        decoded to DNA first) when the tokens do not overlap (stride k, single nucleotides)."""
        return self.k if self.stride == 1 and self.k > 1 else None

    def token_ids(self, codes: np.ndarray) -> np.ndarray:
        """Token ids (int64, -1 for a k-mer not in the dictionary) of one A/C/G/T run given as base codes."""
        if self.stride == 1:
            return self.id_of_code[kmer_codes(codes, self.k)]
        kmers, remainder = non_overlapping_kmer_codes(codes, self.k)
        return np.concatenate([self.id_of_code[kmers], self.id_of_base[remainder]])


def load_kmer_vocabulary(path: str | os.PathLike) -> KmerVocabulary:
    """Read a k-mer ``dict.txt`` and find its k and stride.

    Our fixed vocabularies are recognised directly; any other dictionary whose A/C/G/T symbols
    all have one length k (a frequency-ordered DNABERT vocabulary), or are all 4^k k-mers of one
    k >= 2 plus the four single bases (a reordered non-overlapping vocabulary), is accepted too, and
    its tokens are looked up by symbol. Raises :class:`DictionaryError` for any other dictionary.
    """
    path = Path(path)
    return kmer_vocabulary_of_symbols(read_dictionary_symbols(path), path)


def kmer_vocabulary_of_symbols(symbols: list[str], path: str | os.PathLike) -> KmerVocabulary:
    """:func:`load_kmer_vocabulary` of symbols already read (``path`` names them in errors)."""
    path = Path(path)
    tokenization = tokenization_of_symbols(symbols)
    if tokenization is not None:
        k = tokenization.k
        id_of_code = np.arange(NUM_SPECIALS, NUM_SPECIALS + 4**k, dtype=np.int64)
        id_of_base = id_of_code[-1] + 1 + np.arange(len(BASES)) if tokenization.remainder_bases else None
        return KmerVocabulary(path, symbols, k, id_of_code, tokenization.stride, id_of_base)
    kmer_ids = [i for i, s in enumerate(symbols) if is_acgt(s)]
    lengths = {len(symbols[i]) for i in kmer_ids}
    base_ids = {symbols[i]: i for i in kmer_ids if len(symbols[i]) == 1}
    # All 4^k k-mers and the four bases, so that SentencePiece pieces of two lengths are not taken for one.
    stride_k = (len(lengths) == 2 and 1 in lengths and sorted(base_ids) == list(BASES)
                and sum(len(symbols[i]) == max(lengths) for i in kmer_ids) == 4 ** max(lengths))
    if len(lengths) != 1 and not stride_k:
        found = "no A/C/G/T k-mers" if not lengths else f"k-mers of lengths {sorted(lengths)}"
        raise DictionaryError(f"{path} is not a k-mer dictionary: it has {found} (SentencePiece pieces "
                              "and other vocabularies are not supported here)")
    k = max(lengths)
    if k > MAX_LOOKUP_K:
        raise DictionaryError(f"{path}: k-mers of length {k} are too long for a k-mer vocabulary")
    kmer_ids = [i for i in kmer_ids if len(symbols[i]) == k]
    id_of_code = np.full(4**k, -1, dtype=np.int64)
    codes = kmer_codes(encode_bases("".join(symbols[i] for i in kmer_ids)), k)[::k]
    id_of_code[codes] = kmer_ids
    if stride_k:
        id_of_base = np.array([base_ids[base] for base in BASES], dtype=np.int64)
        return KmerVocabulary(path, symbols, k, id_of_code, k, id_of_base)
    return KmerVocabulary(path, symbols, k, id_of_code)
