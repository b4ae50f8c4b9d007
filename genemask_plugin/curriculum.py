"""Mask curricula of the GeneMask authors' follow-up (CM-GEMS, Roy et al., ECAI 2024): which mask a batch uses.

Pure Python and numpy (no fairseq), so the rules are unit-tested on scripted numbers. Every
item carries two candidate masks, each a pure function of ``(seed, epoch, index)``
(:class:`~genemask_plugin.data.genemask_mask_dataset.GeneMaskMaskDataset`); the task's
train step picks one per batch with :meth:`MaskCurriculum.batch_uses_global_pmi`, a pure
function of ``(seed, update, batch ids)`` and of the curriculum state. Data-loader
workers therefore never need the update count, and the choice is the same with any
number of workers, on any rank, and after a resume.

- ``cm_gems``: ``genemask`` (local) masking until the first validation at which the
  validation perplexity dropped by less than ``threshold`` since the previous
  validation; ``global_pmi`` from then on, for good. (The released code goes local ->
  global, although its help text says the reverse.)
- ``cm_step``: at update u of U, a batch uses ``global_pmi`` with probability
  ``floor(u / (U / 100)) / 100``, else ``kmer_span``: 100 steps from 0 to 1.
"""

from __future__ import annotations

import math

import numpy as np

CURRICULA = ("none", "cm_gems", "cm_step")
LOCAL_STRATEGY = {"cm_gems": "genemask", "cm_step": "kmer_span"}
"""The strategy each curriculum starts from (and, for cm_step, mixes with global_pmi)."""


def cm_step_global_probability(update: int, max_update: int) -> float:
    """``floor(u / (U / 100)) / 100``, in integer arithmetic (no float edge at whole steps), capped at 1."""
    return min(100 * int(update) // int(max_update), 100) / 100


class MaskCurriculum:
    """The curriculum's rule and state; the state is what a checkpoint must hold.

    Args:
        kind: ``cm_gems`` or ``cm_step``.
        seed: the run's seed (the per-batch draws of cm_step derive from it).
        threshold: cm_gems's perplexity-drop threshold (> 0).
        max_update: cm_step's U (> 0).
    """

    def __init__(self, kind: str, seed: int, threshold: float = 1.0, max_update: int | None = None):
        if kind not in LOCAL_STRATEGY:
            raise ValueError(f"unknown mask curriculum {kind!r}; choose from {', '.join(CURRICULA)}")
        if not (threshold > 0 and math.isfinite(threshold)):
            raise ValueError(f"--cm-gems-threshold must be a positive perplexity drop, got {threshold}")
        if kind == "cm_step" and not (isinstance(max_update, int) and max_update > 0):
            raise ValueError("--mask-curriculum cm_step needs --max-update (its schedule runs over U updates)")
        self.kind = kind
        self.seed = int(seed)
        self.threshold = float(threshold)
        self.max_update = max_update
        self.switch_update: int | None = None
        """cm_gems: the first update trained with global_pmi masks, once switched."""
        self.valid_history: list[tuple[int, float]] = []
        """cm_gems: ``(update, validation perplexity)`` of every validation so far."""
        self.num_updates = 0
        """Updates trained so far (for the logs; the rules take the update as an argument)."""

    @property
    def local_strategy(self) -> str:
        return LOCAL_STRATEGY[self.kind]

    def global_probability(self, update: int) -> float:
        """The probability that a training batch at ``update`` uses global_pmi masks."""
        if self.kind == "cm_step":
            return cm_step_global_probability(update, self.max_update)
        return 1.0 if self.switch_update is not None and update >= self.switch_update else 0.0

    def batch_uses_global_pmi(self, update: int, batch_ids) -> bool:
        """Whether the training batch of these item ids uses its global_pmi masks at ``update``.

        The draw is seeded by ``(seed, update, sorted ids)``, so it does not depend on the
        order of items in the batch, the worker count, or the rank that holds the batch.
        """
        p = self.global_probability(update)
        if p <= 0.0 or p >= 1.0:
            return p >= 1.0
        ids = np.sort(np.asarray(batch_ids, dtype=np.int64).reshape(-1))
        return bool(np.random.default_rng([self.seed, int(update), *ids.tolist()]).random() < p)

    def validation_uses_global_pmi(self) -> bool:
        """Validation masks: cm_gems validates in its current regime; cm_step always with kmer_span,
        so its validation perplexities stay comparable along the schedule."""
        return self.kind == "cm_gems" and self.switch_update is not None

    def observe_validation(self, update: int, perplexity: float) -> bool:
        """cm_gems: record a validation; True when it triggers the (one, permanent) switch."""
        if self.kind != "cm_gems":
            return False
        previous = self.valid_history[-1][1] if self.valid_history else None
        self.valid_history.append((int(update), float(perplexity)))
        if self.switch_update is None and previous is not None and previous - perplexity < self.threshold:
            self.switch_update = int(update)
            return True
        return False

    def describe(self) -> str:
        """The regime in words, for logs and fairseq-validate."""
        if self.kind == "cm_step":
            return (
                f"cm_step after {self.num_updates} of {self.max_update} updates: kmer_span, global_pmi for "
                f"{self.global_probability(self.num_updates):.0%} of the next batches (floor(u / (U / 100)) / 100)"
            )
        if self.switch_update is None:
            return f"cm_gems: genemask (local) masking, not yet switched ({len(self.valid_history)} validations seen)"
        return f"cm_gems: global_pmi masking since update {self.switch_update}"

    def state_dict(self) -> dict:
        return {
            "kind": self.kind,
            "num_updates": self.num_updates,
            "switch_update": self.switch_update,
            "valid_history": [list(entry) for entry in self.valid_history],
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("kind") != self.kind:
            raise ValueError(
                f"the checkpoint was trained with --mask-curriculum {state.get('kind')}, "
                f"not {self.kind}; resume with the same curriculum"
            )
        self.num_updates = int(state.get("num_updates", 0))
        self.switch_update = state["switch_update"]
        self.valid_history = [(int(u), float(p)) for u, p in state["valid_history"]]
