"""Scoring every k-mer against position weight matrices, vectorised.

A k-mer matches a motif when its best PWM *relative score*
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
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from genemask_preprocess.kmers import BASES, base_digits, check_k

DEFAULT_THRESHOLD = 0.85
DEFAULT_MIN_WINDOW_IC = 1.0
FRAGMENT_SCORES = ("embedded", "window")
DEFAULT_FRAGMENT_SCORE = "embedded"
_RANGE_EPS = 1e-9
_MATCH_TOLERANCE = 1e-9
"""A score this far below the threshold still matches: float rounding must not drop a perfect site."""


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


def is_match(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Which relative scores reach ``threshold`` (the one match rule of the report and the statistics)."""
    return np.asarray(scores) >= threshold - _MATCH_TOLERANCE


def kmer_onehot(k: int) -> np.ndarray:
    """One-hot encoding (4^k, k, 4) float64 of all k-mers in code order."""
    check_k(k)
    return np.eye(4, dtype=np.float64)[base_digits(np.arange(4**k), k)]


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
        return is_match(self.scores, threshold)


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
