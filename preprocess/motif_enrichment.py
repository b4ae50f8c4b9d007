"""Do top-PMI k-mers match known transcription-factor motifs? The pure logic of ``genemask-motifs``.

Known motifs are JASPAR CORE position weight matrices, read offline from the
SQLite databases bundled in the ``pyjaspar`` package (optional extra
``genemask-plugin[motifs]``) and turned into log-odds matrices with Biopython.

**Matching.** A k-mer matches a motif when its best PWM *relative score*
``(score - min) / (max - min)`` over all placements and both strands is at least
a threshold (0.85 by default, the usual cut-off for TF binding-site scans). The
reverse strand is Biopython's ``pssm.reverse_complement()``. Most JASPAR motifs
are longer than a k-mer, so the k-mer is scored as a candidate *fragment* of a
binding site, in one of two ways (``mode``):

- ``embedded`` (default): the k-mer is placed at every offset inside the motif
  and the rest of the site is random background sequence; the score is the
  expected relative score of that full-length site, i.e. the k-mer's window score
  plus the background expectation of the other columns, relative to the *full*
  motif's min and max. A k-mer matches when it carries most of what the motif
  specifies; a 6-mer covering one half of a 20-bp dimer motif does not.
- ``window``: the k-mer against every k-long window of the PSSM, relative to
  *that window's* min and max, skipping windows whose mean information content
  is below ``min_window_ic`` bits per column. It is the most lenient reading: with
  the ~1000 JASPAR CORE vertebrate motifs every 6-mer matches some motif at 0.85,
  so "matches any motif" cannot separate k-mer sets (see docs/motifs.md).
- When k > L, both modes slide the motif over the k-mer exactly as Biopython's
  ``PositionSpecificScoringMatrix.calculate`` does, relative to the motif's range.

The scores are computed for all 4^k k-mers at once: a one-hot (4^k, k, 4) tensor
against the stack of PSSM windows (one einsum per motif and strand).

**Comparison.** The top-N k-mers by ``npmi`` are compared with the bottom-N and
with a random set matched on count (nearest log-count, without replacement) by
the fraction that match any motif, with Fisher's exact test and the odds ratio.
Few-shot sequences (positives vs background) are compared by the per-sequence
density of top-N k-mer occurrences (Mann-Whitney U) and presence (Fisher).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from preprocess.kmers import (
    BASES,
    acgt_runs,
    check_k,
    code_of_kmer,
    encode_bases,
    kmer_codes,
    kmer_of_code,
    kmers_to_dna,
)
from preprocess.pmi_table import PMITableError, read_pmi_table

MOTIFS_EXTRA = "pip install 'genemask-plugin[motifs]'"
DEFAULT_THRESHOLD = 0.85
DEFAULT_MIN_WINDOW_IC = 1.0
COUNT_STRATA = 50
"""Log-count strata of the permutation null (about 80 k-mers each for 4^6)."""
MATCH_NEIGHBOURS = 10
"""A count-matched k-mer is drawn among this many nearest (in log count) free candidates."""
FRAGMENT_SCORES = ("embedded", "window")
DEFAULT_FRAGMENT_SCORE = "embedded"
SWEEP_THRESHOLDS = (0.80, 0.85, 0.90, 0.95, 1.0)
_RANGE_EPS = 1e-9


class MotifAnalysisError(Exception):
    """A problem with the user's input or environment, with a one-line message."""


# --------------------------------------------------------------------------- motifs


@dataclass(frozen=True)
class ScoringMatrix:
    """One motif as log-odds matrices, forward and reverse strand, shape (L, 4) in ACGT order."""

    matrix_id: str
    name: str
    forward: np.ndarray
    reverse: np.ndarray
    column_ic: np.ndarray
    """Information content (bits) of each forward column, against the motif's background."""
    background: np.ndarray
    """Base frequencies (ACGT) the log-odds are taken against."""

    @property
    def length(self) -> int:
        return len(self.forward)


def _require_motif_packages():
    """Import pyjaspar and Bio.motifs, or raise a one-line error naming the extra."""
    try:
        import pyjaspar
        from Bio import motifs  # noqa: F401
    except ImportError as exc:
        raise MotifAnalysisError(
            f"JASPAR motifs need the optional packages pyjaspar and biopython ({exc.name} is missing): {MOTIFS_EXTRA}"
        ) from None
    return pyjaspar


def jaspar_releases() -> list[str]:
    """The JASPAR releases bundled in the installed pyjaspar, oldest first."""
    pyjaspar = _require_motif_packages()
    return sorted(pyjaspar.jaspar_releases)


def load_jaspar_motifs(
    release: str | None = None, collection: str = "CORE", tax_group: str = "vertebrates"
):
    """Latest version of every JASPAR motif of a collection and taxonomic group, offline.

    ``release`` defaults to the newest one bundled in pyjaspar. Returns
    ``(release, [Bio.motifs.jaspar.Motif])`` with JASPAR's standard pseudocounts set.
    """
    pyjaspar = _require_motif_packages()
    from Bio.motifs import jaspar

    release = release or pyjaspar.JASPAR_LATEST_RELEASE
    if release not in pyjaspar.jaspar_releases:
        raise MotifAnalysisError(
            f"JASPAR release {release!r} is not bundled in pyjaspar {pyjaspar.__version__}; "
            f"choose one of {', '.join(jaspar_releases())}"
        )
    database = pyjaspar.jaspardb(release=release)
    found = database.fetch_motifs(collection=collection, tax_group=[tax_group], all_versions=False)
    if not found:
        raise MotifAnalysisError(
            f"{release} has no {collection} motifs for tax group {tax_group!r}"
        )
    found = sorted(found, key=lambda m: m.matrix_id)
    for motif in found:
        # JASPAR stores raw counts; sqrt(N)-scaled pseudocounts (JASPAR's own rule) keep the log-odds finite.
        motif.pseudocounts = jaspar.calculate_pseudocounts(motif)
    return release, found


def scoring_matrix(motif) -> ScoringMatrix:
    """A Biopython motif (pseudocounts and background set) as forward/reverse log-odds matrices."""
    pssm = motif.pssm
    reverse = pssm.reverse_complement()
    forward_m = np.array([pssm[base] for base in BASES], dtype=np.float64).T
    reverse_m = np.array([reverse[base] for base in BASES], dtype=np.float64).T
    pwm = np.array([motif.pwm[base] for base in BASES], dtype=np.float64).T
    background = np.array([motif.background[base] for base in BASES], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(pwm > 0, pwm * np.log2(pwm / background), 0.0)
    name = getattr(motif, "name", None) or motif.consensus
    return ScoringMatrix(
        matrix_id=str(getattr(motif, "matrix_id", None) or name),
        name=str(name),
        forward=forward_m,
        reverse=reverse_m,
        column_ic=terms.sum(axis=1),
        background=background,
    )


# --------------------------------------------------------------------------- matching


def kmer_onehot(k: int) -> np.ndarray:
    """One-hot encoding (4^k, k, 4) float64 of all k-mers in code order."""
    check_k(k)
    codes = np.arange(4**k, dtype=np.int64)
    shifts = 2 * np.arange(k - 1, -1, -1, dtype=np.int64)
    bases = (codes[:, None] >> shifts) & 3
    return np.eye(4, dtype=np.float64)[bases]


def _best_strand_scores(
    onehot: np.ndarray,
    pssm: np.ndarray,
    column_ic: np.ndarray,
    column_mean: np.ndarray,
    mode: str,
    min_window_ic: float,
):
    """Best relative score and its placement offset for every k-mer on one strand (``-inf`` if no window qualifies)."""
    n, k, _ = onehot.shape
    length = len(pssm)
    low_full = pssm.min(axis=1).sum()
    span_full = pssm.max(axis=1).sum() - low_full
    if k <= length:
        starts = np.arange(length - k + 1)
        columns = starts[:, None] + np.arange(k)
        windows = pssm[columns]  # (W, k, 4)
        if mode == "window":
            low = windows.min(axis=2).sum(axis=1)
            span = windows.max(axis=2).sum(axis=1) - low
            keep = (column_ic[columns].mean(axis=1) >= min_window_ic) & (span > _RANGE_EPS)
            flanks = np.zeros(len(starts))
        else:  # embedded: the columns outside the k-mer score their expectation under the background
            low = np.full(len(starts), low_full)
            span = np.full(len(starts), span_full)
            keep = np.full(len(starts), span_full > _RANGE_EPS)
            flanks = column_mean.sum() - column_mean[columns].sum(axis=1)
        if not keep.any():
            return np.full(n, -np.inf), np.zeros(n, dtype=np.int64)
        starts, windows, low, span, flanks = (
            starts[keep],
            windows[keep],
            low[keep],
            span[keep],
            flanks[keep],
        )
        relative = (np.einsum("nka,wka->nw", onehot, windows) + flanks - low) / span
    else:
        # The whole motif slides over the k-mer (Biopython's pssm.calculate), relative to its range.
        if span_full <= _RANGE_EPS or (mode == "window" and column_ic.mean() < min_window_ic):
            return np.full(n, -np.inf), np.zeros(n, dtype=np.int64)
        starts = np.arange(k - length + 1)
        sub = onehot[:, starts[:, None] + np.arange(length)]  # (n, W, L, 4)
        relative = (np.einsum("nwla,la->nw", sub, pssm) - low_full) / span_full
    best = relative.argmax(axis=1)
    return relative[np.arange(n), best], starts[best]


def best_relative_scores(
    matrix: ScoringMatrix,
    k: int,
    mode: str = DEFAULT_FRAGMENT_SCORE,
    min_window_ic: float = DEFAULT_MIN_WINDOW_IC,
    onehot: np.ndarray | None = None,
):
    """Best relative score of every k-mer (code order) against one motif, over placements and both strands.

    ``mode`` says how a k-mer shorter than the motif is scored (see the module
    docstring): ``"embedded"`` or ``"window"``. Returns ``(score, strand, offset)``:
    float64 scores (``-inf`` where no placement qualifies), strand ``+1``/``-1``
    and the 0-based placement (start in the strand's PSSM when k <= L, start in
    the k-mer when k > L).
    """
    if mode not in FRAGMENT_SCORES:
        raise ValueError(f"mode must be one of {FRAGMENT_SCORES}, got {mode!r}")
    onehot = kmer_onehot(k) if onehot is None else onehot
    fwd, fwd_at = _best_strand_scores(
        onehot,
        matrix.forward,
        matrix.column_ic,
        _column_means(matrix.forward, matrix.background),
        mode,
        min_window_ic,
    )
    # The reverse strand's background is the complement: ACGT frequencies read backwards.
    rev, rev_at = _best_strand_scores(
        onehot,
        matrix.reverse,
        matrix.column_ic[::-1],
        _column_means(matrix.reverse, matrix.background[::-1]),
        mode,
        min_window_ic,
    )
    use_reverse = rev > fwd
    return (
        np.where(use_reverse, rev, fwd),
        np.where(use_reverse, -1, 1).astype(np.int8),
        np.where(use_reverse, rev_at, fwd_at),
    )


def _column_means(pssm: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Expected log-odds of each column for a base drawn from the background."""
    return pssm @ background


@dataclass(frozen=True)
class MotifScores:
    """Best relative score of each k-mer against each motif."""

    k: int
    mode: str
    matrices: list[ScoringMatrix]
    scores: np.ndarray
    """(motifs, 4^k) float32; -inf where the motif has no qualifying window."""
    strands: np.ndarray
    offsets: np.ndarray

    def matches(self, threshold: float) -> np.ndarray:
        """(motifs, 4^k) bool: which k-mer matches which motif."""
        return self.scores >= threshold - 1e-9

    def best_score(self) -> np.ndarray:
        """Best score of each k-mer over all motifs, (4^k,)."""
        return self.scores.max(axis=0)


def score_kmers_against_motifs(
    matrices: Sequence[ScoringMatrix],
    k: int,
    mode: str = DEFAULT_FRAGMENT_SCORE,
    min_window_ic: float = DEFAULT_MIN_WINDOW_IC,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> MotifScores:
    """Score all 4^k k-mers against every motif (see :func:`best_relative_scores`)."""
    check_k(k)
    onehot = kmer_onehot(k)
    scores = np.empty((len(matrices), 4**k), dtype=np.float32)
    strands = np.empty((len(matrices), 4**k), dtype=np.int8)
    offsets = np.empty((len(matrices), 4**k), dtype=np.int16)
    items = enumerate(matrices)
    for i, matrix in progress(items) if progress else items:
        scores[i], strands[i], offsets[i] = best_relative_scores(
            matrix, k, mode, min_window_ic, onehot
        )
    return MotifScores(
        k=k, mode=mode, matrices=list(matrices), scores=scores, strands=strands, offsets=offsets
    )


# --------------------------------------------------------------------------- PMI table


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
        return [kmer_of_code(code, self.k) for code in self.codes]


def read_kmer_table(path: str | os.PathLike, k: int) -> KmerTable:
    """The rows with n == k of a PMI table (read with :func:`preprocess.pmi_table.read_pmi_table`).

    Raises :class:`MotifAnalysisError` if the file is missing or malformed, or has no rows for k.
    """
    check_k(k)
    try:
        tables = read_pmi_table(path, n=k)
        if k not in tables:
            present = ", ".join(str(n) for n in sorted(read_pmi_table(path))) or "none"
            raise MotifAnalysisError(
                f"{os.fspath(path)}: no rows with n = {k} (the table has n = {present}); "
                f"compute them with genemask-pmi or pass --k"
            )
    except PMITableError as exc:
        raise MotifAnalysisError(str(exc)) from None
    rows = tables[k]
    codes = np.array([code_of_kmer(ngram) for ngram in rows["ngram"]], dtype=np.int64)
    if len(np.unique(codes)) != len(codes):
        raise MotifAnalysisError(f"{os.fspath(path)}: duplicate {k}-mers among the n = {k} rows")
    order = np.lexsort((codes, -rows["npmi"]))
    return KmerTable(k=k, codes=codes[order], counts=rows["count"][order], npmi=rows["npmi"][order])


# --------------------------------------------------------------------------- groups and statistics


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
        matched_t = best_score >= t - 1e-9
        tests_t, fractions_t = compare(matched_t)
        sweep[t] = {"fractions": fractions_t, "all": float(matched_t.mean()), "tests": tests_t}
        deciles[t] = decile_match_fractions(matched_t)
    matched = best_score >= threshold - 1e-9
    per_motif = row_scores >= threshold - 1e-9
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


# --------------------------------------------------------------------------- sequences


def read_fewshot_sequences(path: str | os.PathLike, label: str | None = None) -> list[str]:
    """DNA of a few-shot TSV (header ``sequence<TAB>label``; fields may be double-quoted).

    ``sequence`` may be DNABERT-style space-separated overlapping k-mers or raw DNA.
    With ``label``, only rows of that label are kept.
    """
    sequences = []
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle, delimiter="\t")
            fields = reader.fieldnames or []
            if "sequence" not in fields or (label is not None and "label" not in fields):
                raise MotifAnalysisError(
                    f"{path}: expected a few-shot TSV with header 'sequence<TAB>label', got {fields}"
                )
            for line, row in enumerate(reader, start=2):
                if label is not None and (row["label"] or "").strip() != label:
                    continue
                text = (row["sequence"] or "").strip()
                try:
                    sequences.append(kmers_to_dna(text) if " " in text else text.upper())
                except ValueError as exc:
                    raise MotifAnalysisError(f"{path}, line {line}: {exc}") from None
    except OSError as exc:
        raise MotifAnalysisError(f"cannot read sequences {path}: {exc.strerror or exc}") from None
    if not sequences:
        which = f" with label {label!r}" if label is not None else ""
        raise MotifAnalysisError(f"{path}: no sequences{which}")
    return sequences


def sequence_kmer_codes(sequence: str, k: int) -> np.ndarray:
    """Codes of the overlapping k-mers of a DNA string, split at non-ACGT letters."""
    codes = encode_bases(sequence)
    runs = acgt_runs(codes, min_length=k)
    if not len(runs):
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([kmer_codes(codes[a:b], k) for a, b in runs])


class SequenceKmers:
    """The k-mer occurrences of a set of sequences as a sparse (sequences, 4^k) count matrix."""

    def __init__(self, sequences: Sequence[str], k: int):
        from scipy.sparse import csr_matrix

        per_sequence = [sequence_kmer_codes(sequence, k) for sequence in sequences]
        lengths = np.array([len(codes) for codes in per_sequence], dtype=np.int64)
        if not lengths.any():
            raise MotifAnalysisError(f"no sequence of at least k={k} A/C/G/T bases to compare")
        rows = np.repeat(np.arange(len(per_sequence)), lengths)
        codes = np.concatenate(per_sequence)
        self.counts = csr_matrix(
            (np.ones(len(codes), dtype=np.float64), (rows, codes)), shape=(len(per_sequence), 4**k)
        )
        self.counts.sum_duplicates()
        self.lengths = lengths

    def density(self, member: np.ndarray) -> np.ndarray:
        """Per sequence (with at least one k-mer), the fraction of k-mer positions in the set."""
        keep = self.lengths > 0
        hits = self.counts @ np.asarray(member, dtype=np.float64)
        return hits[keep] / self.lengths[keep]


def kmer_set_density(sequences: Sequence[str], k: int, member: np.ndarray) -> np.ndarray:
    """Per sequence, the fraction of its k-mer positions whose k-mer is in the set (``member``: (4^k,) bool).

    Sequences with no k-mer get NaN.
    """
    out = np.full(len(sequences), np.nan)
    matrix = SequenceKmers(sequences, k)
    out[matrix.lengths > 0] = matrix.density(member)
    return out


@dataclass(frozen=True)
class SequenceComparison:
    group: str
    positive_density: float
    background_density: float
    mannwhitney_pvalue: float
    presence: FisherResult
    """Fisher test on sequences containing at least one k-mer of the group."""


def _membership(table: KmerTable, rows: np.ndarray) -> np.ndarray:
    member = np.zeros(4**table.k, dtype=bool)
    member[table.codes[rows]] = True
    return member


def compare_sequence_sets(
    positives: Sequence[str],
    background: Sequence[str],
    table: KmerTable,
    groups: dict[str, np.ndarray],
    null_sets: np.ndarray | None = None,
) -> tuple[list[SequenceComparison], NullComparison | None]:
    """For each k-mer group, is it denser in the positive sequences than in the background ones?

    With ``null_sets`` ((draws, N) row indices, e.g. :func:`count_stratified_permutations`),
    also compares the top set's density ratio (positive / background) with theirs: is
    the enrichment more than k-mers of the same frequency show?
    """
    from scipy.stats import mannwhitneyu

    pos_kmers, neg_kmers = SequenceKmers(positives, table.k), SequenceKmers(background, table.k)
    results = []
    for name, rows in groups.items():
        member = _membership(table, rows)
        pos, neg = pos_kmers.density(member), neg_kmers.density(member)
        pvalue = float(mannwhitneyu(pos, neg, alternative="two-sided").pvalue)
        presence = fisher_test(int((pos > 0).sum()), len(pos), int((neg > 0).sum()), len(neg))
        results.append(
            SequenceComparison(name, float(pos.mean()), float(neg.mean()), pvalue, presence)
        )
    null = None
    if null_sets is not None and len(null_sets):

        def ratio(rows):
            member = _membership(table, rows)
            neg_mean = neg_kmers.density(member).mean()
            return pos_kmers.density(member).mean() / neg_mean if neg_mean > 0 else math.inf

        null = NullComparison(ratio(groups["top"]), np.array([ratio(rows) for rows in null_sets]))
    return results, null
