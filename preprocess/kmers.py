"""The k-mer codec: DNA letters <-> 2-bit codes <-> k-mer token ids, and the fixed k-mer vocabularies.

Every corpus of the same k and stride shares one vocabulary: fairseq's four specials
(``<s> <pad> </s> <unk>``) followed by all 4^k k-mers in lexicographic A<C<G<T
order. So the token id of a k-mer is ``NUM_SPECIALS + code``, with ``code`` the
k-mer read as a base-4 number (A=0, C=1, G=2, T=3). The ``<mask>`` symbol is
appended by the fairseq tasks at load time, giving 4^k + 5 symbols (4101 for
k=6, as DNABERT).

Two tokenizations (:class:`KmerTokenization`) use it:

- **overlapping k-mers** (stride 1, DNABERT): a run of L bases gives its L - k + 1 k-mers;
- **non-overlapping k-mers** (stride k, the Nucleotide Transformer): the run is cut into
  k-mers from its start, and a remainder of fewer than k bases becomes single-base tokens,
  NT's rule (``NucleotidesKmersTokenizer.tokenize`` in instadeepai/nucleotide-transformer,
  ``nucleotide_transformer/tokenizers.py``: "ATCGAATGGCGATGCAC -> ATCGA ATGGC GATGC A C" for
  k=5). Its vocabulary appends the four single bases ``A C G T`` after the k-mers, so a
  dictionary says which tokenization it is; k=1 (single nucleotides) is both at once.

This module is pure numpy and does not import fairseq; it reads and writes no files (the
vocabulary's ``dict.txt`` is :mod:`genemask_preprocess.formats.fairseq_dictionary`).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import numpy as np

BASES = "ACGT"
INVALID = np.uint8(4)
"""Code of any letter that is not A/C/G/T (N, IUPAC ambiguity codes, gaps)."""

FAIRSEQ_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
NUM_SPECIALS = len(FAIRSEQ_SPECIALS)
BOS_ID, PAD_ID, EOS_ID, UNK_ID = range(NUM_SPECIALS)
MASK_SYMBOL = "<mask>"
MAX_K = 7
"""Largest k whose vocabulary (4^7 + 5 = 16 389) still fits fairseq's uint16 token files."""

_CODE_OF_BYTE = np.full(256, INVALID, dtype=np.uint8)
for _code, _base in enumerate(BASES):
    _CODE_OF_BYTE[ord(_base)] = _code
    _CODE_OF_BYTE[ord(_base.lower())] = _code  # soft-masked repeats are real sequence

_ACGT_RE = re.compile(r"[ACGT]+\Z")
_LETTERS = np.frombuffer(b"ACGTN", dtype=np.uint8)
_COMPLEMENT_CODE = np.array([3, 2, 1, 0, INVALID], dtype=np.uint8)


def check_k(k: int) -> int:
    """Return ``k`` if it is a supported k-mer size, else raise ``ValueError``."""
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_K:
        raise ValueError(f"k must be an integer from 1 to {MAX_K}, got {k!r}")
    return int(k)


def encode_bases(seq: bytes | str | np.ndarray) -> np.ndarray:
    """Map letters to 2-bit codes (uint8 0..3); anything not A/C/G/T (any case) becomes ``INVALID``."""
    if isinstance(seq, str):
        seq = seq.encode("ascii", errors="replace")
    raw = np.frombuffer(seq, dtype=np.uint8) if not isinstance(seq, np.ndarray) else seq
    return _CODE_OF_BYTE[raw]


def decode_bases(codes: np.ndarray) -> str:
    """Inverse of :func:`encode_bases` for valid codes (``INVALID`` becomes ``N``)."""
    return _LETTERS[np.asarray(codes)].tobytes().decode("ascii")


def acgt_runs(codes: np.ndarray, min_length: int = 1) -> np.ndarray:
    """Half-open ``[start, end)`` intervals of maximal A/C/G/T runs, as an (R, 2) int64 array.

    Runs shorter than ``min_length`` are dropped. Sequences are split, never fused,
    at non-ACGT letters.
    """
    valid = np.concatenate(([False], codes != INVALID, [False]))
    edges = np.flatnonzero(valid[1:] != valid[:-1])
    runs = edges.reshape(-1, 2).astype(np.int64)
    if min_length > 1 and len(runs):
        runs = runs[(runs[:, 1] - runs[:, 0]) >= min_length]
    return runs


def kmer_codes(codes: np.ndarray, k: int, dtype=np.int64) -> np.ndarray:
    """Rolling base-4 codes of the ``len(codes) - k + 1`` overlapping k-mers of an A/C/G/T run.

    ``dtype`` may be narrower than int64 when 2k bits fit (uint32 for k <= 16 halves the
    memory traffic of genome-wide counting).
    """
    n = len(codes) - k + 1
    if n <= 0:
        return np.zeros(0, dtype=dtype)
    out = codes[:n].astype(dtype)
    for j in range(1, k):
        out <<= 2
        out |= codes[j : j + n]
    return out


def base_digits(codes: np.ndarray, k: int) -> np.ndarray:
    """The (N, k) matrix of base codes (0..3, first base first) of k-mer codes."""
    shifts = 2 * np.arange(k - 1, -1, -1, dtype=np.int64)
    return ((np.asarray(codes, dtype=np.int64)[:, None] >> shifts) & 3).astype(np.uint8)


def codes_of_kmers(kmers: list[str], k: int) -> np.ndarray:
    """Codes (int64) of equal-length A/C/G/T k-mer strings, vectorised; ``ValueError`` on any other letter."""
    if not kmers:
        return np.zeros(0, dtype=np.int64)
    raw = np.frombuffer("".join(kmers).encode("ascii", errors="replace"), dtype=np.uint8)
    if raw.size != len(kmers) * k:
        raise ValueError(f"k-mers are not all of length {k}")
    digits = encode_bases(raw).reshape(len(kmers), k)
    bad = np.flatnonzero((digits == INVALID).any(axis=1))
    if len(bad):
        raise ValueError(f"not an A/C/G/T k-mer: {kmers[bad[0]]!r}")
    return codes_of_digits(digits)


def codes_of_digits(digits: np.ndarray) -> np.ndarray:
    """Codes (int64) of the rows of an (N, k) matrix of base codes 0..3; inverse of :func:`base_digits`."""
    digits = np.asarray(digits)
    code = np.zeros(digits.shape[0], dtype=np.int64)
    for j in range(digits.shape[1]):
        code = (code << 2) | digits[:, j]
    return code


def kmers_of_codes(codes: np.ndarray, k: int) -> list[str]:
    """k-mer strings of codes, vectorised."""
    blob = _LETTERS[base_digits(codes, k)].tobytes().decode("ascii")
    return [blob[i : i + k] for i in range(0, len(blob), k)]


def reverse_complement_codes(codes: np.ndarray, k: int) -> np.ndarray:
    """Codes (int64) of the reverse complements of k-mers given by code."""
    comp = (~np.asarray(codes, dtype=np.int64)) & ((1 << (2 * k)) - 1)  # complement is 3 - x
    out = np.zeros(comp.shape, dtype=np.int64)
    for _ in range(k):
        out = (out << 2) | (comp & 3)
        comp >>= 2
    return out


def reverse_complement_dna(dna: str) -> str:
    """Reverse complement of a DNA string (A/C/G/T, either case; anything else becomes N)."""
    return decode_bases(_COMPLEMENT_CODE[encode_bases(dna)][::-1])


def all_kmers(k: int) -> list[str]:
    """All 4^k k-mers in canonical (lexicographic A<C<G<T) order, i.e. by code."""
    check_k(k)
    return ["".join(p) for p in itertools.product(BASES, repeat=k)]


def kmer_of_code(code: int, k: int) -> str:
    """The k-mer string of a base-4 code."""
    return kmers_of_codes(np.array([code]), k)[0]


def is_acgt(text: str) -> bool:
    """True if ``text`` is one or more upper-case A/C/G/T letters (a k-mer symbol)."""
    return _ACGT_RE.match(text) is not None


@dataclass(frozen=True)
class KmerTokenization:
    """How DNA becomes k-mer tokens: ``stride`` 1 (overlapping) or k (non-overlapping, NT's remainder rule)."""

    k: int
    stride: int = 1

    def __post_init__(self):
        check_k(self.k)
        if self.stride not in (1, self.k):
            raise ValueError(
                f"the stride must be 1 (overlapping k-mers) or k = {self.k} (non-overlapping), got {self.stride!r}"
            )

    @property
    def overlapping(self) -> bool:
        """True for overlapping k-mers of k >= 2: neighbouring tokens share k - 1 bases."""
        return self.stride == 1 and self.k > 1

    @property
    def remainder_bases(self) -> bool:
        """True when the vocabulary holds single-base tokens for a remainder (stride k, k >= 2)."""
        return self.stride == self.k > 1

    @property
    def symbols(self) -> list[str]:
        """The regular symbols in id order (token id = ``NUM_SPECIALS`` + index): the k-mers, then
        ``A C G T`` for the remainder of a non-overlapping tokenization."""
        return all_kmers(self.k) + (list(BASES) if self.remainder_bases else [])

    def describe(self) -> str:
        if self.k == 1:
            return "single nucleotides"
        return f"{'overlapping' if self.overlapping else 'non-overlapping'} {self.k}-mers"

    def num_tokens(self, bases: int) -> int:
        """Tokens of a run of ``bases`` A/C/G/T letters (at least k)."""
        return bases - self.k + 1 if self.stride == 1 else bases // self.k + bases % self.k

    def max_bases(self, tokens: int) -> int:
        """Longest run whose tokens number at most ``tokens`` (>= 1)."""
        return tokens + self.k - 1 if self.stride == 1 else tokens * self.k

    def token_ids(self, codes: np.ndarray) -> np.ndarray:
        """fairseq token ids (int64) of one A/C/G/T run given as base codes (at least k of them)."""
        codes = np.asarray(codes)
        if self.stride == 1:
            return kmer_codes(codes, self.k) + NUM_SPECIALS
        kmers, remainder = non_overlapping_kmer_codes(codes, self.k)
        return np.concatenate([kmers + NUM_SPECIALS, remainder + NUM_SPECIALS + 4**self.k])

    def dna_of_symbols(self, symbols: list[str]) -> str:
        """The DNA of one item's token symbols: overlapping k-mers are chained, others joined."""
        return kmers_to_dna(" ".join(symbols)) if self.overlapping else "".join(symbols)


def non_overlapping_kmer_codes(codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The codes (int64) of the k-mers cut from an A/C/G/T run's start, and the base codes (int64) of
    the remainder of fewer than k bases after them."""
    whole = len(codes) // k * k
    return kmer_codes(codes[:whole], k)[::k], np.asarray(codes[whole:], dtype=np.int64)


def tokenization_of_symbols(symbols: list[str]) -> KmerTokenization | None:
    """The tokenization of a fairseq dictionary's symbol list if it is one of our fixed k-mer
    vocabularies, else ``None``.

    ``symbols`` is ``Dictionary.symbols``: the four specials, the 4^k k-mers in canonical order,
    for stride k the four single bases ``A C G T``, then optionally ``<mask>`` and fairseq's
    ``madeupword`` padding.
    """
    if len(symbols) <= NUM_SPECIALS or tuple(symbols[:NUM_SPECIALS]) != FAIRSEQ_SPECIALS:
        return None
    k = len(symbols[NUM_SPECIALS])
    if not 1 <= k <= MAX_K or len(symbols) < NUM_SPECIALS + 4**k:
        return None
    if symbols[NUM_SPECIALS : NUM_SPECIALS + 4**k] != all_kmers(k):
        return None
    after = NUM_SPECIALS + 4**k
    stride = k if k > 1 and symbols[after : after + len(BASES)] == list(BASES) else 1
    tokenization = KmerTokenization(k, stride)
    extra = symbols[NUM_SPECIALS + len(tokenization.symbols) :]
    if any(symbol != MASK_SYMBOL and not symbol.startswith("madeupword") for symbol in extra):
        return None  # e.g. SentencePiece pieces that happen to begin with A C G T
    return tokenization


def kmer_size_of_symbols(symbols: list[str]) -> int | None:
    """k of a fairseq dictionary's symbol list if it is our fixed *overlapping* k-mer vocabulary
    (stride 1; k = 1 included), else ``None``: a non-overlapping vocabulary is not mistaken for one.

    ``symbols`` is ``Dictionary.symbols``: the four specials, the 4^k k-mers in
    canonical order, then optionally ``<mask>`` and fairseq's ``madeupword`` padding.
    """
    tokenization = tokenization_of_symbols(symbols)
    return tokenization.k if tokenization is not None and tokenization.stride == 1 else None


def kmer_size_of_embedding_rows(rows: int) -> int | None:
    """k whose fixed overlapping vocabulary plus ``<mask>`` has ``rows`` symbols (a model's embedding rows), else ``None``."""
    return next((k for k in range(1, MAX_K + 1) if rows == NUM_SPECIALS + 4**k + 1), None)


def tokenization_of_embedding_rows(rows: int) -> KmerTokenization | None:
    """The fixed vocabulary (either stride) whose symbols plus ``<mask>`` number ``rows``, else ``None``.

    The sizes never collide: 4^k + 5 (overlapping) and 4^k + 9 (stride k >= 2).
    """
    for k in range(1, MAX_K + 1):
        for stride in (1, k):
            tokenization = KmerTokenization(k, stride)
            if rows == NUM_SPECIALS + len(tokenization.symbols) + 1:
                return tokenization
    return None


def kmers_to_dna(kmer_string: str) -> str:
    """Raw DNA of a DNABERT-style string of space-separated overlapping k-mers.

    The DNA is the first k-mer plus the last base of each following one. Raises
    ``ValueError`` if the k-mers are ragged or do not overlap by k-1 bases. Vectorised:
    the k-mers are viewed as an (n, k) matrix of code points, so the overlap check is
    one array comparison.
    """
    kmers = kmer_string.split()
    if not kmers:
        raise ValueError("empty k-mer string")
    k = len(kmers[0])
    lengths = np.fromiter(map(len, kmers), dtype=np.int64, count=len(kmers))
    ragged = np.flatnonzero(lengths != k)
    if len(ragged):
        i = ragged[0]
        raise ValueError(f"ragged k-mers: k-mer {i + 1} {kmers[i]!r} has length {lengths[i]}, expected {k}")
    letters = np.frombuffer("".join(kmers).encode("utf-32-le"), dtype="<u4").reshape(-1, k)
    broken = np.flatnonzero((letters[1:, :-1] != letters[:-1, 1:]).any(axis=1))
    if len(broken):
        i = broken[0] + 1
        raise ValueError(f"k-mer {i + 1} {kmers[i]!r} does not overlap k-mer {i} {kmers[i - 1]!r} by {k - 1} bases")
    return kmers[0] + letters[1:, -1].tobytes().decode("utf-32-le")


def dna_to_kmers(dna: str, k: int) -> list[str]:
    """Overlapping k-mers (stride 1) of a DNA string."""
    return [dna[i : i + k] for i in range(len(dna) - k + 1)]


def dna_to_kmer_string(dna: str, k: int = 6) -> str:
    """DNABERT's input convention: the space-separated overlapping k-mers of a DNA string.

    >>> dna_to_kmer_string("ACGTAC", k=4)
    'ACGT CGTA GTAC'
    """
    check_k(k)
    if len(dna) < k:
        raise ValueError(f"a sequence of {len(dna)} bases has no {k}-mers")
    return " ".join(dna_to_kmers(dna.upper(), k))
