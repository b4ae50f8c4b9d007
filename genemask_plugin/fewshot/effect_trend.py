"""An effect against compute: the compute ladder's decision rule (docs/results/compute_ladder/README.md).

The ladder scores every (strategy, pretraining seed) at several budgets (updates of one run). At each
budget b and for each pretraining seed s, the effect ``d_s(b)`` is the reference's metric minus the
baseline's, averaged over the method's cells (dataset x shots) after each cell's evaluation seeds are
averaged: the seed means of ``genemask-fewshot stats`` (:mod:`.statistics`), paired by seed.

The rule, written before the ladder ran: the reference's advantage *emerges with compute* only if the
slope of ``d_s(b)`` against ``log2(b)``, fitted by least squares per pretraining seed, has a 95%
t-interval over the seeds (df = seeds - 1) above 0, **and** the effect at the largest budget (the
mean over seeds) is positive. Pure numpy and scipy; :func:`decide` on made-up numbers is the test.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from .cell_record import CellRecord
from .statistics import paired_differences, pretraining_seed_means

LEVEL = 0.95


def seed_effects(records: list[CellRecord], reference: str, baseline: str, method: str = "probe",
                 metric: str = "accuracy") -> dict[int, float]:
    """``{pretraining seed: reference - baseline}``, the mean paired difference over ``method``'s cells."""
    means = pretraining_seed_means(records, metric)
    cells = [c for c in means if c[0] == method and reference in means[c] and baseline in means[c]]
    if not cells:
        return {}
    diffs, seeds = paired_differences(means, reference, baseline, cells)
    out = {}
    for j, seed in enumerate(seeds):
        column = diffs[:, j][~np.isnan(diffs[:, j])]
        if column.size:
            out[seed] = float(column.mean())
    return out


def effect_matrix(effects_by_budget: dict[int, dict[int, float]]) -> tuple[np.ndarray, list[int], np.ndarray]:
    """``(budgets, seeds, effects)``: budgets ascending, ``effects[i, j]`` at budget i for seed j (NaN if missing)."""
    budgets = np.array(sorted(effects_by_budget), dtype=np.int64)
    seeds = sorted({s for by_seed in effects_by_budget.values() for s in by_seed})
    effects = np.full((len(budgets), len(seeds)), np.nan)
    for i, budget in enumerate(budgets):
        for j, seed in enumerate(seeds):
            effects[i, j] = effects_by_budget[int(budget)].get(seed, np.nan)
    return budgets, seeds, effects


def slopes_per_seed(budgets: np.ndarray, effects: np.ndarray) -> np.ndarray:
    """Per seed (column), the least-squares slope of its effects against ``log2(budget)`` (NaN if < 2 budgets)."""
    x = np.log2(np.asarray(budgets, dtype=np.float64))
    slopes = np.full(effects.shape[1], np.nan)
    for j in range(effects.shape[1]):
        have = ~np.isnan(effects[:, j])
        if np.unique(x[have]).size >= 2:
            slopes[j] = np.polyfit(x[have], effects[have, j], 1)[0]
    return slopes


def t_interval(values, level: float = LEVEL) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of ``values`` (NaN dropped) and its t-interval, df = n - 1."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if values.size < 2:
        return mean, math.nan, math.nan
    scale = float(stats.sem(values))
    if scale == 0:  # identical values: the interval is the point (scipy would give NaN)
        return mean, mean, mean
    low, high = stats.t.interval(level, values.size - 1, loc=mean, scale=scale)
    return mean, float(low), float(high)


@dataclass(frozen=True)
class TrendDecision:
    """The rule's inputs and its outcome."""

    slope: float
    """Mean over seeds of the per-seed slope, effect per doubling of the updates."""
    slope_low: float
    slope_high: float
    final_budget: int
    final_effect: float
    """Mean over seeds of the effect at the largest budget."""
    final_low: float
    final_high: float
    seeds: int
    """Pretraining seeds with a slope."""
    emerges: bool
    """The slope's interval lies above 0 and the final effect is positive."""

    def as_dict(self) -> dict:
        return asdict(self)


def decide(budgets: np.ndarray, effects: np.ndarray, level: float = LEVEL) -> TrendDecision:
    """The decision rule on an effect matrix (:func:`effect_matrix`)."""
    slopes = slopes_per_seed(budgets, effects)
    slope, slope_low, slope_high = t_interval(slopes, level)
    final, final_low, final_high = t_interval(effects[-1], level)
    emerges = bool(slope_low > 0 and final > 0)  # False when either is NaN
    return TrendDecision(slope, slope_low, slope_high, int(budgets[-1]), final, final_low, final_high,
                         int(np.count_nonzero(~np.isnan(slopes))), emerges)
