"""GeneMask mask selection for one item: which tokens to mask, and what the model sees there.

Pure numpy (no fairseq), so every step of the masking (docs/genemask_mlm.md, "Strategies")
is unit-tested on hand-built arrays. The fairseq glue is
:mod:`genemask_plugin.data.genemask_mask_dataset`. :class:`MaskingConfig` is the one source
of the defaults, help texts and validation; the task's config fields derive from it.

Strategies (``MaskingConfig.strategy``):

- ``genemask``: centres drawn i.i.d. with probability ``centre_prob``; each masks
  the DNABERT k-span around itself; within that span the token with the highest
  PMI score is the centre's best token (ties go to the centre, then to the
  nearest position); the best ``ceil(high_fraction * m)`` of the m centres,
  ranked by that score, also mask a wide span of ``2 * wide_half_width + 1``
  tokens around their best token.
- ``kmer_span``: DNABERT's masking, the centres' k-spans only.
- ``random``: BERT's masking, each token i.i.d. (a "centre" with a one-token span).
- ``genemask_position``: an ablation reproducing the reference implementation's
  defect: the PMI lookup is given a token's *position* decoded as a vocabulary
  id, so the "best" token is a fixed function of position, blind to the sequence.
- ``global_pmi``: the global PMI masking of the GeneMask authors' follow-up (CM-GEMS):
  m centres are drawn as above (``centre_prob`` 0.15/11), but they only set m; the
  m maskable positions whose tokens score highest over the *whole* item (ties to
  the lower position) each mask a span of ``2 * wide_half_width + 1`` tokens.

Masked positions are then replaced 80/10/10 (``<mask>`` / random regular token /
unchanged) by :func:`replace_masked_tokens`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np

STRATEGIES = ("genemask", "kmer_span", "random", "genemask_position", "global_pmi")
PMI_STRATEGIES = frozenset({"genemask", "genemask_position", "global_pmi"})
PAPER_CENTRE_PROB = {
    # 0.15 / 8.5, the mean number of tokens masked per centre for k=6 (GeneMask paper).
    "genemask": 0.0176,
    "genemask_position": 0.0176,
    # 0.15 / 6 (DNABERT, k=6).
    "kmer_span": 0.025,
    # BERT.
    "random": 0.15,
    # 0.15 / 11, one 11-token span per centre (CM-GEMS).
    "global_pmi": 0.15 / 11,
}
DNABERT_FIRST_KMER_ID = 5
"""Vocabulary id of the first k-mer (AAAAAA) in DNABERT's vocabulary, after its 5 specials.

The reference implementation decodes position p as DNABERT vocabulary id p, so
position 5 scores as AAAAAA, position 6 as AAAAAC, and so on.
"""


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


def _centre_first(offsets: np.ndarray) -> np.ndarray:
    """The offsets reordered by distance from the centre (centre first, left before right on ties)."""
    return offsets[np.argsort(np.abs(offsets), kind="stable")]


def _knob(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class MaskingConfig:
    """Every knob of the masking; the defaults are the paper's.

    Each field's ``metadata["help"]`` is the help of the task's flag (``--mask-strategy`` for
    ``strategy``; ``k`` has no flag, it is read from the dictionary).
    """

    strategy: str = _knob(
        "genemask",
        "genemask: k-span around each centre plus a wide span around the best-PMI token of the "
        "best-scoring half of the centres (needs --pmi-table); kmer_span: DNABERT's k-span around "
        "each centre; random: BERT's i.i.d. tokens; genemask_position: ABLATION reproducing the "
        "reference implementation's defect (PMI looked up by token position instead of token, "
        "needs --pmi-table); global_pmi: CM-GEMS's global masking, a wide span around each of the "
        "item's top-PMI tokens, as many as centres drawn (needs --pmi-table). With a non-k-mer dictionary (e.g. SentencePiece) the base span is one token",
    )
    k: int | None = _knob(
        6, "k of the overlapping k-mer tokens (sets the base span); None for non-overlapping tokens"
    )
    centre_prob: float | None = _knob(
        None,
        "probability that a token is a mask centre (for random: that it is masked); default: the "
        "paper's value for the strategy "
        + ", ".join(f"{s} {p:.4g}" for s, p in PAPER_CENTRE_PROB.items())
        + " (all but random target ~15%% of 6-mer tokens)",
    )
    wide_half_width: int = _knob(
        5, "half-width h of the wide span (2h+1 tokens) around a best-PMI token (global_pmi: around each top token)"
    )
    high_fraction: float = _knob(
        0.5, "fraction of centres, best by PMI, that also mask the wide span"
    )
    all_wide_below: int = _knob(
        0,
        "if fewer than this many centres are in the high set, all centres get the wide span "
        "(the reference code's rule: 5; 0 = off)",
    )
    leave_unmasked_prob: float = _knob(0.1, "probability that a masked token is left unchanged")
    random_token_prob: float = _knob(
        0.1,
        "probability that a masked token is replaced by a random regular token "
        "(never a special, never <mask>)",
    )

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown mask strategy {self.strategy!r}; choose from {', '.join(STRATEGIES)}")
        if self.centre_prob is None:
            object.__setattr__(self, "centre_prob", PAPER_CENTRE_PROB[self.strategy])
        if not 0.0 < self.centre_prob <= 1.0:
            raise ValueError(f"centre probability must be in (0, 1], got {self.centre_prob}")
        if self.wide_half_width < 0:
            raise ValueError(f"wide half-width must be >= 0, got {self.wide_half_width}")
        if not 0.0 <= self.high_fraction <= 1.0:
            raise ValueError(f"high fraction must be in [0, 1], got {self.high_fraction}")
        if self.all_wide_below < 0:
            raise ValueError(f"all-wide threshold must be >= 0, got {self.all_wide_below}")
        for name in ("leave_unmasked_prob", "random_token_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.leave_unmasked_prob + self.random_token_prob > 1.0:
            raise ValueError("leave_unmasked_prob + random_token_prob must be <= 1")

    @classmethod
    def default_of(cls, name: str):
        """The default of knob ``name``."""
        return _FIELDS[name].default

    @classmethod
    def help_of(cls, name: str) -> str:
        """The help text of knob ``name`` (argparse-escaped: ``%%`` for a percent sign)."""
        return _FIELDS[name].metadata["help"]

    @property
    def uses_pmi(self) -> bool:
        return self.strategy in PMI_STRATEGIES

    @property
    def span_offsets(self) -> np.ndarray:
        """Base-span offsets, centre first then by distance (the order that breaks PMI ties)."""
        k = None if self.strategy == "random" else self.k
        return _centre_first(base_span_offsets(k))


_FIELDS = {f.name: f for f in fields(MaskingConfig)}


def position_as_token_scores(
    token_scores: np.ndarray, length: int, num_specials: int = 4
) -> np.ndarray:
    """Scores by item position, as the reference implementation's lookup defect produces them.

    Position ``p`` (0 = ``<s>``) is decoded as DNABERT vocabulary id ``p``, i.e. as
    our token id ``p - DNABERT_FIRST_KMER_ID + num_specials``. Positions that decode
    to a DNABERT special or past the vocabulary score ``-inf``.
    """
    ids = np.arange(length, dtype=np.int64) - DNABERT_FIRST_KMER_ID + num_specials
    valid = (ids >= num_specials) & (ids < len(token_scores))
    out = np.full(length, -np.inf, dtype=np.float32)
    out[valid] = token_scores[ids[valid]]
    return out


def select_mask_spans(
    maskable: np.ndarray,
    rng: np.random.Generator,
    config: MaskingConfig,
    scores: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Choose the masked positions of one item.

    Args:
        maskable: bool (T,), True at regular tokens; specials are never centres and never masked.
        rng: the item's generator.
        config: the strategy and its knobs.
        scores: float (T,), the PMI score of each position's token (``-inf`` = unscored);
            required by the PMI strategies.

    Returns:
        ``(masked, wide)``: bool (T,) arrays; ``wide`` marks masked positions inside a
        wide (PMI) span. Spans are truncated at the item's ends.
    """
    n = len(maskable)
    masked = np.zeros(n, dtype=bool)
    wide = np.zeros(n, dtype=bool)
    centres = np.flatnonzero((rng.random(n) < config.centre_prob) & maskable)
    if centres.size == 0:
        return masked, wide
    if config.strategy == "global_pmi":
        return _global_pmi_spans(maskable, centres.size, config, scores)

    offsets = config.span_offsets
    span = centres[:, None] + offsets[None, :]  # (m, span); column 0 is the centre
    inside = (span >= 0) & (span < n)
    masked[span[inside]] = True

    if config.uses_pmi and config.high_fraction > 0:
        if scores is None or len(scores) != n:
            raise ValueError("the PMI strategies need one score per position")
        span_scores = np.where(inside, scores[np.where(inside, span, 0)], -np.inf)
        rows = np.arange(len(centres))
        best_col = span_scores.argmax(axis=1)  # first maximum: the centre, else the nearest
        best = span[rows, best_col]
        n_high = math.ceil(config.high_fraction * len(centres))
        if n_high < config.all_wide_below:
            n_high = len(centres)
        high = np.argsort(-span_scores[rows, best_col], kind="stable")[:n_high]
        wide_span = best[high][:, None] + np.arange(
            -config.wide_half_width, config.wide_half_width + 1
        )
        wide[wide_span[(wide_span >= 0) & (wide_span < n)]] = True
        wide &= maskable
        masked |= wide

    masked &= maskable
    return masked, wide


def _global_pmi_spans(
    maskable: np.ndarray, m: int, config: MaskingConfig, scores: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """``global_pmi``: a wide span around each of the ``m`` top-scoring maskable positions.

    Every masked position is in a global (wide) span, so ``wide`` equals ``masked``.
    """
    n = len(maskable)
    if scores is None or len(scores) != n:
        raise ValueError("the PMI strategies need one score per position")
    candidates = np.flatnonzero(maskable)
    neg = -scores[candidates]
    m = min(m, candidates.size)
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
    return masked, masked.copy()


def replace_masked_tokens(
    tokens: np.ndarray,
    masked: np.ndarray,
    rng: np.random.Generator,
    mask_idx: int,
    replacement_ids: np.ndarray,
    leave_unmasked_prob: float = 0.1,
    random_token_prob: float = 0.1,
) -> np.ndarray:
    """The model's input: masked positions become ``<mask>``, a random regular token, or stay.

    ``replacement_ids`` lists the regular vocabulary (never specials, never ``<mask>``);
    random tokens are drawn uniformly from it.
    """
    source = tokens.copy()
    positions = np.flatnonzero(masked)
    draw = rng.random(positions.size)
    random_pos = positions[(draw >= leave_unmasked_prob) & (draw < leave_unmasked_prob + random_token_prob)]
    source[positions[draw >= leave_unmasked_prob + random_token_prob]] = mask_idx
    if random_pos.size:
        source[random_pos] = replacement_ids[rng.integers(len(replacement_ids), size=random_pos.size)]
    return source
