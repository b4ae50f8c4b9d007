"""PMI TABLE files: writing them, reading them, and the per-token score loader used by masking.

A TABLE is a TSV with the header ``ngram<TAB>n<TAB>count<TAB>naive_pmi<TAB>pmi<TAB>npmi<TAB>rank``,
one row per scored n-gram, possibly several n in one file (rows grouped by n, best rank
first). Scores use the natural log; ``rank`` is 1 for the highest ``npmi`` within each n.
An ``ngram`` is n bases (``ACGTAC``, from genome counts) or, from ``count --tokens``, the symbols
of n tokens separated by single spaces (``AAGCTT CCGTAA``; n >= 2, so the two never look alike).

Two loaders turn a TABLE into what a masking strategy takes (:data:`PMI_TABLE_VIEWS`):
:func:`load_token_scores` (one score per overlapping k-mer token, from the n == k base rows) and
:func:`load_collocations` (``pmi_span``'s collocation vocabulary, from token n-gram rows).

The fairseq training path imports this module (through :func:`load_token_scores`), so it
and everything it imports is numpy-only: no genome reader, no pysam, no plotting.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from genemask_preprocess.atomic_output import atomic_file
from genemask_preprocess.errors import InputError
from genemask_preprocess.formats.input_file import open_text
from genemask_preprocess.formats.ngram_counts_file import TOKEN_SEPARATOR
from genemask_preprocess.kmers import NUM_SPECIALS, codes_of_kmers, tokenization_of_symbols

if TYPE_CHECKING:  # the scorer is not needed to read a table
    from genemask_preprocess.pmi.scores import PMIScores

TABLE_COLUMNS = ("ngram", "n", "count", "naive_pmi", "pmi", "npmi", "rank")
SCORE_COLUMNS = ("count", "naive_pmi", "pmi", "npmi", "rank")
_ACGT = frozenset("ACGT")


class PMITableError(InputError):
    """A missing, malformed or unusable TABLE."""


def write_pmi_table(scores: dict[int, PMIScores], path: str | os.PathLike) -> None:
    """Write scores as a TABLE (atomically), each n sorted by rank."""
    with atomic_file(path, "w") as handle:
        handle.write("\t".join(TABLE_COLUMNS) + "\n")
        for n in sorted(scores):
            table = scores[n]
            order = np.argsort(table.rank, kind="stable")
            names = table.ngrams
            rows = zip(
                (names[i] for i in order),
                table.count[order].tolist(),
                table.naive_pmi[order].tolist(),
                table.pmi[order].tolist(),
                table.npmi[order].tolist(),
                table.rank[order].tolist(),
                strict=True,
            )
            handle.writelines(
                f"{g}\t{n}\t{c}\t{a:.6f}\t{b:.6f}\t{d:.6f}\t{r}\n" for g, c, a, b, d, r in rows
            )


def read_pmi_table(path: str | os.PathLike, n: int | None = None) -> dict[int, dict[str, np.ndarray]]:
    """Read a TABLE: ``{n: {"ngram": list, "count": int64, "naive_pmi"/"pmi"/"npmi": float64, "rank": int64}}``.

    With ``n`` given, only rows of that length are kept. Raises :class:`PMITableError`
    naming the offending row on any malformed row.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise PMITableError(f"{path}: no such PMI table")
    if os.path.isdir(path):
        raise PMITableError(f"{path}: is a directory, expected a PMI table TSV")
    columns: dict[int, dict[str, list]] = {}
    try:
        with open_text(path, encoding="ascii", decompress=False) as handle:
            header = handle.readline().rstrip("\r\n").split("\t")
            missing = [c for c in TABLE_COLUMNS if c not in header]
            if missing:
                raise PMITableError(
                    f"{path}: row 1: not a PMI table header (missing column {missing[0]!r}; expected "
                    f"{' '.join(TABLE_COLUMNS)})"
                )
            index = {c: header.index(c) for c in TABLE_COLUMNS}
            width = max(index.values()) + 1
            for row_no, line in enumerate(handle, start=2):
                fields = line.rstrip("\r\n").split("\t")
                if len(fields) == 1 and not fields[0]:
                    continue
                if len(fields) < width:
                    raise PMITableError(f"{path}: row {row_no}: expected {len(header)} columns, got {len(fields)}")
                length = _natural(path, row_no, "n", fields[index["n"]])
                if n is not None and length != n:  # other lengths: checked for damage, not parsed
                    ngram = fields[index["ngram"]]
                    if not _is_ngram(ngram, length):
                        raise PMITableError(f"{path}: row {row_no}: {ngram[:40]!r} is not an A/C/G/T {length}-gram")
                    continue
                _parse_row(path, row_no, fields, index, columns, length)
    except UnicodeDecodeError:
        raise PMITableError(f"{path}: not a text PMI table (binary or non-ASCII content)") from None
    except OSError as err:
        raise PMITableError(f"{path}: cannot read: {err.strerror}") from None
    out = {}
    for length, cols in columns.items():
        out[length] = {
            "ngram": cols["ngram"],
            "count": np.asarray(cols["count"], dtype=np.int64),
            "naive_pmi": np.asarray(cols["naive_pmi"], dtype=np.float64),
            "pmi": np.asarray(cols["pmi"], dtype=np.float64),
            "npmi": np.asarray(cols["npmi"], dtype=np.float64),
            "rank": np.asarray(cols["rank"], dtype=np.int64),
        }
    return out


_NATURAL_RE = re.compile(r"[0-9]+")


def _natural(path, row_no, name: str, raw: str) -> int:
    """A count, rank or n exactly as the writer writes it: plain digits, no sign, no leading zero."""
    if not _NATURAL_RE.fullmatch(raw) or (len(raw) > 1 and raw[0] == "0"):
        raise PMITableError(f"{path}: row {row_no}: {name} {raw[:30]!r} is not written as a plain whole number")
    return int(raw)


def is_token_ngram(ngram: str) -> bool:
    """Whether a TABLE's ``ngram`` is token symbols (``count --tokens``) rather than bases."""
    return TOKEN_SEPARATOR in ngram


def _is_ngram(ngram: str, n: int) -> bool:
    if is_token_ngram(ngram):
        symbols = ngram.split(TOKEN_SEPARATOR)
        return len(symbols) == n >= 2 and all(symbols)
    return len(ngram) == n and set(ngram) <= _ACGT


def _parse_row(path, row_no, fields, index, columns, length: int) -> None:
    ngram = fields[index["ngram"]]
    if not is_token_ngram(ngram):
        ngram = ngram.strip()
        if not ngram or not set(ngram) <= _ACGT:
            raise PMITableError(f"{path}: row {row_no}: {ngram[:40]!r} is not an A/C/G/T n-gram")
    if not _is_ngram(ngram, length):
        what = f"{len(ngram.split(TOKEN_SEPARATOR))} tokens" if is_token_ngram(ngram) else f"length {len(ngram)}"
        raise PMITableError(f"{path}: row {row_no}: n-gram {ngram!r} has {what}, but n is {length}")
    cols = columns.setdefault(length, {c: [] for c in TABLE_COLUMNS if c != "n"})
    cols["ngram"].append(ngram)
    for name in SCORE_COLUMNS:
        raw = fields[index[name]]
        if name in ("count", "rank"):
            value = _natural(path, row_no, name, raw)
            if name == "rank" and value < 1:
                raise PMITableError(f"{path}: row {row_no}: rank must be 1 or more, got {raw!r}")
        else:
            try:
                value = float(raw)
            except ValueError:
                raise PMITableError(f"{path}: row {row_no}: {name} {raw[:30]!r} is not a number") from None
            if not math.isfinite(value):
                raise PMITableError(f"{path}: row {row_no}: {name} is {raw.strip()}; scores must be finite")
        cols[name].append(value)


def load_token_scores(
    path: str | os.PathLike,
    symbols: list[str],
    column: str = "npmi",
    max_missing_fraction: float = 0.5,
) -> np.ndarray:
    """Per-token scores (float32, len(symbols)) for a fairseq ``Dictionary.symbols`` k-mer vocabulary.

    k comes from the symbols; the TABLE's rows with n == k are used. Higher is better:
    ``column="rank"`` gives ``-rank``. Specials, ``<mask>``, padding symbols and k-mers
    without a score get ``-inf`` (they rank last). Raises :class:`PMITableError` if the
    file is missing or malformed, has no n == k rows, or more than ``max_missing_fraction``
    of the 4^k k-mers have no score.
    """
    if column not in SCORE_COLUMNS:
        raise PMITableError(f"unknown PMI table column {column!r}; choose one of {', '.join(SCORE_COLUMNS)}")
    tokenization = tokenization_of_symbols(list(symbols))
    if tokenization is None:
        raise PMITableError("the dictionary is not the fixed k-mer vocabulary (specials + all 4^k k-mers)")
    if not tokenization.overlapping:
        raise PMITableError(
            f"the dictionary holds {tokenization.describe()}: one PMI score per k-mer token is for overlapping "
            "k-mers (k >= 2), where a masked token is read off its neighbours; for these tokens use "
            "--mask-strategy pmi_span with a table of token n-grams (genemask-pmi count --tokens)"
        )
    k = tokenization.k
    tables = read_pmi_table(path, n=k)
    if k not in tables:
        present = _lengths_in(path)
        raise PMITableError(
            f"{os.fspath(path)}: no rows with n = {k} for this {k}-mer dictionary "
            f"(the table has n = {', '.join(map(str, present)) or 'none'})"
        )
    table = tables[k]
    ngrams = table["ngram"]
    if any(is_token_ngram(ngram) for ngram in ngrams):
        raise PMITableError(f"{os.fspath(path)}: its {k}-grams are token n-grams (count --tokens), not {k}-mers: "
                            f"score the genome's base n-grams (genemask-pmi count GENOME) for {k}-mer tokens")
    codes = codes_of_kmers(ngrams, k)  # rows were checked to be A/C/G/T of length k
    order = np.argsort(codes, kind="stable")
    dup = np.flatnonzero(codes[order][1:] == codes[order][:-1])
    if len(dup):
        raise PMITableError(f"{os.fspath(path)}: duplicate row for {k}-mer {ngrams[order[dup[0] + 1]]!r}")
    values = table[column].astype(np.float64)
    if column == "rank":
        values = -values
    missing = 1.0 - len(codes) / 4**k
    if missing > max_missing_fraction:
        raise PMITableError(
            f"{os.fspath(path)}: {missing:.0%} of the {4**k} {k}-mers have no score "
            f"(more than the allowed {max_missing_fraction:.0%})"
        )
    scores = np.full(len(symbols), -np.inf, dtype=np.float32)
    scores[NUM_SPECIALS + codes] = values
    return scores


def _lengths_in(path) -> list[int]:
    seen: set[int] = set()
    with open_text(path, encoding="ascii", errors="replace", decompress=False) as handle:
        handle.readline()
        for line in handle:
            fields = line.split("\t")
            if len(fields) > 1 and fields[1].strip().isdigit():
                seen.add(int(fields[1]))
    return sorted(seen)


def collocation_shares(max_n: int) -> dict[int, float]:
    """The share of the collocation vocabulary each length n = 2..``max_n`` gets: Levine et al.'s split,
    halving with n and the longest length taking what is left (max_n = 5: 1/2, 1/4, 1/8, 1/8)."""
    shares = {n: 0.5 ** (n - 1) for n in range(2, max_n)}
    shares[max_n] = 1.0 - sum(shares.values())
    return shares


@dataclass(frozen=True)
class Collocations:
    """``pmi_span``'s collocation vocabulary: token n-grams as codes over fairseq token ids.

    ``codes[n]`` holds the sorted int64 codes of the chosen n-grams, each ``sum_j id_j * base^(n-1-j)``
    with ``base`` the dictionary's size (``<mask>`` included), so an item's windows are looked up by
    one rolling code per length.
    """

    codes: dict[int, np.ndarray]
    base: int
    source: str

    @property
    def max_n(self) -> int:
        return max(self.codes)

    def __str__(self) -> str:
        sizes = ", ".join(f"{len(codes)} {n}-grams" for n, codes in sorted(self.codes.items()))
        return f"collocations from {self.source}: {sizes}"


def load_collocations(
    path: str | os.PathLike,
    symbols: list[str],
    column: str = "npmi",
    max_n: int = 5,
    size: int = 100_000,
) -> Collocations:
    """The collocation vocabulary of ``pmi_span`` for a fairseq ``Dictionary.symbols``: for each
    n = 2..``max_n``, the ``round(size * share(n))`` token n-grams of the TABLE ranked best by
    ``column`` (:func:`collocation_shares`), among those with ``npmi`` > 0 (seen more often than
    their best split predicts).

    The rows are token n-grams from ``genemask-pmi count --tokens``; for a single-nucleotide
    dictionary, base n-grams from a genome count are the same n-grams and are read too. Raises
    :class:`PMITableError` (one line) for an overlapping k-mer dictionary, base rows for other
    tokens, a symbol the dictionary lacks (a table of another corpus), or no usable row.
    """
    if column not in SCORE_COLUMNS:
        raise PMITableError(f"unknown PMI table column {column!r}; choose one of {', '.join(SCORE_COLUMNS)}")
    if max_n < 2 or size < 1:
        raise PMITableError(f"pmi_span needs a longest collocation of 2 or more tokens and a vocabulary of at least "
                            f"1 n-gram, got {max_n} and {size}")
    tokenization = tokenization_of_symbols(list(symbols))
    if tokenization is not None and tokenization.overlapping:
        raise PMITableError(
            f"pmi_span masks collocations of non-overlapping tokens; this dictionary holds {tokenization.describe()}, "
            "whose neighbours share k - 1 bases: use genemask (or kmer_span) for overlapping k-mers"
        )
    base = len(symbols)
    if base**max_n > np.iinfo(np.int64).max:
        raise PMITableError(f"--pmi-span-max-n {max_n}: codes of {max_n} tokens of a {base}-symbol dictionary do not "
                            "fit 63 bits; lower it")
    index = {symbol: i for i, symbol in enumerate(symbols) if i >= NUM_SPECIALS}
    single_bases = tokenization is not None and tokenization.k == 1
    shares = collocation_shares(max_n)
    codes: dict[int, np.ndarray] = {}
    for n, table in sorted(read_pmi_table(path).items()):
        if not 2 <= n <= max_n:
            continue
        split = [ngram.split(TOKEN_SEPARATOR) if is_token_ngram(ngram) else None for ngram in table["ngram"]]
        if any(symbols_of is None for symbols_of in split):
            if not single_bases:
                raise PMITableError(f"{os.fspath(path)}: its {n}-grams are bases, not tokens: pmi_span needs a table of "
                                    "token n-grams (genemask-pmi count --tokens DATA_DIR, then score)")
            split = [list(ngram) if parts is None else parts for ngram, parts in zip(table["ngram"], split, strict=True)]
        unknown = next((s for parts in split for s in parts if s not in index), None)
        if unknown is not None:
            raise PMITableError(f"{os.fspath(path)}: token {unknown!r} of its {n}-grams is not in the dictionary "
                                "(a table counted over another corpus' dictionary?)")
        values = -table["rank"] if column == "rank" else table[column]
        positive = np.flatnonzero(table["npmi"] > 0)
        best = positive[np.argsort(-values[positive], kind="stable")][: round(size * shares[n])]
        ids = np.array([[index[s] for s in split[i]] for i in best.tolist()], dtype=np.int64).reshape(-1, n)
        code = np.zeros(len(ids), dtype=np.int64)
        for j in range(n):
            code = code * base + ids[:, j]
        codes[n] = np.unique(code)
    if not any(len(c) for c in codes.values()):
        raise PMITableError(f"{os.fspath(path)}: no n-gram with n = 2..{max_n} and a positive npmi to use as a "
                            "collocation")
    return Collocations({n: codes.get(n, np.zeros(0, np.int64)) for n in range(2, max_n + 1)}, base, os.fspath(path))


PMI_TABLE_VIEWS = {"token_scores": load_token_scores, "collocations": load_collocations}
"""What a masking strategy reads from a TABLE, by the name its score lookup gives (``table_view``):
each is called as ``view(path, symbols, column=..., **options)``."""
