"""COUNTS files: exact n-gram counts, binary (``.npz``) or as an ``ngram<TAB>count`` TSV.

Binary format (written by :func:`save_counts`, read by :func:`load_counts`): a NumPy
``.npz`` archive (uncompressed zip of ``.npy`` arrays) with

- ``format``: the string ``"genemask-ngram-counts"``; ``version``: int (1);
- ``max_n``: int N; ``both_strands``: bool;
- for every n in 1..N either ``dense_{n}`` (the 4^n counts indexed by the n-gram's
  base-4 code, A=0 C=1 G=2 T=3, first base most significant) or the sparse pair
  ``codes_{n}`` (sorted unique codes, uint32 or uint64) and ``counts_{n}`` (their counts),
  whichever is smaller. Count arrays are the smallest unsigned dtype that holds them;
- optional ``shard`` (only in the files of ``genemask-pmi count --shard I/N``): a JSON
  string with the shard's inputs, slice, ``max_n`` and strand setting (see
  :mod:`genemask_preprocess.pmi.shards`). Readers that do not know it ignore it, so the
  version stays 1, and files without it load as before.

The TSV interchange form (:func:`write_counts_tsv`, :func:`read_counts_tsv`) has the
header ``ngram<TAB>count`` and one row per n-gram with count > 0, all lengths in one file.
:func:`load_counts` tells the two apart by the zip magic. Pure numpy (no genome reader).

**Token n-grams** (``genemask-pmi count --tokens DATA_DIR``: n-grams of a binarized corpus'
tokens, for non-overlapping tokenizations) use the same files with another alphabet:

- ``.npz``: ``version`` 2 (so a reader of version 1 refuses them rather than misreading them),
  and ``tokens``, a JSON list of the alphabet: the dictionary's regular symbols in id order
  (symbol d has fairseq id 4 + d). A code is the n-gram read as a base-V number over those digits
  (V = the number of symbols; first token most significant), so V^n must stay below 2^63. Every
  length is stored sparse (``codes_{n}`` uint32 while V^n < 2^32, else uint64, and ``counts_{n}``);
- TSV: the header is ``token_ngram<TAB>count``, and the first column holds the n tokens' symbols
  separated by single spaces (``AAGCTT CCGTAA``). The 1-grams come first, in id order, and give
  the alphabet back when read (symbols never seen are left out; the codes' order is kept).
"""

from __future__ import annotations

import json
import os
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from genemask_preprocess.atomic_output import atomic_file
from genemask_preprocess.errors import InputError
from genemask_preprocess.formats.input_file import open_input, open_seekable, open_text
from genemask_preprocess.kmers import codes_of_kmers, kmers_of_codes

COUNTS_FORMAT = "genemask-ngram-counts"
COUNTS_VERSION = 2
"""Newest version read: 1 (base n-grams, what base counts are still written as), 2 (token n-grams)."""
_BASE_COUNTS_VERSION = 1
TOKEN_SEPARATOR = " "
"""Between the symbols of a token n-gram in TSV files and PMI tables."""
TOKEN_TSV_HEADER = ("token_ngram", "count")
MAX_N = 31
"""Longest n-gram: its 2n-bit code must fit a uint64 with room for the shifts."""
DENSE_MAX_N = 12
"""Longest n held as a dense 4^n array (128 MiB of int64); longer n are sparse."""
_NPZ_MAGIC = b"PK\x03\x04"
_INT64_MAX = np.iinfo(np.int64).max
_INTEGER_RE = re.compile(r"-?[0-9]+")
_ACGT = frozenset("ACGT")


class CountsError(InputError):
    """Bad COUNTS input or impossible counting request."""


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
    shard: dict | None = None
    """A shard's metadata (inputs, slice, max_n, strands), or None for counts of a whole."""
    tokens: tuple[str, ...] | None = None
    """Token n-grams: the alphabet, the dictionary's regular symbols in id order (digit d is fairseq
    id 4 + d). None for base n-grams (alphabet A C G T, codes base 4)."""

    @property
    def alphabet_size(self) -> int:
        return 4 if self.tokens is None else len(self.tokens)

    def names(self, n: int, codes: np.ndarray) -> list[str]:
        """The n-grams of ``codes`` as written in files: ``ACGT`` (bases) or ``AAGCTT CCGTAA`` (tokens)."""
        if self.tokens is None:
            return kmers_of_codes(codes, n)
        return token_ngram_names(codes, n, self.tokens)

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
        """All V^n counts indexed by code (only while V^n <= 4^DENSE_MAX_N)."""
        if self.alphabet_size**n > 4**DENSE_MAX_N:
            raise ValueError(f"a dense array of {self.alphabet_size}^{n} counts is too large")
        out = np.zeros(self.alphabet_size**n, dtype=np.int64)
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
        """Count of one n-gram string (0 when absent, or when it has a letter or symbol never counted)."""
        if self.tokens is not None:
            symbols = ngram.split(TOKEN_SEPARATOR)
            index = {symbol: d for d, symbol in enumerate(self.tokens)}
            if len(symbols) not in self.tables or any(symbol not in index for symbol in symbols):
                return 0
            return int(self.lookup(len(symbols), token_ngram_codes([symbols], index))[0])
        try:
            codes = codes_of_kmers([ngram], len(ngram))
        except ValueError:  # never counted
            return 0
        return int(self.lookup(len(ngram), codes)[0])


def token_ngram_digits(codes: np.ndarray, n: int, base: int) -> np.ndarray:
    """The (N, n) matrix of token digits (first token first) of base-``base`` token n-gram codes."""
    digits = np.empty((len(codes), n), dtype=np.int64)
    rest = np.asarray(codes, dtype=np.int64)
    for j in range(n - 1, -1, -1):
        rest, digits[:, j] = np.divmod(rest, base)
    return digits


def token_ngram_codes(ngrams: list[list[str]], index: dict[str, int]) -> np.ndarray:
    """Codes (int64) of token n-grams of one length given as symbol lists (every symbol in ``index``)."""
    if not ngrams:
        return np.zeros(0, dtype=np.int64)
    digits = np.array([[index[symbol] for symbol in ngram] for ngram in ngrams], dtype=np.int64)
    code = np.zeros(len(digits), dtype=np.int64)
    for j in range(digits.shape[1]):
        code = code * len(index) + digits[:, j]
    return code


def token_ngram_names(codes: np.ndarray, n: int, tokens: tuple[str, ...]) -> list[str]:
    """Token n-grams of codes as their symbols joined by :data:`TOKEN_SEPARATOR`."""
    symbols = np.array(tokens, dtype=object)[token_ngram_digits(codes, n, len(tokens))]
    return [TOKEN_SEPARATOR.join(row) for row in symbols.tolist()]


def save_counts(counts: NgramCounts, path: str | os.PathLike) -> None:
    """Write COUNTS in the binary ``.npz`` format (atomically)."""
    arrays: dict[str, np.ndarray] = {
        "format": np.array(COUNTS_FORMAT),
        "version": np.array(_BASE_COUNTS_VERSION if counts.tokens is None else COUNTS_VERSION),
        "max_n": np.array(counts.max_n),
        "both_strands": np.array(counts.both_strands),
    }
    if counts.tokens is not None:
        arrays["tokens"] = np.array(json.dumps(list(counts.tokens)))
    for n, (codes, values) in counts.tables.items():
        values = values.astype(_count_dtype(values))
        if counts.tokens is not None:
            arrays[f"codes_{n}"] = codes.astype(np.uint32 if counts.alphabet_size**n < 2**32 else np.uint64)
            arrays[f"counts_{n}"] = values
        elif n <= DENSE_MAX_N and len(codes) * (values.itemsize + 4) > (4**n) * values.itemsize:
            dense = np.zeros(4**n, dtype=values.dtype)
            dense[codes] = values
            arrays[f"dense_{n}"] = dense
        else:
            arrays[f"codes_{n}"] = codes.astype(np.uint32 if n <= 16 else np.uint64)
            arrays[f"counts_{n}"] = values
    if counts.shard is not None:
        arrays["shard"] = np.array(json.dumps(counts.shard, sort_keys=True))
    with atomic_file(path, "wb") as handle:
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
        with open_input(path, decompress=False) as handle:
            magic = handle.read(4)
    except OSError as err:
        raise CountsError(f"{path}: cannot read: {err.strerror}") from None
    if magic == _NPZ_MAGIC:
        return _load_npz(path)
    return read_counts_tsv(path)


def _load_npz(path: str) -> NgramCounts:
    try:
        with open_seekable(path) as handle, np.load(handle, allow_pickle=False) as data:
            if "format" not in data or str(data["format"]) != COUNTS_FORMAT:
                raise CountsError(f"{path}: not a genemask-pmi COUNTS file")
            if int(data["version"]) > COUNTS_VERSION:
                raise CountsError(f"{path}: COUNTS format version {int(data['version'])} is newer than this tool")
            both = bool(data["both_strands"])
            max_n = int(data["max_n"])
            tokens = _token_alphabet(path, data)
            base = 4 if tokens is None else len(tokens)
            tables = {}
            for key in data.files:
                if key.startswith("dense_"):
                    n = _length_of_key(path, key)
                    dense = _count_array(path, key, data[key])
                    if dense.shape != (base**n,):
                        raise CountsError(f"{path}: {key} holds {dense.size} counts, expected {base}^{n} = {base**n}")
                    codes = np.flatnonzero(dense).astype(np.int64)
                    tables[n] = (codes, dense[codes])
                elif key.startswith("codes_"):
                    n = _length_of_key(path, key)
                    tables[n] = _sparse_table(path, n, data[key], data[f"counts_{n}"], base)
            shard = json.loads(str(data["shard"])) if "shard" in data.files else None
    except CountsError:
        raise
    except (OSError, ValueError, KeyError, EOFError, TypeError, zipfile.BadZipFile, zlib.error) as err:
        raise CountsError(f"{path}: corrupt COUNTS file (truncated or damaged?): {err}") from None
    if not 1 <= max_n <= MAX_N or not tables or max(tables) != max_n:
        raise CountsError(f"{path}: corrupt COUNTS file: max_n is {max_n} but it holds n = {sorted(tables)}")
    counts = NgramCounts(tables, both_strands=both, shard=shard, tokens=tokens)
    check_consistent(counts, path)
    return counts


def _token_alphabet(path: str, data) -> tuple[str, ...] | None:
    """The ``tokens`` alphabet of an opened ``.npz`` (None for base counts), checked."""
    if "tokens" not in data.files:
        return None
    tokens = json.loads(str(data["tokens"]))
    if (not isinstance(tokens, list) or not tokens or len(set(tokens)) != len(tokens)
            or not all(isinstance(t, str) and t and t == "".join(t.split()) for t in tokens)):
        raise CountsError(f"{path}: corrupt COUNTS file: its token alphabet is not a list of distinct symbols")
    return tuple(tokens)


def read_token_alphabet(path: str | os.PathLike) -> tuple[str, ...] | None:
    """The token alphabet of a binary COUNTS file without loading its counts (None for base counts)."""
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            return _token_alphabet(path, data)
    except CountsError:
        raise
    except (OSError, ValueError, KeyError, EOFError, TypeError, zipfile.BadZipFile, zlib.error) as err:
        raise CountsError(f"{path}: corrupt COUNTS file: {err}") from None


def iter_count_arrays(path: str | os.PathLike) -> Iterator[tuple[int, np.ndarray | None, np.ndarray]]:
    """``(n, codes, counts)`` per length of a binary COUNTS file as stored, for summing many files fast.

    ``codes`` is None for a dense length (``counts`` then holds all 4^n counts); counts keep
    their stored unsigned dtype. Use :func:`load_counts` for anything else.
    """
    path = os.fspath(path)
    try:
        with open_seekable(path) as handle, np.load(handle, allow_pickle=False) as data:
            if "format" not in data.files or str(data["format"]) != COUNTS_FORMAT:
                raise CountsError(f"{path}: not a genemask-pmi COUNTS file")
            for key in data.files:
                if key.startswith("dense_"):
                    yield int(key[6:]), None, data[key]
                elif key.startswith("codes_"):
                    n = int(key[6:])
                    yield n, data[key], data[f"counts_{n}"]
    except CountsError:
        raise
    except (OSError, ValueError, KeyError, EOFError, TypeError, zipfile.BadZipFile, zlib.error) as err:
        raise CountsError(f"{path}: corrupt COUNTS file: {err}") from None


def read_shard_metadata(path: str | os.PathLike) -> dict | None:
    """The ``shard`` metadata of a binary COUNTS file without loading its counts; None if it has none."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CountsError(f"{path}: no such file")
    try:
        with open_input(path, decompress=False) as handle:
            if handle.read(4) != _NPZ_MAGIC:
                return None  # a TSV: never a shard
        with open_seekable(path) as handle, np.load(handle, allow_pickle=False) as data:
            if "format" not in data.files or str(data["format"]) != COUNTS_FORMAT:
                raise CountsError(f"{path}: not a genemask-pmi COUNTS file")
            return json.loads(str(data["shard"])) if "shard" in data.files else None
    except CountsError:
        raise
    except (OSError, ValueError, KeyError, EOFError, TypeError, zipfile.BadZipFile, zlib.error) as err:
        raise CountsError(f"{path}: corrupt COUNTS file: {err}") from None


def _length_of_key(path: str, key: str) -> int:
    digits = key.split("_", 1)[1]
    if not digits.isdigit() or not 1 <= int(digits) <= MAX_N:
        raise CountsError(f"{path}: corrupt COUNTS file: unexpected array {key!r}")
    return int(digits)


def _count_array(path: str, key: str, values: np.ndarray) -> np.ndarray:
    """Counts as int64, refusing what no counting gives: non-integers (NaN), negatives, beyond int64."""
    if values.ndim != 1 or values.dtype.kind not in "ui":
        raise CountsError(f"{path}: {key} holds {values.dtype} values of shape {values.shape}; counts are 1-D integers")
    if values.size and values.dtype.kind == "i" and values.min() < 0:
        raise CountsError(f"{path}: {key} holds a negative count ({int(values.min())})")
    if values.size and values.dtype == np.uint64 and values.max() > np.uint64(_INT64_MAX):
        raise CountsError(f"{path}: {key} holds a count beyond the int64 range ({int(values.max())})")
    return values.astype(np.int64)


def _sparse_table(path: str, n: int, codes: np.ndarray, values: np.ndarray,
                  base: int = 4) -> tuple[np.ndarray, np.ndarray]:
    if codes.ndim != 1 or codes.dtype.kind not in "ui":
        raise CountsError(f"{path}: codes_{n} holds {codes.dtype} values of shape {codes.shape}; codes are 1-D integers")
    values = _count_array(path, f"counts_{n}", values)
    if len(values) != len(codes):
        raise CountsError(f"{path}: codes_{n} has {len(codes)} entries but counts_{n} has {len(values)}")
    if base**n > _INT64_MAX:
        raise CountsError(f"{path}: corrupt COUNTS file: {n}-grams of {base} tokens do not fit 63-bit codes")
    codes = codes.astype(np.uint64).astype(np.int64) if codes.dtype == np.uint64 else codes.astype(np.int64)
    if len(codes) and (codes.min() < 0 or codes.max() >= base**n or np.any(codes[1:] <= codes[:-1])):
        raise CountsError(f"{path}: codes_{n} are not sorted unique {n}-gram codes")
    keep = values > 0
    return codes[keep], values[keep]


def check_consistent(counts: NgramCounts, path: str | os.PathLike) -> None:
    """Refuse counts no genome gives: an n-gram counted more often than its own prefix or suffix.

    Every occurrence of an (n+1)-gram contains an occurrence of its first n and of its last n
    bases, so it cannot be counted more often than either. A hand edit or a damaged file breaks
    this, and a 6-gram counted above its 5-gram prefix would rank first in every table.
    (Sums over the four extensions are not checked: tools that count across record joins, as
    the published GeneMask counts were, exceed them slightly.)
    """
    base = counts.alphabet_size
    for n in counts.lengths:
        total = counts.counts(n).sum(dtype=np.float64)
        if total >= 2.0**62:
            raise CountsError(f"{os.fspath(path)}: the {n}-gram counts add up to {total:.3g}, beyond any genome")
        if n + 1 not in counts.tables:
            continue
        codes, values = counts.tables[n + 1]
        for part, shorter in (("prefix", codes // base), ("suffix", codes % base**n)):
            bad = np.flatnonzero(values > counts.lookup(n, shorter))
            if len(bad):
                i = bad[0]
                gram = counts.names(n + 1, codes[i : i + 1])[0]
                sub = counts.names(n, shorter[i : i + 1])[0]
                raise CountsError(
                    f"{os.fspath(path)}: inconsistent counts: {gram} is counted {int(values[i])} times, more than "
                    f"its {part} {sub} ({int(counts.lookup(n, shorter[i : i + 1])[0])}); the file was edited or damaged"
                )


def write_counts_tsv(counts: NgramCounts, path: str | os.PathLike) -> None:
    """Write the ``ngram<TAB>count`` (or ``token_ngram<TAB>count``) interchange TSV (all lengths,
    count > 0), atomically."""
    with atomic_file(path, "w", encoding=None if counts.tokens is None else "utf-8") as handle:
        handle.write("ngram\tcount\n" if counts.tokens is None else "\t".join(TOKEN_TSV_HEADER) + "\n")
        for n in counts.lengths:
            codes, values = counts.tables[n]
            keep = values > 0
            names = counts.names(n, codes[keep])
            handle.writelines(f"{s}\t{c}\n" for s, c in zip(names, values[keep].tolist(), strict=True))


def read_counts_tsv(path: str | os.PathLike) -> NgramCounts:
    """Read an ``ngram<TAB>count`` TSV; any bad row raises :class:`CountsError` naming it."""
    path = os.fspath(path)
    by_length: dict[int, tuple[list[str], list[int], list[int]]] = {}
    try:
        handle = open_text(path, encoding="ascii", decompress=False)
    except OSError as err:
        raise CountsError(f"{path}: cannot read: {err.strerror}") from None
    with handle:
        try:
            header = handle.readline().rstrip("\r\n")
            if tuple(header.split("\t")[:2]) == TOKEN_TSV_HEADER:
                return _read_token_counts_tsv(path, handle)
            if header.split("\t")[:2] != ["ngram", "count"]:
                raise CountsError(f"{path}: row 1: expected the header 'ngram<TAB>count' (or "
                                  f"'token_ngram<TAB>count'), got {header[:60]!r}")
            for row_no, line in enumerate(handle, start=2):
                line = line.rstrip("\r\n")
                if not line:
                    continue
                fields = line.split("\t")
                if len(fields) < 2:
                    raise CountsError(f"{path}: row {row_no}: expected 'ngram<TAB>count', got {line[:60]!r}")
                ngram, raw = fields[0].strip().upper(), fields[1].strip()
                if not ngram or not set(ngram) <= _ACGT:
                    raise CountsError(f"{path}: row {row_no}: {fields[0][:40]!r} is not an A/C/G/T n-gram")
                if len(ngram) > MAX_N:
                    raise CountsError(f"{path}: row {row_no}: n-gram longer than {MAX_N}")
                if not _INTEGER_RE.fullmatch(raw):
                    raise CountsError(f"{path}: row {row_no}: count {raw[:30]!r} is not an integer")
                value = int(raw)
                if value < 0:
                    raise CountsError(f"{path}: row {row_no}: count {value} is negative")
                if value > _INT64_MAX:
                    raise CountsError(f"{path}: row {row_no}: count {raw[:30]} is beyond the int64 range")
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
        codes = codes_of_kmers(ngrams, n)
        order = np.argsort(codes, kind="stable")
        codes, counts, row_arr = codes[order], np.asarray(values, np.int64)[order], np.asarray(rows)[order]
        dup = np.flatnonzero(codes[1:] == codes[:-1])
        if len(dup):
            raise CountsError(f"{path}: row {row_arr[dup[0] + 1]}: duplicate n-gram {ngrams[order[dup[0] + 1]]!r}")
        keep = counts > 0
        tables[n] = (codes[keep], counts[keep])
        first_rows[n] = int(min(rows))
    counts = NgramCounts(tables, first_rows=first_rows)
    check_consistent(counts, path)
    return counts


def _read_token_counts_tsv(path: str, handle) -> NgramCounts:
    """The rows after a ``token_ngram<TAB>count`` header; the 1-grams, first, are the alphabet."""
    tokens: list[str] = []
    index: dict[str, int] = {}
    by_length: dict[int, tuple[list[list[str]], list[int], list[int]]] = {}
    for row_no, line in enumerate(handle, start=2):
        line = line.rstrip("\r\n")
        if not line:
            continue
        fields = line.split("\t")
        raw = fields[1].strip() if len(fields) > 1 else ""
        if len(fields) < 2 or not _INTEGER_RE.fullmatch(raw) or int(raw) < 0 or int(raw) > _INT64_MAX:
            raise CountsError(f"{path}: row {row_no}: expected 'token_ngram<TAB>count' with a count in "
                              f"0..2^63-1, got {line[:60]!r}")
        symbols = fields[0].split(TOKEN_SEPARATOR)
        if not all(symbols):
            raise CountsError(f"{path}: row {row_no}: {fields[0][:40]!r} is not symbols separated by single spaces")
        if len(symbols) == 1 and not by_length.keys() - {1}:
            if symbols[0] in index:
                raise CountsError(f"{path}: row {row_no}: duplicate n-gram {symbols[0]!r}")
            index[symbols[0]] = len(tokens)
            tokens.append(symbols[0])
        unknown = next((symbol for symbol in symbols if symbol not in index), None)
        if unknown is not None:
            raise CountsError(f"{path}: row {row_no}: token {unknown!r} is not among the 1-grams listed before it "
                              "(a token COUNTS TSV lists its 1-grams first)")
        entry = by_length.setdefault(len(symbols), ([], [], []))
        entry[0].append(symbols)
        entry[1].append(int(raw))
        entry[2].append(row_no)
    if not tokens:
        raise CountsError(f"{path}: no 1-gram rows (a token COUNTS TSV lists its 1-grams first)")
    if len(tokens) ** max(by_length) > _INT64_MAX:
        raise CountsError(f"{path}: {max(by_length)}-grams of {len(tokens)} tokens do not fit 63-bit codes")
    tables, first_rows = {}, {}
    for n, (ngrams, values, rows) in sorted(by_length.items()):
        codes = token_ngram_codes(ngrams, index)
        order = np.argsort(codes, kind="stable")
        codes, counts = codes[order], np.asarray(values, np.int64)[order]
        dup = np.flatnonzero(codes[1:] == codes[:-1])
        if len(dup):
            raise CountsError(f"{path}: row {rows[order[dup[0] + 1]]}: duplicate n-gram "
                              f"{TOKEN_SEPARATOR.join(ngrams[order[dup[0] + 1]])!r}")
        keep = counts > 0
        tables[n] = (codes[keep], counts[keep])
        first_rows[n] = int(min(rows))
    counts = NgramCounts(tables, first_rows=first_rows, tokens=tuple(tokens))
    check_consistent(counts, path)
    return counts
