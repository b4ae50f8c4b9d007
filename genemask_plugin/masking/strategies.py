"""The masking strategies: one registry entry each, and the only place their names are written.

Everything else asks the registry: the task's ``--mask-strategy`` choices and help, the
masking dataset (which scores to look up, which candidate masks to draw), the criterion's
``global_pct`` (through the batch), and the strategy table of ``docs/genemask_mlm.md``
(:func:`markdown_table`; ``python -m genemask_plugin.masking.strategies`` prints it). Code that
means one strategy refers to its entry, e.g. ``strategies.GENEMASK.name``.

Adding a strategy is one :func:`register` call with a selector (``spans.py`` holds the cores)
and its tests; see "Adding a strategy" in ``docs/genemask_mlm.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from genemask_plugin.masking.collocations import CollocationUnits
from genemask_plugin.masking.curricula import (
    BoundarySchedule,
    MaskCurriculum,
    PerplexityPlateauSwitch,
    StepwiseSchedule,
    boundary_stage_configs,
)
from genemask_plugin.masking.score_lookup import ScoresByPosition, ScoresByToken
from genemask_plugin.masking.spans import (
    MaskSelection,
    select_global_pmi_spans,
    select_kmer_spans,
    select_local_pmi_spans,
    select_pmi_units,
    select_random_tokens,
    select_variable_spans,
)

if TYPE_CHECKING:
    from genemask_plugin.masking.config import MaskingConfig

Selector = Callable[[np.ndarray, np.random.Generator, "MaskingConfig", object], MaskSelection]
"""``(maskable, rng, config, scores) -> MaskSelection``: one item's mask (``spans.py``)."""

ScoreLookup = Callable[[object, int, int], Callable[[np.ndarray], object]]
"""``(pmi_input, num_specials, max_length) -> (tokens -> scores)``: a class of ``score_lookup.py`` (or
``collocations.py``); its ``table_view`` and ``view_options(config)`` say how the task reads
``pmi_input`` from ``--pmi-table``."""

CandidateConfigs = Callable[["MaskingConfig"], tuple["MaskingConfig", ...]]
"""``config -> candidate configs``: a curriculum's candidates as settings of its candidate entries."""


@dataclass(frozen=True)
class MaskStrategy:
    """One masking strategy: what it needs, its defaults and help, and how it masks.

    A plain strategy has a ``select`` function. A curriculum has ``candidates`` (plain
    strategies; every item carries one mask of each) and a ``curriculum`` rule that picks one
    per batch; it selects nothing itself.
    """

    name: str
    """The ``--mask-strategy`` value."""
    help: str
    """What it masks, in one clause: the ``--mask-strategy`` help and the docs' table are built from it."""
    paper_centre_prob: float
    """The default ``--centre-prob``: the paper's value (a curriculum's: its first candidate's)."""
    select: Selector | None = None
    """The selector of one item's mask; None for a curriculum."""
    score_lookup: ScoreLookup | None = None
    """How its PMI scores reach ``select`` (by token, by position); None: it uses no PMI table."""
    global_spans: bool = False
    """Whether its masked tokens count as global spans (the criterion's ``global_pct``)."""
    candidates: tuple[MaskStrategy, ...] = ()
    """A curriculum's candidate strategies, in the order its rule indexes them."""
    curriculum: type[MaskCurriculum] | None = None
    """A curriculum's rule: which candidate a batch uses (``curricula.py``)."""
    paper_centre_prob_k: int | None = 6
    """The k for which ``paper_centre_prob`` targets ~15% of tokens; None when it does not depend on k."""
    candidate_configs: CandidateConfigs | None = None
    """A curriculum whose candidates are one entry at several settings (RandomMask's stages): the
    configs of the masks every item carries. None: one per entry of ``candidates``
    (:meth:`MaskingConfig.candidates <genemask_plugin.masking.config.MaskingConfig.candidates>`)."""

    def __post_init__(self):
        if self.candidates or self.curriculum is not None:
            if self.select is not None or self.score_lookup is not None:
                raise ValueError(f"mask strategy {self.name}: a curriculum selects through its candidates")
            enough = len(self.candidates) >= 2 or (self.candidates and self.candidate_configs is not None)
            if not enough or self.curriculum is None:
                raise ValueError(f"mask strategy {self.name}: a curriculum needs two or more candidates and a rule")
            if any(candidate.is_curriculum for candidate in self.candidates):
                raise ValueError(f"mask strategy {self.name}: a candidate cannot itself be a curriculum")
        elif self.select is None:
            raise ValueError(f"mask strategy {self.name} has no select function")

    @property
    def is_curriculum(self) -> bool:
        return bool(self.candidates)

    @property
    def needs_pmi_table(self) -> bool:
        return self.score_lookup is not None or any(c.needs_pmi_table for c in self.candidates)

    @property
    def pmi_lookup(self) -> ScoreLookup | None:
        """The lookup that says how ``--pmi-table`` is read for this strategy (a curriculum's: its
        first candidate's that has one; its candidates share what it reads)."""
        if self.score_lookup is not None:
            return self.score_lookup
        return next((c.score_lookup for c in self.candidates if c.score_lookup is not None), None)


STRATEGIES: dict[str, MaskStrategy] = {}
"""Every registered strategy by name, in registration order (the order of the choices)."""


def register(strategy: MaskStrategy) -> MaskStrategy:
    """Add ``strategy`` to :data:`STRATEGIES` and return it."""
    if strategy.name in STRATEGIES:
        raise ValueError(f"mask strategy {strategy.name!r} is already registered")
    STRATEGIES[strategy.name] = strategy
    return strategy


def strategy_named(name: str) -> MaskStrategy:
    """The entry of ``name``; a one-line ``ValueError`` listing the choices if there is none."""
    try:
        return STRATEGIES[str(name)]
    except KeyError:
        raise ValueError(f"unknown mask strategy {name!r}; choose from {', '.join(STRATEGIES)}") from None


def select_mask_spans(maskable: np.ndarray, rng: np.random.Generator, config: MaskingConfig, scores=None) -> MaskSelection:
    """One item's mask by ``config.strategy`` (a plain strategy; a curriculum masks with each of
    ``config.candidates()``).

    Args:
        maskable: bool (T,), True at regular tokens; specials are never centres and never masked.
        rng: the item's generator.
        config: the strategy and its settings.
        scores: what the strategy's score lookup gave for this item (None when it uses no PMI).
    """
    strategy = strategy_named(config.strategy)
    if strategy.select is None:
        raise ValueError(f"mask strategy {strategy.name} is a curriculum: mask with each of its candidates")
    return strategy.select(maskable, rng, config, scores)


# ---------------------------------------------------------------- the entries

GENEMASK = register(MaskStrategy(
    name="genemask",
    help="k-span around each centre plus a wide span around the best-PMI token of the best-scoring half "
    "of the centres",
    paper_centre_prob=0.0176,  # 0.15 / 8.5, the mean number of tokens masked per centre for k=6
    select=select_local_pmi_spans,
    score_lookup=ScoresByToken,
))
KMER_SPAN = register(MaskStrategy(
    name="kmer_span",
    help="DNABERT's k-span around each centre",
    paper_centre_prob=0.025,  # 0.15 / 6 (DNABERT, k=6)
    select=select_kmer_spans,
))
RANDOM = register(MaskStrategy(
    name="random",
    help="BERT's i.i.d. tokens",
    paper_centre_prob=0.15,  # BERT
    select=select_random_tokens,
    paper_centre_prob_k=None,
))
GENEMASK_POSITION = register(MaskStrategy(
    name="genemask_position",
    help=f"ABLATION reproducing the reference implementation's defect: {GENEMASK.name} with the PMI looked up "
    "by token position instead of token",
    paper_centre_prob=GENEMASK.paper_centre_prob,
    select=select_local_pmi_spans,
    score_lookup=ScoresByPosition,
))
GLOBAL_PMI = register(MaskStrategy(
    name="global_pmi",
    help="CM-GEMS's global masking, a wide span around each of the item's top-PMI tokens, as many as centres "
    "drawn",
    paper_centre_prob=0.15 / 11,  # one 11-token span per centre (CM-GEMS)
    select=select_global_pmi_spans,
    score_lookup=ScoresByToken,
    global_spans=True,
))
CM_GEMS = register(MaskStrategy(
    name="cm_gems",
    help=f"CM-GEMS curriculum: {GENEMASK.name}, then {GLOBAL_PMI.name} for good from the first validation "
    "whose perplexity moved by less than --cm-gems-threshold since the previous one (--cm-gems-rule)",
    paper_centre_prob=GENEMASK.paper_centre_prob,
    candidates=(GENEMASK, GLOBAL_PMI),
    curriculum=PerplexityPlateauSwitch,
))
CM_STEP = register(MaskStrategy(
    name="cm_step",
    help=f"CM-Step curriculum: at update u of --max-update U a batch uses {GLOBAL_PMI.name} with probability "
    f"floor(u/(U/100))/100, else {KMER_SPAN.name}",
    paper_centre_prob=KMER_SPAN.paper_centre_prob,
    candidates=(KMER_SPAN, GLOBAL_PMI),
    curriculum=StepwiseSchedule,
))
VARIABLE_SPAN = register(MaskStrategy(
    name="variable_span",
    help="DNABERT's span around each centre, its length drawn uniformly from k to --mask-boundary tokens "
    "(one stage of random_mask)",
    paper_centre_prob=0.15 / 9,  # ~15% of tokens at the default boundary 2k = 12 for k=6 (mean span 9)
    select=select_variable_spans,
))
RANDOM_MASK = register(MaskStrategy(
    name="random_mask",
    help=f"RandomMask curriculum (Liang et al.): {VARIABLE_SPAN.name} with its boundary widening from k to "
    "--mask-boundary tokens over --boundary-stages equal shares of --max-update, every stage masking about "
    f"the share of the first, {KMER_SPAN.name}",
    paper_centre_prob=KMER_SPAN.paper_centre_prob,  # its first stage is DNABERT's k-span masking
    candidates=(VARIABLE_SPAN,),
    candidate_configs=boundary_stage_configs,
    curriculum=BoundarySchedule,
))
PMI_SPAN = register(MaskStrategy(
    name="pmi_span",
    help="PMI-Masking (Levine et al.) for non-overlapping tokens (stride-k k-mers, single nucleotides, "
    "SentencePiece): whole collocations, the top token n-grams by PMI, and single tokens, drawn at random "
    "until --centre-prob of the item's tokens are masked",
    paper_centre_prob=0.15,  # BERT's budget, which Levine et al. keep
    select=select_pmi_units,
    score_lookup=CollocationUnits,
    paper_centre_prob_k=None,
))


# ---------------------------------------------------------------- derived text


def strategy_help() -> str:
    """The ``--mask-strategy`` help: every entry's name and help (argparse-safe: no ``%``)."""
    entries = "; ".join(
        f"{s.name}: {s.help}" + (" (needs --pmi-table)" if s.needs_pmi_table else "") for s in STRATEGIES.values()
    )
    return (
        f"{entries}. A curriculum's first candidate takes --centre-prob, the others their paper value. "
        "With a non-k-mer dictionary (e.g. SentencePiece) the base span is one token"
    )


def markdown_table() -> str:
    """The strategy table of ``docs/genemask_mlm.md``, from the entries."""
    rows = [
        "| `--mask-strategy` | masks | `--pmi-table` | default `--centre-prob` | counts as `global_pct` |",
        "|---|---|---|---|---|",
    ]
    for s in STRATEGIES.values():
        global_candidates = [f"`{c.name}`" for c in s.candidates if c.global_spans]
        if global_candidates:
            global_pct = "when a batch uses " + " or ".join(global_candidates)
        else:
            global_pct = "all" if s.global_spans else "none"
        rows.append(
            f"| `{s.name}` | {s.help} | {'needed' if s.needs_pmi_table else 'not used'} | "
            f"{s.paper_centre_prob:.4g} | {global_pct} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
