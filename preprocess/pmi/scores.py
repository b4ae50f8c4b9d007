"""PMI scores of n-grams from genome-wide counts (PMI-Masking, Levine et al. 2021; GeneMask's discount).

For an n-gram w with count f(w) and p(s) = f(s) / N_|s| (N_m = number of m-gram positions):

- ``naive_pmi(w) = ln p(w) - sum_j ln p(w_j)`` over its single bases;
- ``pmi(w) = min over splits s_1..s_m of w into m >= 2 contiguous segments of
  [ln p(w) - sum_i ln p(s_i)]`` (PMI_n), computed for all n-grams of one length at
  once by a prefix DP over the O(n^2) segments;
- ``npmi(w) = pmi(w) * ln f(w) / (ln f(w) + ln C)`` with C the minimum count, GeneMask's
  log-frequency discount (not the textbook NPMI); n-grams with f < C are not scored;
- ``rank``: 1 for the highest ``npmi`` within each n (ties by n-gram, A<C<G<T).

Variants change which PMI is discounted and ranked (the ``pmi`` column is always the
one ``npmi`` is computed from, so ``npmi = pmi * discount`` holds in every variant):

- ``levine`` (default): PMI_n as above.
- ``naive``: naive PMI.
- ``paper``: the published GeneMask 6-mer table. All lengths share one denominator
  D = 2 x (total single-base count); the ranked PMI is the min over segmentations into
  pieces of 1 or 2 bases only ("dp-true"). Its "true" PMI, the min over two-part splits
  that omits the split isolating the last base, is kept as ``two_part_pmi`` (for n = 2,
  where that leaves no split, the single split is used). ``paper`` needs only the 1-, 2-
  and n-gram counts; ``two_part_pmi`` is computed when all lengths 1..n-1 are present.

The same definitions score **token n-grams** (counts from ``count --tokens``): the segments of
the DP are then runs of whole tokens, p(s) = f(s) / N_|s| over token n-gram positions, and the
naive PMI's singles are tokens. ``paper`` is the GeneMask 6-mer table's and is refused for them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genemask_preprocess.errors import InputError
from genemask_preprocess.formats.ngram_counts_file import NgramCounts, token_ngram_names
from genemask_preprocess.kmers import kmers_of_codes

VARIANTS = ("levine", "naive", "paper")
DEFAULT_MIN_COUNT = 101
_DENSE_LOOKUP_MAX_N = 11


class PMIError(InputError):
    """Counts that cannot be scored (e.g. a missing length)."""


@dataclass
class PMIScores:
    """Scores of the n-grams of one length that have a score, sorted by code."""

    n: int
    codes: np.ndarray
    count: np.ndarray
    naive_pmi: np.ndarray
    pmi: np.ndarray
    npmi: np.ndarray
    rank: np.ndarray
    two_part_pmi: np.ndarray | None = None
    tokens: tuple[str, ...] | None = None
    """The token alphabet of token n-grams (see :class:`NgramCounts`); None for base n-grams."""

    @property
    def ngrams(self) -> list[str]:
        if self.tokens is not None:
            return token_ngram_names(self.codes, self.n, self.tokens)
        return kmers_of_codes(self.codes, self.n)

    def __len__(self) -> int:
        return len(self.codes)


def frequency_discount(count: np.ndarray, min_count: int) -> np.ndarray:
    """GeneMask's ``ln f / (ln f + ln C)``; 1/2 in the degenerate f = C = 1 case (its limit)."""
    ln_f = np.log(np.asarray(count, dtype=np.float64))
    denom = ln_f + np.log(min_count)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, ln_f / np.where(denom > 0, denom, 1.0), 0.5)


def score_pmi(
    counts: NgramCounts,
    variant: str = "levine",
    min_count: int = DEFAULT_MIN_COUNT,
    lengths: list[int] | None = None,
) -> dict[int, PMIScores]:
    """Score every n-gram of the given lengths (default: every length >= 2 in ``counts``).

    Raises :class:`PMIError` if a length needed to segment them is absent from ``counts``.
    """
    if variant not in VARIANTS:
        raise PMIError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    if not isinstance(min_count, (int, np.integer)) or min_count < 1:
        raise PMIError(f"--min-count must be a positive integer, got {min_count!r}")
    if variant == "paper" and counts.tokens is not None:
        raise PMIError("--variant paper reproduces the published GeneMask 6-mer table; token n-grams take levine or naive")
    available = counts.lengths
    if lengths is None:
        lengths = [n for n in available if n >= 2]
    if not lengths:
        raise PMIError("nothing to score: PMI needs n-grams of length 2 or more")
    for n in lengths:
        if n < 2:
            raise PMIError(f"cannot score {n}-grams: PMI needs n >= 2")
        if n not in counts.tables:
            raise PMIError(f"COUNTS has no {n}-grams (it has lengths {_ranges(available)})")
        needed = {"naive": [1], "paper": range(1, min(n, 3))}.get(variant, range(1, n))
        missing = [m for m in needed if m not in counts.tables]
        if missing:
            where = _first_row_text(counts, n)
            raise PMIError(
                f"COUNTS has {n}-grams{where} but no {missing[-1]}-grams to segment them "
                f"(lengths present: {_ranges(available)})"
            )
    scorer = _Scorer(counts, variant)
    return {n: scorer.score(n, min_count) for n in sorted(set(lengths))}


class _Scorer:
    """Log-probabilities of segments by (length, code), cached per length."""

    def __init__(self, counts: NgramCounts, variant: str):
        self.counts = counts
        self.variant = variant
        self._log_count: dict[int, np.ndarray] = {}
        if variant == "paper":
            shared = np.log(2.0 * counts.total(1))
            self.log_denominator = {m: shared for m in counts.lengths}
        else:
            self.log_denominator = {m: np.log(float(max(counts.total(m), 1))) for m in counts.lengths}

    def log_p(self, m: int, codes: np.ndarray) -> np.ndarray:
        if self.counts.alphabet_size**m <= 4**_DENSE_LOOKUP_MAX_N:
            if m not in self._log_count:
                with np.errstate(divide="ignore"):
                    self._log_count[m] = np.log(self.counts.dense(m).astype(np.float64))
            log_f = self._log_count[m][codes]
        else:
            with np.errstate(divide="ignore"):
                log_f = np.log(self.counts.lookup(m, codes).astype(np.float64))
        return log_f - self.log_denominator[m]

    def score(self, n: int, min_count: int) -> PMIScores:
        codes, count = self.counts.tables[n]
        keep = count >= min_count
        codes, count = codes[keep], count[keep]

        base = self.counts.alphabet_size

        def segment(i: int, j: int) -> np.ndarray:
            if self.counts.tokens is None:
                sub = (codes >> (2 * (n - j))) & ((1 << (2 * (j - i))) - 1)
            else:
                sub = (codes // base ** (n - j)) % base ** (j - i)
            return self.log_p(j - i, sub)

        log_pw = self.log_p(n, codes)
        singles = [segment(i, i + 1) for i in range(n)]
        naive = log_pw - np.sum(singles, axis=0) if n else log_pw
        two_part = None
        if self.variant == "naive":
            pmi = naive
        elif self.variant == "paper":
            pmi = log_pw - best_segmentation(n, segment, max_piece=2)
            if all(m in self.counts.tables for m in range(1, n)):
                splits = range(1, n - 1) if n > 2 else range(1, 2)
                two_part = np.min([log_pw - segment(0, i) - segment(i, n) for i in splits], axis=0)
        else:
            pmi = log_pw - best_segmentation(n, segment)
        npmi = pmi * frequency_discount(count, min_count)
        # A segment never seen gives +inf (or nan): such n-grams have no score.
        scored = np.isfinite(npmi) & np.isfinite(naive)
        if two_part is not None:
            scored &= np.isfinite(two_part)
            two_part = two_part[scored]
        codes, count, naive, pmi, npmi = codes[scored], count[scored], naive[scored], pmi[scored], npmi[scored]
        order = np.lexsort((codes, -npmi))
        rank = np.empty(len(codes), dtype=np.int64)
        rank[order] = np.arange(1, len(codes) + 1)
        return PMIScores(n, codes, count, naive, pmi, npmi, rank, two_part, self.counts.tokens)


def best_segmentation(n: int, segment, max_piece: int | None = None) -> np.ndarray:
    """Max over splits of [0, n) into >= 2 pieces of the summed ``segment(i, j)`` log-probs.

    ``best[j]`` is the best sum over splits of the prefix [0, j) into >= 1 pieces; the
    whole-word piece (0, n) is excluded so at least two pieces are used.
    """
    max_piece = max_piece or n
    best: list[np.ndarray | float] = [0.0]
    for j in range(1, n + 1):
        options = [
            best[i] + segment(i, j)
            for i in range(max(0, j - max_piece), j)
            if not (i == 0 and j == n)
        ]
        best.append(np.max(options, axis=0))
    return best[n]


def _ranges(lengths: list[int]) -> str:
    return ", ".join(str(n) for n in lengths) or "none"


def _first_row_text(counts: NgramCounts, n: int) -> str:
    row = counts.first_rows.get(n)
    codes = counts.codes(n)
    example = counts.names(n, codes[:1])[0] if len(codes) else ""
    if row is not None:
        return f" (first at row {row})"
    return f" (e.g. {example})" if example else ""
