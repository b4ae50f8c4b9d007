"""The compute ladder's decision rule on made-up numbers: per-seed slopes, t-intervals, the outcome."""

import math

import numpy as np
import pytest
from scipy import stats

from genemask_plugin.fewshot.cell_record import CellRecord
from genemask_plugin.fewshot.effect_trend import (
    decide,
    effect_matrix,
    seed_effects,
    slopes_per_seed,
    t_interval,
)

BUDGETS = np.array([500, 1000, 2000, 4000, 8000])


def test_slopes_are_per_seed_least_squares_against_log2_updates():
    x = np.log2(BUDGETS)
    slopes = np.array([0.01, 0.02, -0.005])
    effects = np.array([0.3, -0.1, 0.05])[None, :] + x[:, None] * slopes[None, :]
    assert slopes_per_seed(BUDGETS, effects) == pytest.approx(slopes)
    noisy = effects.copy()
    noisy[2, 0] += 0.04  # a bump in the middle moves the fit as least squares says
    expected = np.polyfit(x, noisy[:, 0], 1)[0]
    assert slopes_per_seed(BUDGETS, noisy)[0] == pytest.approx(expected)
    effects[:4, 1] = np.nan  # one budget left: no slope
    assert math.isnan(slopes_per_seed(BUDGETS, effects)[1])


def test_t_interval_by_hand():
    values = [0.012, 0.004, 0.020, -0.003, 0.009]
    mean, low, high = t_interval(values)
    half = stats.t.ppf(0.975, 4) * np.std(values, ddof=1) / math.sqrt(5)
    assert mean == pytest.approx(np.mean(values))
    assert (low, high) == pytest.approx((np.mean(values) - half, np.mean(values) + half))
    assert half == pytest.approx(2.776445 * np.std(values, ddof=1) / math.sqrt(5), rel=1e-6)
    assert t_interval([0.1, np.nan, 0.3])[0] == pytest.approx(0.2)
    assert t_interval([0.25, 0.25, 0.25]) == (0.25, 0.25, 0.25)
    one = t_interval([0.5])
    assert one[0] == 0.5 and math.isnan(one[1]) and math.isnan(one[2])


def _effects(slopes, final_shift=0.0, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    x = np.log2(BUDGETS / BUDGETS[0])
    return final_shift + x[:, None] * np.asarray(slopes)[None, :] + noise * rng.standard_normal((5, len(slopes)))


def test_rising_effects_emerge():
    decision = decide(BUDGETS, _effects([0.010, 0.012, 0.008, 0.011, 0.009], noise=0.001))
    assert decision.emerges and decision.slope_low > 0 and decision.final_effect > 0
    assert decision.seeds == 5 and decision.final_budget == 8000
    assert decision.slope == pytest.approx(0.010, abs=0.002)


def test_a_slope_interval_reaching_zero_does_not_emerge():
    decision = decide(BUDGETS, _effects([0.010, -0.006, 0.012, 0.001, -0.004]))
    assert decision.slope > 0 and decision.slope_low < 0 and not decision.emerges


def test_a_rising_but_still_negative_effect_does_not_emerge():
    decision = decide(BUDGETS, _effects([0.010, 0.012, 0.008, 0.011, 0.009], final_shift=-0.08))
    assert decision.slope_low > 0 and decision.final_effect < 0 and not decision.emerges
    assert decision.as_dict()["emerges"] is False


def _record(label, dataset, shots, seed, accuracy, method="probe"):
    return CellRecord(checkpoint=label, dataset=dataset, shots=shots, seed=seed,
                      metrics={"accuracy": accuracy, "macro_f1": None, "mcc": None, "auroc": None},
                      train_per_class={"0": shots, "1": shots}, n_train=2 * shots, n_test=100, excluded_overlap=0,
                      predicted_per_class={}, seconds=1.0, settings={}, method=method, draw="per-class")


def test_seed_effects_pool_cells_after_averaging_evaluation_seeds():
    records = []
    for pretraining_seed, (gm, ks) in {1: (0.70, 0.60), 2: (0.66, 0.65)}.items():
        for dataset, bonus in (("Prom-core", 0.0), ("Prom-300", 0.1)):
            for evaluation_seed, wobble in ((1, -0.01), (2, 0.01)):
                records.append(_record(f"genemask@{pretraining_seed}", dataset, 10, evaluation_seed, gm + bonus + wobble))
                records.append(_record(f"kmer_span@{pretraining_seed}", dataset, 10, evaluation_seed, ks + bonus))
        records.append(_record(f"genemask@{pretraining_seed}", "Prom-core", 10, 1, 0.0, method="finetune"))
    records.append(_record("no pretraining", "Prom-core", 10, 1, 0.5))
    effects = seed_effects(records, "genemask", "kmer_span")
    assert effects == pytest.approx({1: 0.10, 2: 0.01})
    assert seed_effects(records, "genemask", "kmer_span", method="finetune") == {}  # no kmer_span fine-tuning cells
    budgets, seeds, matrix = effect_matrix({1000: effects, 500: {1: 0.05}})
    assert budgets.tolist() == [500, 1000] and seeds == [1, 2]
    assert matrix[0, 0] == 0.05 and math.isnan(matrix[0, 1]) and matrix[1].tolist() == pytest.approx([0.10, 0.01])
