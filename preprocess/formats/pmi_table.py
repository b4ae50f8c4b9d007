"""PMI TABLE files: writing them, reading them, and the per-token score loader used by masking.

A TABLE is a TSV with the header ``ngram<TAB>n<TAB>count<TAB>naive_pmi<TAB>pmi<TAB>npmi<TAB>rank``,
one row per scored n-gram, possibly several n in one file (rows grouped by n, best rank
first). Scores use the natural log; ``rank`` is 1 for the highest ``npmi`` within each n.

The fairseq training path imports this module (through :func:`load_token_scores`), so it
and everything it imports is numpy-only: no genome reader, no pysam, no plotting.
"""

from __future__ import annotations

import math
import os
import re
from typing import TYPE_CHECKING

import numpy as np

from genemask_preprocess.atomic_output import atomic_file
from genemask_preprocess.errors import InputError
from genemask_preprocess.formats.input_file import open_text
from genemask_preprocess.kmers import NUM_SPECIALS, codes_of_kmers, kmer_size_of_symbols

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
                    if len(ngram) != length or not set(ngram) <= _ACGT:
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


def _parse_row(path, row_no, fields, index, columns, length: int) -> None:
    ngram = fields[index["ngram"]].strip()
    if not ngram or not set(ngram) <= _ACGT:
        raise PMITableError(f"{path}: row {row_no}: {ngram[:40]!r} is not an A/C/G/T n-gram")
    if len(ngram) != length:
        raise PMITableError(f"{path}: row {row_no}: n-gram {ngram!r} has length {len(ngram)}, but n is {length}")
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
    k = kmer_size_of_symbols(list(symbols))
    if k is None:
        raise PMITableError("the dictionary is not the fixed k-mer vocabulary (specials + all 4^k k-mers)")
    tables = read_pmi_table(path, n=k)
    if k not in tables:
        present = _lengths_in(path)
        raise PMITableError(
            f"{os.fspath(path)}: no rows with n = {k} for this {k}-mer dictionary "
            f"(the table has n = {', '.join(map(str, present)) or 'none'})"
        )
    table = tables[k]
    ngrams = table["ngram"]
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
