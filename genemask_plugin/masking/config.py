"""``MaskingConfig``: the one declaration of every masking setting (default, help, validation).

The ``genemask_mlm`` task's masking flags are generated from these fields (name, type,
default and help; ``strategy`` is ``--mask-strategy``) and a config is read back from the
parsed flags with :meth:`MaskingConfig.from_flags`, so a setting is added here and nowhere else.

The field types are real types (no ``from __future__ import annotations``, ``Optional``
rather than ``X | None``) because fairseq builds the flags from them.
"""

import math
from dataclasses import Field, dataclass, field, fields, replace
from typing import Optional

from genemask_plugin.masking.curricula import SWITCH_ON_CHANGE, SWITCH_ON_DROP, SWITCH_RULES
from genemask_plugin.masking.strategies import (
    CM_GEMS,
    GENEMASK,
    GLOBAL_PMI,
    PMI_SPAN,
    RANDOM,
    RANDOM_MASK,
    STRATEGIES,
    VARIABLE_SPAN,
    MaskStrategy,
    strategy_help,
    strategy_named,
)

PMI_SPAN_COLLOCATIONS = 100_000


def _setting(default, help: str, flag: Optional[str] = "", choices: Optional[tuple] = None):  # noqa: UP045
    """A setting; ``flag`` is its task field ('' = the same name, None = no flag)."""
    return field(default=default, metadata={"help": help, "flag": flag, "choices": choices})


def _paper_centre_probs() -> str:
    return ", ".join(f"{s.name} {s.paper_centre_prob:.4g}" for s in STRATEGIES.values() if not s.is_curriculum)


@dataclass(frozen=True)
class MaskingConfig:
    """The strategy and every setting of the masking; the defaults are the papers'.

    Each field's ``metadata``: ``help`` (the flag's help, argparse-escaped: ``%%`` for a percent
    sign), ``flag`` (its task field name) and ``choices``.
    """

    strategy: str = _setting(GENEMASK.name, strategy_help(), flag="mask_strategy", choices=tuple(STRATEGIES))
    k: Optional[int] = _setting(  # noqa: UP045 (fairseq needs typing.Optional)
        6, "k of the overlapping k-mer tokens (sets the base span); None for non-overlapping tokens", flag=None
    )
    centre_prob: Optional[float] = _setting(  # noqa: UP045
        None,
        f"probability that a token is a mask centre (for {RANDOM.name}: that it is masked; for {PMI_SPAN.name}: "
        "the fraction of an item's tokens masked, its budget); default: the "
        f"paper's value for the strategy {_paper_centre_probs()} (all but {RANDOM.name} target ~15%% of "
        "6-mer tokens); a curriculum's first candidate takes it, the others keep their paper value",
    )
    wide_half_width: int = _setting(
        5,
        f"half-width h of the wide span (2h+1 tokens) around a best-PMI token ({GLOBAL_PMI.name}: around "
        "each top token)",
    )
    high_fraction: float = _setting(0.5, "fraction of centres, best by PMI, that also mask the wide span")
    all_wide_below: int = _setting(
        5,
        "if fewer than this many centres are in the high set, all centres get the wide span "
        "(the authors' code: 5, so items with 2-8 centres widen every centre; 0 = off, the top fraction only)",
    )
    leave_unmasked_prob: float = _setting(0.1, "probability that a masked token is left unchanged")
    random_token_prob: float = _setting(
        0.1,
        "probability that a masked token is replaced by a random regular token (never a special, never <mask>)",
    )
    cm_gems_threshold: float = _setting(
        1.0, f"{CM_GEMS.name}: switch when validation perplexity changes by less than this (> 0)"
    )
    cm_gems_rule: str = _setting(
        SWITCH_ON_CHANGE,
        f"{CM_GEMS.name}: {SWITCH_ON_CHANGE} switches at the first validation whose perplexity moved by less than "
        f"the threshold either way since the previous one (the authors' code); {SWITCH_ON_DROP} at the first whose "
        "perplexity dropped by less than it, so any rise switches",
        choices=SWITCH_RULES,
    )
    later_centre_prob: Optional[float] = _setting(  # noqa: UP045
        None,
        f"under a curriculum, the centre probability of every candidate after the first (default: each one's "
        f"paper value, {GLOBAL_PMI.name} 0.15/11; the authors' CM-GEMS code reads --mlm_probability here)",
    )
    mask_boundary: Optional[int] = _setting(  # noqa: UP045
        None,
        f"{VARIABLE_SPAN.name}: the longest span, in tokens (at least k); {RANDOM_MASK.name}: the boundary of "
        "its last stage; default: 2k",
    )
    boundary_stages: int = _setting(
        4,
        f"{RANDOM_MASK.name}: the number of stages, equal shares of --max-update, over which the boundary "
        "widens evenly from k to --mask-boundary (>= 2)",
    )
    pmi_span_max_n: int = _setting(5, f"{PMI_SPAN.name}: longest collocation, in tokens (Levine et al.: 5)")
    pmi_span_collocations: int = _setting(
        PMI_SPAN_COLLOCATIONS,
        f"{PMI_SPAN.name}: collocations in the masking vocabulary, split over n = 2..--pmi-span-max-n as Levine "
        "et al. (half bigrams, a quarter trigrams, and so on, the longest n taking the rest), each n's best by "
        "--pmi-column among those with npmi > 0",
    )

    def __post_init__(self):
        object.__setattr__(self, "strategy", str(self.strategy))  # fairseq's ChoiceEnum -> its name
        entry = strategy_named(self.strategy)
        if self.centre_prob is None:
            object.__setattr__(self, "centre_prob", entry.paper_centre_prob)
        for what, value in (("centre probability", self.centre_prob), ("later centre probability",
                                                                      self.later_centre_prob)):
            if value is not None and not 0.0 < value <= 1.0:
                raise ValueError(f"{what} must be in (0, 1], got {value}")
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
        if self.pmi_span_max_n < 2:
            raise ValueError(f"the longest collocation must be 2 or more tokens, got {self.pmi_span_max_n}")
        if self.pmi_span_collocations < 1:
            raise ValueError(f"the collocation vocabulary needs 1 or more n-grams, got {self.pmi_span_collocations}")
        object.__setattr__(self, "cm_gems_rule", str(self.cm_gems_rule))  # fairseq's ChoiceEnum -> its name
        if self.cm_gems_rule not in SWITCH_RULES:
            raise ValueError(f"unknown {CM_GEMS.name} rule {self.cm_gems_rule!r}; choose from {', '.join(SWITCH_RULES)}")
        if not (self.cm_gems_threshold > 0 and math.isfinite(self.cm_gems_threshold)):
            raise ValueError(
                f"the {CM_GEMS.name} threshold must be a positive perplexity drop, got {self.cm_gems_threshold}"
            )
        base_span = 1 if self.k is None else self.k
        if self.mask_boundary is None:
            object.__setattr__(self, "mask_boundary", 2 * base_span)
        if self.mask_boundary < base_span:
            raise ValueError(f"the mask boundary must be at least the base span, {base_span} tokens, got {self.mask_boundary}")
        if self.boundary_stages < 2:
            raise ValueError(f"boundary stages must be >= 2, got {self.boundary_stages}")

    @classmethod
    def flags(cls) -> dict[str, Field]:
        """The settings that are task flags: ``{task field name: this class's field}``, in field order."""
        return {f.metadata["flag"] or f.name: f for f in fields(cls) if f.metadata["flag"] is not None}

    @classmethod
    def from_flags(cls, flags, **settings) -> "MaskingConfig":
        """The config of a parsed task config (anything with one attribute per flag);
        ``settings`` override them and give the rest (``k``)."""
        return cls(**{**{f.name: getattr(flags, name) for name, f in cls.flags().items()}, **settings})

    @property
    def strategy_entry(self) -> MaskStrategy:
        """The registry entry of ``strategy``."""
        return STRATEGIES[self.strategy]

    @property
    def uses_pmi(self) -> bool:
        return self.strategy_entry.needs_pmi_table

    def candidates(self) -> tuple["MaskingConfig", ...]:
        """The configs of the masks every item carries: this one, or a curriculum's candidates.

        A curriculum's first candidate takes this config's centre probability (set or the
        paper's, which is the first candidate's); the others take ``later_centre_prob``, by
        default their own paper value. An entry with ``candidate_configs`` (RandomMask's stages)
        builds them itself.
        """
        entry = self.strategy_entry
        if not entry.is_curriculum:
            return (self,)
        if entry.candidate_configs is not None:
            return entry.candidate_configs(self)
        return tuple(
            replace(self, strategy=candidate.name, centre_prob=self.centre_prob if i == 0 else self.later_centre_prob)
            for i, candidate in enumerate(entry.candidates)
        )
