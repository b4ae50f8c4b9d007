"""Mask curricula: which of an item's candidate masks a batch uses, as training goes on.

Pure Python and numpy (no fairseq), so the rules are unit-tested on scripted numbers. A
curriculum is a strategy entry with candidates (:mod:`~genemask_plugin.masking.strategies`):
every item carries one mask per candidate, each a pure function of ``(seed, epoch, index)``
(:class:`~genemask_plugin.data.genemask_mask_dataset.GeneMaskMaskDataset`), and the task's
train step keeps the one :meth:`MaskCurriculum.batch_candidate` picks, a pure function of
``(seed, update, batch ids)`` and of the curriculum's state. Data-loader workers therefore
never need the update count, and the choice is the same with any number of workers, on any
rank, and after a resume.

The two rules of the GeneMask authors' follow-up (CM-GEMS, Roy et al., ECAI 2024), both over
two candidates, a local strategy and then global PMI masking:

- :class:`PerplexityPlateauSwitch` (``cm_gems``): the first candidate until the first
  validation at which the validation perplexity moved by less than the threshold, either way,
  since the previous validation; the second from then on, for good. That is the authors' rule:
  their code switches once the smallest absolute change between consecutive validation
  perplexities falls below the threshold, which, the smallest over a growing list, happens
  first at such a validation and then stays so. (The released code goes local -> global,
  although its help text says the reverse.) ``--cm-gems-rule drop`` keeps this project's
  earlier rule: a drop below the threshold, so that any rise switches.
- :class:`StepwiseSchedule` (``cm_step``): at update u of U, a batch uses the second candidate
  with probability ``floor(u / (U / 100)) / 100``, else the first: 100 steps from 0 to 1.

RandomMask's rule (Liang et al., arXiv 2310.07644), over S candidates that are one span selector
at S mask boundaries (:func:`boundary_stage_configs`, the entry's ``candidate_configs``):

- :class:`BoundarySchedule` (``random_mask``): at update u of U, every batch uses stage
  ``min(floor(S * u / U), S - 1)``: the boundary widens in S equal shares of training.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from genemask_plugin.masking.config import MaskingConfig


def boundary_stage(update: int, max_update: int, stages: int) -> int:
    """RandomMask's stage at ``update`` of ``max_update``: ``min(floor(stages * u / U), stages - 1)``, in integers."""
    return min(int(stages) * int(update) // int(max_update), int(stages) - 1)


def boundary_stage_configs(config: MaskingConfig) -> tuple[MaskingConfig, ...]:
    """RandomMask's candidates: the entry's one candidate strategy at each stage's mask boundary.

    With base span b (k tokens; 1 for non-overlapping tokens), final boundary B
    (``config.mask_boundary``) and S stages (``config.boundary_stages``), stage s masks spans of
    b .. B_s tokens, ``B_s = b + round(s * (B - b) / (S - 1))``: b (DNABERT's k-span) first, B
    last. Stage s's centre probability is ``config.centre_prob * b / mean span``, mean span
    ``(b + B_s) / 2``, so every stage masks about the same share of tokens as the first.
    """
    (stage_strategy,) = config.strategy_entry.candidates
    base = 1 if config.k is None else int(config.k)
    stages, boundary = int(config.boundary_stages), int(config.mask_boundary)
    if stages - 1 > boundary - base:
        raise ValueError(
            f"{stages} boundary stages need a mask boundary of at least {base + stages - 1} tokens "
            f"(one more token per stage from the base span of {base}), got {boundary}"
        )
    configs = []
    for s in range(stages):
        stage_boundary = base + (2 * s * (boundary - base) + stages - 1) // (2 * (stages - 1))
        centre_prob = config.centre_prob * base / ((base + stage_boundary) / 2)
        configs.append(replace(config, strategy=stage_strategy.name, mask_boundary=stage_boundary,
                               centre_prob=centre_prob))
    return tuple(configs)


SWITCH_ON_CHANGE = "change"
"""CM-GEMS switches when perplexity moved by less than the threshold either way (the authors' code)."""
SWITCH_ON_DROP = "drop"
"""CM-GEMS switches when perplexity dropped by less than the threshold (a rise always switches)."""
SWITCH_RULES = (SWITCH_ON_CHANGE, SWITCH_ON_DROP)


def plateaued(previous: float, current: float, threshold: float, rule: str = SWITCH_ON_CHANGE) -> bool:
    """Whether validation perplexity has plateaued between two consecutive validations, by ``rule``."""
    drop = previous - current
    return (abs(drop) if rule == SWITCH_ON_CHANGE else drop) < threshold


def stepwise_probability(update: int, max_update: int) -> float:
    """``floor(u / (U / 100)) / 100``, in integer arithmetic (no float edge at whole steps), capped at 1."""
    return min(100 * int(update) // int(max_update), 100) / 100


class MaskCurriculum:
    """A rule that picks one of an item's candidate masks per batch, and its state (what a checkpoint holds).

    Args:
        config: the curriculum's masking config: its ``strategy`` names the curriculum,
            its ``candidates()`` are the masks every item carries, in the entry's order.
        seed: the run's seed (per-batch draws derive from it).
        max_update: the run's ``--max-update`` (None when unset).
    """

    def __init__(self, config: MaskingConfig, seed: int, max_update: int | None = None):
        self.name = config.strategy
        self.candidates = tuple(candidate.strategy for candidate in config.candidates())
        self.seed = int(seed)
        self.max_update = max_update
        self.num_updates = 0
        """Updates trained so far (for the logs; the rules take the update as an argument)."""

    def batch_candidate(self, update: int, batch_ids) -> int:
        """Index of the candidate the training batch of these item ids uses at ``update``."""
        raise NotImplementedError

    def validation_candidate(self) -> int:
        """Index of the candidate validation batches use."""
        return 0

    def observe_validation(self, update: int, perplexity: float) -> bool:
        """Record a validation's perplexity; True when it changes the rule's regime."""
        return False

    def describe(self) -> str:
        """The regime in words, for logs and fairseq-validate."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {"kind": self.name, "num_updates": self.num_updates}

    def load_state_dict(self, state: dict) -> None:
        if state.get("kind") != self.name:
            raise ValueError(
                f"the checkpoint was trained with --mask-strategy {state.get('kind')}, "
                f"not {self.name}; resume with the same strategy"
            )
        self.num_updates = int(state.get("num_updates", 0))


class TwoCandidateCurriculum(MaskCurriculum):
    """A rule that moves batches from the first of two candidates to the second.

    A batch at update u uses the second candidate with probability :meth:`second_probability`;
    between 0 and 1 the draw is seeded by ``(seed, u, sorted batch ids)``, so it does not depend
    on the order of items in the batch, the worker count, or the rank that holds the batch.
    """

    def __init__(self, config: MaskingConfig, seed: int, max_update: int | None = None):
        super().__init__(config, seed, max_update)
        if len(self.candidates) != 2:
            raise ValueError(f"mask curriculum {self.name} needs two candidates, got {len(self.candidates)}")

    def second_probability(self, update: int) -> float:
        """The probability that a training batch at ``update`` uses the second candidate."""
        raise NotImplementedError

    def batch_candidate(self, update: int, batch_ids) -> int:
        p = self.second_probability(update)
        if p <= 0.0 or p >= 1.0:
            return int(p >= 1.0)
        ids = np.sort(np.asarray(batch_ids, dtype=np.int64).reshape(-1))
        return int(np.random.default_rng([self.seed, int(update), *ids.tolist()]).random() < p)


class PerplexityPlateauSwitch(TwoCandidateCurriculum):
    """CM-GEMS's rule: switch to the second candidate, for good, once validation perplexity plateaus.

    The threshold is ``config.cm_gems_threshold`` and the rule ``config.cm_gems_rule``
    (:func:`plateaued`): by default the switch comes at the first validation whose perplexity
    moved by less than the threshold, either way, since the previous validation. Validation
    uses the current regime.
    """

    def __init__(self, config: MaskingConfig, seed: int, max_update: int | None = None):
        super().__init__(config, seed, max_update)
        self.threshold = float(config.cm_gems_threshold)
        self.rule = config.cm_gems_rule
        self.switch_update: int | None = None
        """The first update trained with the second candidate, once switched."""
        self.valid_history: list[tuple[int, float]] = []
        """``(update, validation perplexity)`` of every validation so far."""

    def second_probability(self, update: int) -> float:
        return 1.0 if self.switch_update is not None and update >= self.switch_update else 0.0

    def validation_candidate(self) -> int:
        return int(self.switch_update is not None)

    def observe_validation(self, update: int, perplexity: float) -> bool:
        previous = self.valid_history[-1][1] if self.valid_history else None
        self.valid_history.append((int(update), float(perplexity)))
        if self.switch_update is None and previous is not None and plateaued(
            previous, perplexity, self.threshold, self.rule
        ):
            self.switch_update = int(update)
            return True
        return False

    def describe(self) -> str:
        first, second = self.candidates
        if self.switch_update is None:
            return f"{self.name}: {first} (local) masking, not yet switched ({len(self.valid_history)} validations seen)"
        return f"{self.name}: {second} masking since update {self.switch_update}"

    def state_dict(self) -> dict:
        return {
            **super().state_dict(),
            "switch_update": self.switch_update,
            "valid_history": [list(entry) for entry in self.valid_history],
        }

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.switch_update = state["switch_update"]
        self.valid_history = [(int(u), float(p)) for u, p in state["valid_history"]]


class StepwiseSchedule(TwoCandidateCurriculum):
    """CM-Step's rule: at update u of U, the second candidate with probability ``floor(u / (U / 100)) / 100``.

    Validation always uses the first candidate, so validation perplexities stay comparable
    along the schedule.
    """

    def __init__(self, config: MaskingConfig, seed: int, max_update: int | None = None):
        super().__init__(config, seed, max_update)
        if not (isinstance(max_update, int) and max_update > 0):
            raise ValueError(f"--mask-strategy {self.name} needs --max-update (its schedule runs over U updates)")

    def second_probability(self, update: int) -> float:
        return stepwise_probability(update, self.max_update)

    def describe(self) -> str:
        first, second = self.candidates
        return (
            f"{self.name} after {self.num_updates} of {self.max_update} updates: {first}, {second} for "
            f"{self.second_probability(self.num_updates):.0%} of the next batches (floor(u / (U / 100)) / 100)"
        )


class BoundarySchedule(MaskCurriculum):
    """RandomMask's rule: the mask boundary widens with the update, stage by stage.

    At update u of U (``--max-update``), every training batch uses stage
    :func:`boundary_stage`; the stages are the candidates of :func:`boundary_stage_configs`.
    The rule is a pure function of the update, the same for every batch, worker and rank.
    Validation always uses the first stage (DNABERT's k-span), so validation perplexities stay
    comparable along the schedule, as ``cm_step``'s do.
    """

    def __init__(self, config: MaskingConfig, seed: int, max_update: int | None = None):
        super().__init__(config, seed, max_update)
        if not (isinstance(max_update, int) and max_update > 0):
            raise ValueError(f"--mask-strategy {self.name} needs --max-update (its schedule runs over U updates)")
        self.boundaries = tuple(candidate.mask_boundary for candidate in config.candidates())
        self.base_span = 1 if config.k is None else int(config.k)

    def batch_candidate(self, update: int, batch_ids) -> int:
        return boundary_stage(update, self.max_update, len(self.boundaries))

    def boundary_at(self, update: int) -> int:
        """The mask boundary (longest span, in tokens) of training batches at ``update``."""
        return self.boundaries[self.batch_candidate(update, ())]

    def describe(self) -> str:
        stage = self.batch_candidate(self.num_updates, ())
        return (
            f"{self.name} after {self.num_updates} of {self.max_update} updates: stage {stage + 1} of "
            f"{len(self.boundaries)}, spans of {self.base_span}..{self.boundaries[stage]} tokens "
            f"(boundaries {', '.join(map(str, self.boundaries))})"
        )
