"""The selection cores: which positions of one item a strategy masks.

Pure numpy, unit-tested on hand-built arrays. Every selector has the signature of
:attr:`MaskStrategy.select <genemask_plugin.masking.strategies.MaskStrategy.select>`,
``(maskable, rng, config, scores) -> MaskSelection``, and begins with the same draw,
``rng.random(T)`` for the centres, so the replacement draws that follow
(:mod:`~genemask_plugin.masking.replacement`) come from the same place in the item's
generator whatever the strategy. Specials (``maskable`` False) are never centres and never
masked; spans are truncated at the item's ends.

- :func:`select_kmer_spans`: DNABERT's masking, the k-span around each centre.
- :func:`select_random_tokens`: BERT's, each token i.i.d. (a centre with a one-token span).
- :func:`select_local_pmi_spans`: GeneMask's. Within each centre's k-span the token with the
  highest PMI score is the centre's best token (ties go to the centre, then to the nearest
  position); the best ``ceil(high_fraction * m)`` of the m centres, ranked by that score, also
  mask ``2 * wide_half_width + 1`` tokens around their best token.
- :func:`select_global_pmi_spans`: CM-GEMS's global masking. The centres only set m; the m
  maskable positions whose tokens score highest over the *whole* item (ties to the lower
  position) each mask ``2 * wide_half_width + 1`` tokens.
- :func:`select_variable_spans`: one stage of RandomMask. Each centre masks a span of L tokens,
  L drawn uniformly from the base span (k) to ``mask_boundary``, placed as the k-span is.
- :func:`select_pmi_units`: PMI-Masking (Levine et al.) for non-overlapping tokens. The item is
  already cut into collocations and single tokens (:mod:`.collocations`); units are taken in a
  random order until ``centre_prob`` of its regular tokens are masked (the budget).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from genemask_plugin.masking.collocations import Units
    from genemask_plugin.masking.config import MaskingConfig


@dataclass(frozen=True)
class MaskSelection:
    """The masked positions of one item, as a selector chose them."""

    masked: np.ndarray
    """bool (T,): the positions to mask."""
    wide: np.ndarray
    """bool (T,): the masked positions inside a wide (PMI) span."""
    centres: int
    """How many mask centres were drawn."""


def base_span_offsets(k: int | None) -> np.ndarray:
    """Offsets of the DNABERT k-span around a centre: ``-floor((k-1)/2) .. +ceil((k-1)/2)``.

    For k=6 that is -2..+3, the 6 k-mers overlapping the centre k-mer's middle
    bases. ``k=None`` (non-overlapping tokens, e.g. SentencePiece) gives the centre alone.
    """
    if k is None:
        return np.zeros(1, dtype=np.int64)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    lo = (k - 1) // 2
    return np.arange(-lo, k - lo, dtype=np.int64)


def centre_first_offsets(k: int | None) -> np.ndarray:
    """The base-span offsets ordered by distance from the centre (centre first, left before right on
    ties): the order in which a span's PMI ties are broken."""
    offsets = base_span_offsets(k)
    return offsets[np.argsort(np.abs(offsets), kind="stable")]


def draw_centres(maskable: np.ndarray, rng: np.random.Generator, centre_prob: float) -> np.ndarray:
    """Positions of the mask centres: each maskable position i.i.d. with ``centre_prob``."""
    return np.flatnonzero((rng.random(len(maskable)) < centre_prob) & maskable)


def _nothing_masked(n: int) -> MaskSelection:
    return MaskSelection(np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), 0)


def _check_scores(scores: np.ndarray | None, n: int) -> None:
    if scores is None or len(scores) != n:
        raise ValueError("the PMI strategies need one score per position")


def _base_spans(n: int, centres: np.ndarray, k: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(masked, span, inside)``: the union of the centres' base spans, the (m, span) positions
    (column 0 is the centre, then by distance) and which of them lie inside the item."""
    span = centres[:, None] + centre_first_offsets(k)[None, :]
    inside = (span >= 0) & (span < n)
    masked = np.zeros(n, dtype=bool)
    masked[span[inside]] = True
    return masked, span, inside


def select_kmer_spans(
    maskable: np.ndarray, rng: np.random.Generator, config: MaskingConfig, scores=None
) -> MaskSelection:
    """DNABERT's masking: the k-span around each centre (the centre alone when ``config.k`` is None)."""
    n = len(maskable)
    centres = draw_centres(maskable, rng, config.centre_prob)
    if centres.size == 0:
        return _nothing_masked(n)
    masked, _, _ = _base_spans(n, centres, config.k)
    return MaskSelection(masked & maskable, np.zeros(n, dtype=bool), int(centres.size))


def select_random_tokens(
    maskable: np.ndarray, rng: np.random.Generator, config: MaskingConfig, scores=None
) -> MaskSelection:
    """BERT's masking: each maskable token i.i.d. with ``config.centre_prob``, whatever k."""
    n = len(maskable)
    centres = draw_centres(maskable, rng, config.centre_prob)
    if centres.size == 0:
        return _nothing_masked(n)
    masked, _, _ = _base_spans(n, centres, None)
    return MaskSelection(masked & maskable, np.zeros(n, dtype=bool), int(centres.size))


def select_local_pmi_spans(
    maskable: np.ndarray, rng: np.random.Generator, config: MaskingConfig, scores: np.ndarray | None
) -> MaskSelection:
    """GeneMask's masking: the k-spans, plus a wide span around the best token of the best centres.

    ``scores``: float (T,), each position's PMI score (``-inf`` = unscored).
    """
    n = len(maskable)
    centres = draw_centres(maskable, rng, config.centre_prob)
    if centres.size == 0:
        return _nothing_masked(n)
    masked, span, inside = _base_spans(n, centres, config.k)
    wide = np.zeros(n, dtype=bool)
    if config.high_fraction > 0:
        _check_scores(scores, n)
        span_scores = np.where(inside, scores[np.where(inside, span, 0)], -np.inf)
        rows = np.arange(len(centres))
        best_col = span_scores.argmax(axis=1)  # first maximum: the centre, else the nearest
        best = span[rows, best_col]
        n_high = math.ceil(config.high_fraction * len(centres))
        if n_high < config.all_wide_below:
            n_high = len(centres)
        high = np.argsort(-span_scores[rows, best_col], kind="stable")[:n_high]
        wide_span = best[high][:, None] + np.arange(-config.wide_half_width, config.wide_half_width + 1)
        wide[wide_span[(wide_span >= 0) & (wide_span < n)]] = True
        wide &= maskable
        masked |= wide
    masked &= maskable
    return MaskSelection(masked, wide, int(centres.size))


def select_global_pmi_spans(
    maskable: np.ndarray, rng: np.random.Generator, config: MaskingConfig, scores: np.ndarray | None
) -> MaskSelection:
    """CM-GEMS's global masking: a wide span around each of the m top-scoring maskable positions.

    m is the number of centres drawn. Every masked position is in a global (wide) span, so
    ``wide`` equals ``masked``.
    """
    n = len(maskable)
    centres = draw_centres(maskable, rng, config.centre_prob)
    if centres.size == 0:
        return _nothing_masked(n)
    _check_scores(scores, n)
    candidates = np.flatnonzero(maskable)
    neg = -scores[candidates]
    m = min(centres.size, candidates.size)
    # The m best without a full sort: all scores above the m-th best, then the lowest positions
    # among those tied with it (candidates are ascending).
    kth = np.partition(neg, m - 1)[m - 1]
    above = np.flatnonzero(neg < kth)
    tied = np.flatnonzero(neg == kth)[: m - above.size]
    top = candidates[np.concatenate([above, tied])]
    span = top[:, None] + np.arange(-config.wide_half_width, config.wide_half_width + 1)
    masked = np.zeros(n, dtype=bool)
    masked[span[(span >= 0) & (span < n)]] = True
    masked &= maskable
    return MaskSelection(masked, masked.copy(), int(centres.size))


def select_variable_spans(
    maskable: np.ndarray, rng: np.random.Generator, config: MaskingConfig, scores=None
) -> MaskSelection:
    """One RandomMask stage: around each centre a span of L tokens, L uniform in k .. ``config.mask_boundary``.

    A span of L tokens covers offsets ``-floor((L-1)/2) .. +ceil((L-1)/2)`` (L = k is DNABERT's
    k-span), truncated at the item's ends. L comes from the centre's own draw: a draw below the
    centre probability p, divided by p, is uniform on [0, 1) and independent of everything else,
    so the selector draws nothing but the centres, like the others. With a boundary of k the
    mask is exactly :func:`select_kmer_spans`'.
    """
    n = len(maskable)
    draws = rng.random(n)  # draw_centres' one draw, kept for the span lengths
    centres = np.flatnonzero((draws < config.centre_prob) & maskable)
    if centres.size == 0:
        return _nothing_masked(n)
    base = len(base_span_offsets(config.k))
    choices = config.mask_boundary - base + 1
    lengths = base + np.minimum((draws[centres] / config.centre_prob * choices).astype(np.int64), choices - 1)
    starts = centres - (lengths - 1) // 2
    # +1 where a span starts, -1 one past its end: covered positions have a positive running sum.
    edges = np.bincount(np.clip(starts, 0, n), minlength=n + 1) - np.bincount(
        np.clip(starts + lengths, 0, n), minlength=n + 1
    )
    masked = np.cumsum(edges[:n]) > 0
    return MaskSelection(masked & maskable, np.zeros(n, dtype=bool), int(centres.size))


def select_pmi_units(
    maskable: np.ndarray, rng: np.random.Generator, config: MaskingConfig, units: Units | None
) -> MaskSelection:
    """PMI-Masking: whole units (collocations or single tokens) in a random order, up to the budget.

    ``units``: the item's segmentation (:func:`~genemask_plugin.masking.collocations.segment_collocations`).
    The budget is ``centre_prob * R`` tokens of the item's R regular tokens, rounded down or up at
    random (up with probability equal to its fraction, one more draw), so the expected rate is
    ``centre_prob`` on items of any length; BERT's ``max(1, round(p * R))`` over-masks short items
    (17.7% instead of 15% on the bundled stride-6 corpus). Units are drawn uniformly at random, without
    replacement, by sorting them on the draw ``rng.random(T)`` at their first position; as in BERT's
    whole-word masking (which
    Levine et al. follow), a unit that would overshoot the budget is skipped and the next ones that
    still fit are taken, so exactly the budget is masked unless no remaining unit fits. Units of
    specials are never masked. ``wide`` marks masked tokens inside collocations (units of 2 or more
    tokens); ``centres`` counts the units masked.
    """
    n = len(maskable)
    keys = rng.random(n)
    if units is None:
        raise ValueError("pmi_span needs the item's collocation units")
    regular = maskable[units.starts]
    starts, lengths = units.starts[regular], units.lengths[regular]
    if not len(starts):
        return _nothing_masked(n)
    budget = int(config.centre_prob * int(np.count_nonzero(maskable)) + rng.random())
    order = np.argsort(keys[starts], kind="stable")
    drawn = lengths[order]
    filled = np.cumsum(drawn)
    taken = int(np.searchsorted(filled, budget, side="right"))  # the draws that fit as they come
    chosen = list(order[:taken])
    left = budget - (int(filled[taken - 1]) if taken else 0)
    while left > 0:  # at most max_n - 1 rounds: each takes a unit shorter than the one skipped
        fits = np.flatnonzero(drawn[taken + 1 :] <= left)
        if not len(fits):
            break
        taken += 1 + int(fits[0])
        chosen.append(order[taken])
        left -= int(drawn[taken])
    chosen = np.asarray(chosen, dtype=np.int64)
    chosen_starts, chosen_lengths = starts[chosen], lengths[chosen]
    first = np.cumsum(chosen_lengths) - chosen_lengths  # each unit's first slot among the masked positions
    positions = np.repeat(chosen_starts - first, chosen_lengths) + np.arange(int(chosen_lengths.sum()))
    masked = np.zeros(n, dtype=bool)
    wide = np.zeros(n, dtype=bool)
    masked[positions] = True
    wide[positions[np.repeat(chosen_lengths >= 2, chosen_lengths)]] = True
    return MaskSelection(masked & maskable, wide & maskable, int(len(chosen)))
