"""The leak meter: how much of a mask the model can read off the tokens it sees.

Pure numpy, vectorised over a batch. With overlapping k-mers, token i of a run of DNA tokens
covers bases i .. i+k-1 of that run, so a masked k-mer can often be read off its neighbours.

Definitions, per row of a batch (``source`` the model's input, ``target`` the original token at
masked positions and ``pad`` elsewhere):

- A *DNA token* is a position whose original token carries bases (``carries_bases``); specials
  and padding do not, so they end a run of DNA tokens (the bases on either side are different
  DNA, e.g. two chunks packed into one block).
- A token is *visible* when it is a DNA token the model sees as it is: not masked, or masked and
  left unchanged by the 80/10/10 rule (``source == target``). A random replacement is
  misleading, not visible; one that happens to draw the original token shows the truth and counts
  as visible (1 in 4^k).
- A masked token is *leaked* when every one of its bases is covered by a visible token
  (itself included, so every unchanged token is leaked).
- A *masked span* is a maximal run of consecutive masked source positions. Masking never touches
  a special, so a span lies inside one run of DNA tokens. Unchanged tokens inside a span do not
  split it: they are masked (the loss is taken there), and the bases they show reduce the span's
  hidden bases instead.
- A span's *hidden bases* are the bases covered by its tokens that no visible token covers.
  Between two visible neighbours a span of L tokens hides ``max(0, L - k + 1)`` bases when none of
  its tokens is unchanged: DNABERT's 6-token span hides 1 base of 6-mers, an 11-token span 6. At
  the end of a run nothing reveals the outer bases, so a span there hides more.

Non-overlapping tokens (``k=None``: SentencePiece pieces, non-overlapping k-mers, single
nucleotides) share no bases, so a masked token is leaked only when it is unchanged, and a span
hides the bases of its tokens that are not unchanged, counted from ``base_lengths`` (bases per
token id, e.g. :func:`token_base_lengths`); without them hidden bases are not measured.

The arithmetic: let ``d`` be the distance from a masked token back to the nearest visible token
of its run (0 when it is visible itself) and ``e`` forward to the next one. The left one covers
the token's first ``k - d`` bases and the right one its bases from ``e`` on, so the token is
leaked exactly when ``d + e <= k``. A base at position x of a run is hidden exactly when
``x - (nearest visible at or before x) >= k``; a span that ends its run adds the ``k - 1`` bases
past its last token, of which ``min(k - 1, d)`` are hidden.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_FAR = np.int64(1) << 40
"""A distance larger than any block, for "no visible token on that side of the run"."""


@dataclass(frozen=True)
class MaskLeakage:
    """The leak meter's reading of one batch (or one item)."""

    masked: np.ndarray
    """bool (B, T): the masked positions (``target != pad``)."""
    leaked: np.ndarray
    """bool (B, T): the masked tokens every base of which a visible token shows."""
    span_lengths: np.ndarray
    """int64 (S,): tokens in each masked span, spans in row-major order of their first position."""
    span_hidden_bases: np.ndarray | None
    """int64 (S,): each span's hidden bases; None when they cannot be measured (non-overlapping
    tokens without base lengths)."""

    @property
    def num_masked(self) -> int:
        return int(self.masked.sum())

    @property
    def num_leaked(self) -> int:
        return int(self.leaked.sum())

    @property
    def hidden_bases(self) -> int | None:
        """Hidden bases summed over the spans (None when not measured)."""
        return None if self.span_hidden_bases is None else int(self.span_hidden_bases.sum())


def token_base_lengths(symbols: list[str]) -> np.ndarray | None:
    """Bases per token id of a non-overlapping dictionary, from its symbols: the length of each
    symbol made of A/C/G/T/N (SentencePiece's word marker ``▁`` stripped), 0 for every other
    symbol (specials, ``<mask>``, ``madeupword`` padding). None when no symbol is DNA."""
    lengths = np.zeros(len(symbols), dtype=np.int64)
    for i, symbol in enumerate(symbols):
        bases = symbol.replace("\u2581", "")
        if bases and not bases.strip("ACGTNacgtn"):
            lengths[i] = len(bases)
    return lengths if lengths.any() else None


def measure_leakage(
    source: np.ndarray,
    target: np.ndarray,
    carries_bases: np.ndarray,
    pad: int,
    k: int | None,
    base_lengths: np.ndarray | None = None,
) -> MaskLeakage:
    """The leak meter on a batch: which masked tokens leak, and each masked span's hidden bases.

    Args:
        source: int (B, T) or (T,), the model's input.
        target: int, same shape: the original token at masked positions, ``pad`` elsewhere.
        carries_bases: bool lookup table over the vocabulary, True at the tokens that carry bases
            (not the specials, ``<mask>`` or padding symbols).
        pad: the id that marks "not masked" in ``target``.
        k: k of overlapping k-mer tokens; None for non-overlapping tokens.
        base_lengths: for ``k=None``, bases per token id (:func:`token_base_lengths`).
    """
    source = np.atleast_2d(np.asarray(source, dtype=np.int64))
    target = np.atleast_2d(np.asarray(target, dtype=np.int64))
    if source.shape != target.shape:
        raise ValueError(f"source {source.shape} and target {target.shape} differ in shape")
    if k is not None and k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    masked = target != pad
    original = np.where(masked, target, source)
    dna = carries_bases[original]
    visible = dna & (~masked | (source == target))
    # Spans: runs of masked positions; a masked position is always a DNA token.
    before = np.zeros_like(masked)
    before[:, 1:] = masked[:, :-1]
    starts = masked & ~before
    span_of = np.cumsum(starts.ravel()) - 1  # the span of each masked position, row-major
    span_ids = span_of[masked.ravel()]
    num_spans = int(starts.sum())
    span_lengths = np.bincount(span_ids, minlength=num_spans).astype(np.int64)

    if k is None:
        leaked = masked & visible
        hidden = None
        if base_lengths is not None:
            hidden_tokens = masked & ~visible
            weights = np.where(hidden_tokens, np.asarray(base_lengths, dtype=np.int64)[original], 0)
            hidden = np.bincount(span_ids, weights=weights.ravel()[masked.ravel()], minlength=num_spans)
            hidden = hidden.astype(np.int64)
        return MaskLeakage(masked, leaked, span_lengths, hidden)

    width = source.shape[1]
    positions = np.arange(width, dtype=np.int64)
    # Nearest visible token at or before / at or after each position within its run: carry the
    # last "visible or run break" position along the row; a run break means "none on this side".
    stop = visible | ~dna
    last = np.maximum.accumulate(np.where(stop, positions, -1), axis=1)
    last_visible = (last >= 0) & np.take_along_axis(visible, np.maximum(last, 0), axis=1)
    gap_before = np.where(last_visible, positions - last, _FAR)
    following = np.minimum.accumulate(np.where(stop, positions, width)[:, ::-1], axis=1)[:, ::-1]
    next_visible = (following < width) & np.take_along_axis(visible, np.minimum(following, width - 1), axis=1)
    gap_after = np.where(next_visible, following - positions, _FAR)
    leaked = masked & (gap_before + gap_after <= k)

    # Hidden bases: the span's own bases (one per token) no visible token reaches, plus the k - 1
    # bases past a span that ends its run.
    hidden_here = masked & (gap_before >= k)
    after_is_dna = np.zeros_like(dna)
    after_is_dna[:, :-1] = dna[:, 1:]
    ends_run = masked & ~after_is_dna
    tail = np.where(ends_run, np.minimum(gap_before, k - 1), 0)
    per_position = (hidden_here.astype(np.int64) + tail).ravel()[masked.ravel()]
    hidden = np.bincount(span_ids, weights=per_position, minlength=num_spans).astype(np.int64)
    return MaskLeakage(masked, leaked, span_lengths, hidden)
