"""Are the top-PMI k-mers of a PMI table more often motif matches than k-mers of the same frequency?

The top-N k-mers by ``npmi`` are compared with the bottom-N and with a random set
matched on count (drawn among the nearest in log count, without replacement) by the
fraction that match any motif, with Fisher's exact test and the odds ratio.
A calibrated alternative to the single random set is a permutation null: the top
labels shuffled within log-count strata (:func:`count_stratified_permutations`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from genemask_preprocess.formats.pmi_table import read_pmi_table
from genemask_preprocess.kmers import check_k, codes_of_kmers, kmers_of_codes
from genemask_preprocess.motifs import MotifAnalysisError
from genemask_preprocess.motifs.pwm_scoring import DEFAULT_THRESHOLD, MotifScores, is_match

COUNT_STRATA = 50
"""Log-count strata of the permutation null (about 80 k-mers each for 4^6)."""
MATCH_NEIGHBOURS = 10
"""A count-matched k-mer is drawn among this many nearest (in log count) free candidates."""
SWEEP_THRESHOLDS = (0.80, 0.85, 0.90, 0.95, 1.0)


@dataclass(frozen=True)
class KmerTable:
    """The scored k-mers of one n in a PMI table, sorted by npmi (best first, ties by k-mer)."""

    k: int
    codes: np.ndarray
    counts: np.ndarray
    npmi: np.ndarray

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def kmers(self) -> list[str]:
        return kmers_of_codes(self.codes, self.k)


def read_kmer_table(path: str | os.PathLike, k: int) -> KmerTable:
    """The rows with n == k of a PMI table, read by :mod:`genemask_preprocess.formats.pmi_table`.

    Raises :class:`MotifAnalysisError` for an unsupported k or no rows for k, and the
    format's :class:`~genemask_preprocess.formats.pmi_table.PMITableError` for a missing or
    malformed file (both are :class:`~genemask_preprocess.errors.InputError`).
    """
    try:
        check_k(k)
    except ValueError as exc:
        raise MotifAnalysisError(str(exc)) from None
    tables = read_pmi_table(path, n=k)  # a PMITableError is an InputError: the CLI shows it as is
    if k not in tables:
        present = ", ".join(str(n) for n in sorted(read_pmi_table(path))) or "none"
        raise MotifAnalysisError(
            f"{os.fspath(path)}: no rows with n = {k} (the table has n = {present}); "
            f"compute them with genemask-pmi or pass --k"
        )
    rows = tables[k]
    codes = codes_of_kmers(rows["ngram"], k)
    if len(np.unique(codes)) != len(codes):
        raise MotifAnalysisError(f"{os.fspath(path)}: duplicate {k}-mers among the n = {k} rows")
    order = np.lexsort((codes, -rows["npmi"]))
    return KmerTable(k=k, codes=codes[order], counts=rows["count"][order], npmi=rows["npmi"][order])


def frequency_matched_sample(
    target_counts: np.ndarray,
    candidate_counts: np.ndarray,
    seed: int,
    neighbours: int = MATCH_NEIGHBOURS,
) -> np.ndarray:
    """Indices into ``candidate_counts``, one per target, matched on log count, without replacement.

    Each target (visited in a seeded random order) takes one of the ``neighbours``
    free candidates nearest to it in log count, at random; ``neighbours=1`` is
    plain nearest-neighbour matching. Drawing among a few neighbours, rather than
    always the nearest, is what makes repeated draws differ, so they form a null.
    """
    if len(target_counts) > len(candidate_counts):
        raise MotifAnalysisError(
            "not enough k-mers outside the top set to draw a frequency-matched set"
        )
    rng = np.random.default_rng(seed)
    cand = np.log1p(np.asarray(candidate_counts, dtype=np.float64))
    cand = cand + rng.uniform(0, 1e-9, size=len(cand))  # random tie-breaking among equal counts
    free = np.ones(len(cand), dtype=bool)
    chosen = np.empty(len(target_counts), dtype=np.int64)
    targets = np.log1p(np.asarray(target_counts, dtype=np.float64))
    for i in rng.permutation(len(targets)):
        distance = np.where(free, np.abs(cand - targets[i]), np.inf)
        m = min(neighbours, int(free.sum()))
        nearest = np.argpartition(distance, m - 1)[:m] if m < len(cand) else np.arange(len(cand))
        nearest = nearest[np.isfinite(distance[nearest])]
        chosen[i] = int(rng.choice(nearest))
        free[chosen[i]] = False
    return chosen


def count_stratum_of_rows(counts: np.ndarray, bins: int = COUNT_STRATA) -> np.ndarray:
    """Stratum (0..bins-1) of each row: equal-size bins of log count (ties share a bin)."""
    log_count = np.log1p(np.asarray(counts, dtype=np.float64))
    edges = np.quantile(log_count, np.linspace(0, 1, bins + 1)[1:-1])
    return np.searchsorted(edges, log_count, side="right")


def count_stratified_permutations(
    table: KmerTable, top_n: int, draws: int, seed: int, bins: int = COUNT_STRATA
) -> np.ndarray:
    """(draws, N) row indices: the top set's labels permuted within log-count strata.

    Under the null that the npmi rank carries nothing beyond frequency, the top-N
    are a random subset of each count stratum: each draw takes, in every stratum,
    as many random rows (top ones included) as the top set has there. Seeded by
    ``seed + 1``, so it is independent of the single random set of :func:`select_groups`.
    """
    strata = count_stratum_of_rows(table.counts, bins)
    top_per_stratum = np.bincount(strata[:top_n], minlength=bins)
    members = [np.flatnonzero(strata == b) for b in range(bins)]
    rng = np.random.default_rng(seed + 1)
    out = np.empty((draws, top_n), dtype=np.int64)
    for d in range(draws):
        picks = [
            rng.choice(members[b], size=t, replace=False)
            for b, t in enumerate(top_per_stratum)
            if t
        ]
        out[d] = np.concatenate(picks) if picks else np.zeros(0, dtype=np.int64)
    return out


def select_groups(table: KmerTable, top_n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Row indices (into ``table``) of the top-N, bottom-N and count-matched random k-mers."""
    if top_n < 1:
        raise MotifAnalysisError(f"--top must be at least 1, got {top_n}")
    if 2 * top_n > len(table):
        raise MotifAnalysisError(
            f"--top {top_n} is too large: the table has only {len(table)} scored {table.k}-mers (need 2N)"
        )
    top = np.arange(top_n)
    rest = np.arange(top_n, len(table))
    random = rest[frequency_matched_sample(table.counts[top], table.counts[rest], seed)]
    return {
        "top": top,
        "bottom": np.arange(len(table) - top_n, len(table)),
        "random": np.sort(random),
    }


@dataclass(frozen=True)
class FisherResult:
    table: tuple[tuple[int, int], tuple[int, int]]
    odds_ratio: float
    ci_low: float
    ci_high: float
    pvalue: float


def fisher_test(hits_a: int, n_a: int, hits_b: int, n_b: int) -> FisherResult:
    """Two-sided Fisher exact test of ``hits_a/n_a`` vs ``hits_b/n_b``, sample odds ratio with 95% CI."""
    from scipy.stats import fisher_exact
    from scipy.stats.contingency import odds_ratio

    table = ((int(hits_a), int(n_a - hits_a)), (int(hits_b), int(n_b - hits_b)))
    result = fisher_exact(table, alternative="two-sided")
    try:
        with np.errstate(divide="ignore", invalid="ignore"):  # a zero cell gives an open interval
            low, high = odds_ratio(table, kind="sample").confidence_interval(0.95)
    except (ValueError, ZeroDivisionError):
        low, high = math.nan, math.nan
    return FisherResult(
        table, float(result.statistic), float(low), float(high), float(result.pvalue)
    )


def decile_match_fractions(matched: np.ndarray, bins: int = 10) -> np.ndarray:
    """Fraction matched in each of ``bins`` equal rank bins of a best-first array of bools."""
    return np.array(
        [
            part.mean() if len(part) else math.nan
            for part in np.array_split(np.asarray(matched, bool), bins)
        ]
    )


@dataclass(frozen=True)
class NullComparison:
    """The top set's statistic against the same statistic of many count-matched random sets."""

    observed: float
    null: np.ndarray

    @property
    def null_mean(self) -> float:
        return float(self.null.mean())

    @property
    def null_interval(self) -> tuple[float, float]:
        low, high = np.quantile(self.null, [0.025, 0.975])
        return float(low), float(high)

    @property
    def pvalue(self) -> float:
        """Two-sided empirical p-value, (1 + as extreme) / (1 + draws) on the nearer tail, doubled."""
        draws = len(self.null)
        upper = (1 + np.sum(self.null >= self.observed - 1e-12)) / (1 + draws)
        lower = (1 + np.sum(self.null <= self.observed + 1e-12)) / (1 + draws)
        return float(min(1.0, 2 * min(upper, lower)))


@dataclass(frozen=True)
class MotifHit:
    matrix_id: str
    name: str
    top_matches: int
    background_fraction: float
    """Fraction of all scored k-mers of the table that match this motif."""


@dataclass(frozen=True)
class EnrichmentResult:
    """Everything the report needs."""

    table: KmerTable
    groups: dict[str, np.ndarray]
    threshold: float
    matched: np.ndarray
    """(rows,) bool: row matches any motif at ``threshold``."""
    match_counts: np.ndarray
    """(rows,) number of motifs matched at ``threshold``."""
    best_motif: np.ndarray
    best_score: np.ndarray
    tests: dict[str, FisherResult]
    sweep: dict[float, dict[str, object]]
    deciles: dict[float, np.ndarray]
    top_motifs: list[MotifHit]
    null_sets: np.ndarray
    """(draws, N) row indices of count-stratified permutations of the top set."""
    null_match: NullComparison | None
    """The top set's match fraction against those of the null sets (None without draws)."""


def analyse_enrichment(
    table: KmerTable,
    scores: MotifScores,
    top_n: int,
    threshold: float = DEFAULT_THRESHOLD,
    seed: int = 0,
    sweep_thresholds: Sequence[float] = SWEEP_THRESHOLDS,
    n_top_motifs: int = 15,
    null_draws: int = 0,
) -> EnrichmentResult:
    """Compare motif matching of top-N vs bottom-N vs count-matched random k-mers of a PMI table.

    With ``null_draws``, the top set's match fraction is also compared with that of
    ``null_draws`` count-stratified permutations of the top labels (a calibrated
    empirical p-value that does not hang on one random draw).
    """
    if scores.k != table.k:
        raise ValueError(f"scores are for k={scores.k}, table for k={table.k}")
    groups = select_groups(table, top_n, seed)
    row_scores = scores.scores[:, table.codes]  # (motifs, rows)
    best_motif = row_scores.argmax(axis=0)
    best_score = row_scores[best_motif, np.arange(len(table))].astype(np.float64)

    def compare(matched: np.ndarray) -> tuple[dict[str, FisherResult], dict[str, float]]:
        fractions = {name: float(matched[idx].mean()) for name, idx in groups.items()}
        top_hits = int(matched[groups["top"]].sum())
        tests = {
            f"top vs {other}": fisher_test(
                top_hits, top_n, int(matched[groups[other]].sum()), len(groups[other])
            )
            for other in ("bottom", "random")
        }
        return tests, fractions

    thresholds = sorted({*sweep_thresholds, threshold})
    sweep, deciles = {}, {}
    for t in thresholds:
        matched_t = is_match(best_score, t)
        tests_t, fractions_t = compare(matched_t)
        sweep[t] = {"fractions": fractions_t, "all": float(matched_t.mean()), "tests": tests_t}
        deciles[t] = decile_match_fractions(matched_t)
    matched = is_match(best_score, threshold)
    per_motif = is_match(row_scores, threshold)
    top_counts = per_motif[:, groups["top"]].sum(axis=1)
    background = per_motif.mean(axis=1)
    ranked = sorted(
        (i for i in range(len(scores.matrices)) if top_counts[i] > 0),
        key=lambda i: (-top_counts[i], background[i], scores.matrices[i].matrix_id),
    )[:n_top_motifs]
    top_motifs = [
        MotifHit(
            scores.matrices[i].matrix_id,
            scores.matrices[i].name,
            int(top_counts[i]),
            float(background[i]),
        )
        for i in ranked
    ]
    null_sets = count_stratified_permutations(table, top_n, null_draws, seed)
    null_match = None
    if null_draws:
        null_match = NullComparison(
            float(matched[groups["top"]].mean()), matched[null_sets].mean(axis=1)
        )
    return EnrichmentResult(
        table=table,
        groups=groups,
        threshold=threshold,
        matched=matched,
        match_counts=per_motif.sum(axis=0),
        best_motif=best_motif,
        best_score=best_score,
        tests=sweep[threshold]["tests"],
        sweep=sweep,
        deciles=deciles,
        top_motifs=top_motifs,
        null_sets=null_sets,
        null_match=null_match,
    )
