"""Paired statistics over pretraining seeds (genemask_plugin.fewshot.statistics)."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from genemask_plugin.fewshot import statistics as st
from genemask_plugin.fewshot.cell_record import CellRecord
from genemask_plugin.fewshot.cli import main

CELLS = [("Prom-core", 10), ("Prom-core", 50), ("Splice-40", 10), ("Splice-40", 50)]
SETTLE = Path(__file__).resolve().parents[3] / "docs" / "results" / "settle_experiment"


def records(shift, noise=0.02, seeds=5, eval_seeds=3, rng_seed=0, method="probe"):
    """genemask = kmer_span + shift (+ noise) in every cell; 'no pretraining' at 0.5; eval seeds vary."""
    rng = np.random.default_rng(rng_seed)
    out = []
    for dataset, shots in CELLS:
        for pseed in range(1, seeds + 1):
            base = 0.6 + 0.03 * rng.normal()  # a pretraining seed's own level, shared by the pair
            for strategy, value in (("kmer_span", base), ("genemask", base + shift + noise * rng.normal())):
                for eseed in range(1, eval_seeds + 1):
                    out.append(record(f"{strategy}@{pseed}", dataset, shots, eseed, value + 0.01 * (eseed - 2),
                                      method))
        for eseed in range(1, eval_seeds + 1):
            out.append(record("no pretraining", dataset, shots, eseed, 0.5, method))
    return out


def record(label, dataset, shots, seed, accuracy, method="probe"):
    metrics = {"accuracy": accuracy, "macro_f1": accuracy, "mcc": 2 * accuracy - 1, "auroc": None}
    return CellRecord(label, dataset, shots, seed, metrics, train_per_class={"0": 10, "1": 10}, n_train=20,
                      n_test=100, excluded_overlap=0, predicted_per_class={"0": 50, "1": 50}, seconds=1.0,
                      settings={}, method=method, draw="per-class")


def test_split_label():
    assert st.split_label("genemask_position@12") == ("genemask_position", 12)
    assert st.split_label("no pretraining") == ("no pretraining", None)
    assert st.split_label("a@b") == ("a@b", None)


def test_evaluation_seeds_are_averaged_within_a_pretraining_seed():
    means = st.pretraining_seed_means([
        record("genemask@1", "Prom-core", 10, 1, 0.6), record("genemask@1", "Prom-core", 10, 2, 0.8),
        record("genemask@2", "Prom-core", 10, 1, 0.5),
    ])
    cell = means[("probe", "Prom-core", 10)]["genemask"]
    assert cell[1].mean == pytest.approx(0.7) and cell[1].n_eval == 2
    assert cell[1].eval_std == pytest.approx(np.std([0.6, 0.8], ddof=1))
    assert cell[2].mean == 0.5 and np.isnan(cell[2].eval_std)


def test_a_real_effect_is_found_with_a_t_interval_that_excludes_zero():
    rows = st.comparison_rows(records(shift=0.05), "genemask", metrics=["accuracy"])
    pooled = next(r for r in rows if r["dataset"] == st.ALL_CELLS and r["baseline"] == "kmer_span")
    assert pooled["effect"] == pytest.approx(0.05, abs=0.01)
    assert 0 < pooled["ci_low"] < pooled["effect"] < pooled["ci_high"]
    assert 0 < pooled["bootstrap_low"] < pooled["effect"] < pooled["bootstrap_high"]
    assert pooled["p_t"] < 1e-3 and pooled["df"] == 4 and pooled["p_t"] <= pooled["p_holm"] < 0.05
    assert pooled["pairs"] == 20 and pooled["pretraining_seeds"] == 5
    assert pooled["p_wilcoxon_seeds"] == pytest.approx(0.0625)  # 5 seeds, all positive: the smallest p
    floor = next(r for r in rows if r["dataset"] == st.ALL_CELLS and r["baseline"] == "no pretraining")
    assert floor["effect"] > 0.1 and floor["pairs"] == 20  # the single model stands for every seed


def test_no_effect_gives_a_t_interval_around_zero_and_a_large_p():
    rows = st.comparison_rows(records(shift=0.0), "genemask", metrics=["accuracy"])
    pooled = next(r for r in rows if r["dataset"] == st.ALL_CELLS and r["baseline"] == "kmer_span")
    assert pooled["ci_low"] < 0 < pooled["ci_high"] and pooled["p_t"] > 0.05 and pooled["p_holm"] >= pooled["p_t"]
    per_cell = [r for r in rows if r["dataset"] != st.ALL_CELLS and r["baseline"] == "kmer_span"]
    assert len(per_cell) == 4 and all(r["pairs"] == 5 for r in per_cell)


def test_the_effect_is_the_mean_of_the_pretraining_seeds_mean_differences():
    means = st.pretraining_seed_means(records(shift=0.03, noise=0.02))
    cells = list(means)
    del means[cells[0]]["genemask"][1]  # seed 1 misses one cell: its mean is over the other three
    diffs, _ = st.paired_differences(means, "genemask", "kmer_span", cells)
    by_seed = st.seed_mean_differences(diffs)
    assert np.isnan(diffs[0, 0]) and by_seed[0] == pytest.approx(np.mean(diffs[1:, 0]))
    assert by_seed[1:] == pytest.approx(diffs[:, 1:].mean(axis=0))
    row = st.compare(means, "genemask", "kmer_span", cells)
    assert row["effect"] == pytest.approx(np.mean(by_seed)) != pytest.approx(np.nanmean(diffs))
    assert row["pairs"] == 4 * 5 - 1 and row["pretraining_seeds"] == 5


def test_differences_are_paired_by_pretraining_seed():
    """A large shared per-seed level cancels in the pairs: the intervals shrink to the shift."""
    means = st.pretraining_seed_means(records(shift=0.02, noise=0.0))
    cells = list(means)
    diffs, seeds = st.paired_differences(means, "genemask", "kmer_span", cells)
    assert seeds == [1, 2, 3, 4, 5] and np.allclose(diffs, 0.02)
    row = st.compare(means, "genemask", "kmer_span", cells)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((0.02, 0.02))
    assert (row["bootstrap_low"], row["bootstrap_high"]) == pytest.approx((0.02, 0.02))
    assert np.isnan(row["p_t"])  # no spread at all: the t-test is undefined, not p = 0


def test_t_interval_matches_scipy_and_the_textbook_formula():
    values = np.array([0.012, -0.004, 0.021, 0.003, 0.009])
    got = st.t_interval(values)
    n, mean, sd = len(values), values.mean(), values.std(ddof=1)
    half = 2.7764451051977987 * sd / np.sqrt(n)  # t(0.975, df=4), from the tables
    t_stat = mean / (sd / np.sqrt(n))
    assert (got.mean, got.low, got.high, got.df) == pytest.approx((mean, mean - half, mean + half, 4))
    assert got.p == pytest.approx(2 * stats.t.sf(abs(t_stat), df=4))
    reference = stats.ttest_1samp(values, 0.0)
    assert (got.low, got.high) == pytest.approx(tuple(reference.confidence_interval(0.95)))
    assert got.p == pytest.approx(reference.pvalue)
    assert st.t_interval(np.array([0.01, np.nan, 0.02, 0.03])).df == 2  # NaNs are left out
    one = st.t_interval(np.array([0.5]))
    assert one.mean == 0.5 and np.isnan(one.low) and np.isnan(one.p)


def test_t_interval_reproduces_the_issue_figure_on_the_committed_settle_cells():
    """Issue 20: probe vs kmer_span over the 5 seed means is -0.0049 [-0.0112, +0.0014] (old cells load)."""
    rows = st.comparison_rows(st.read_cell_records(SETTLE, any_depth=True), "genemask", metrics=["accuracy"])
    row = next(r for r in rows if (r["method"], r["dataset"], r["baseline"]) == ("probe", st.ALL_CELLS, "kmer_span"))
    assert (round(row["effect"], 4), round(row["ci_low"], 4), round(row["ci_high"], 4)) == (-0.0049, -0.0112, 0.0014)
    assert row["pretraining_seeds"] == 5 and row["df"] == 4 and row["pairs"] == 60


def test_holm_adjustment_by_hand():
    # sorted: 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.06 for the last
    assert st.holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert st.holm_adjust([0.3, 0.6, 0.5]) == pytest.approx([0.9, 1.0, 1.0])  # capped at 1
    got = st.holm_adjust([0.02, np.nan, 0.01])  # NaN is outside the family of 2
    assert got[0] == pytest.approx(0.02) and np.isnan(got[1]) and got[2] == pytest.approx(0.02)
    assert st.holm_adjust([]).size == 0


def test_holm_is_a_monotone_step_down_between_raw_and_bonferroni():
    p = np.random.default_rng(3).uniform(0, 0.2, size=40) ** 2
    adjusted = st.holm_adjust(p)
    order = np.argsort(p)
    assert np.all(np.diff(adjusted[order]) >= 0)  # the step-down never reverses the order of the p-values
    assert np.all(adjusted >= p) and np.all(adjusted <= np.minimum(1, len(p) * p) + 1e-15)
    assert adjusted[order[0]] == pytest.approx(min(1, len(p) * p[order[0]]))  # the smallest: Bonferroni
    assert st.holm_adjust(p[::-1]) == pytest.approx(adjusted[::-1])  # input order does not matter


def test_holm_family_is_every_comparison_of_the_report():
    rows = st.comparison_rows(records(shift=0.05) + records(shift=0.0, method="finetune", rng_seed=1), "genemask",
                              metrics=["accuracy", "mcc"])
    with_p = [r for r in rows if not np.isnan(r["p_t"])]
    # 2 metrics x 2 methods x 2 baselines x (4 cells + pooled)
    assert len(rows) == 40 and {r["holm_family"] for r in rows} == {len(with_p)}
    assert [r["p_holm"] for r in with_p] == pytest.approx(st.holm_adjust([r["p_t"] for r in with_p]).tolist())
    assert "all 40 comparisons" in st.family_sentence(rows)


def test_bootstrap_is_scipys_seeded_percentile_interval():
    values = np.array([0.1, -0.05, 0.02, 0.0, 0.04])
    assert st.bootstrap_ci(values) == st.bootstrap_ci(values.copy())
    assert st.bootstrap_ci(values, seed=1) != st.bootstrap_ci(values)
    low, high = st.bootstrap_ci(values)
    assert values.min() <= low < values.mean() < high <= values.max()
    direct = stats.bootstrap((values,), np.mean, n_resamples=st.BOOTSTRAP_SAMPLES, method="percentile",
                             rng=np.random.default_rng(st.BOOTSTRAP_SEED)).confidence_interval
    assert (low, high) == (direct.low, direct.high)
    assert np.isnan(st.bootstrap_ci(np.array([0.1, np.nan]))[0])  # one value: no interval


def test_spreads_report_between_and_within():
    rows = st.spreads(st.pretraining_seed_means(records(shift=0.0)))
    row = next(r for r in rows if r["strategy"] == "kmer_span" and r["dataset"] == "Prom-core" and r["shots"] == 10)
    assert row["within_eval_std"] == pytest.approx(0.01)  # eval seeds at -0.01, 0, +0.01
    assert row["between_pretraining_std"] > 0.005 and row["pretraining_seeds"] == 5 and row["eval_seeds"] == 15
    floor = next(r for r in rows if r["strategy"] == "no pretraining")
    assert floor["pretraining_seeds"] == 0 and np.isnan(floor["between_pretraining_std"])


def write_cells(root, recs):
    for r in recs:
        path = (root / r.method / "cells" / r.checkpoint.replace("@", "_") / r.dataset / str(r.shots)
                / f"seed{r.seed}" / "metrics.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r.to_json()))


def test_stats_command_writes_tables_and_plot(tmp_path, capsys):
    write_cells(tmp_path, records(shift=0.05) + records(shift=-0.05, method="finetune", rng_seed=1))
    assert main(["stats", str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "probe    vs kmer_span" in printed and "finetune vs kmer_span" in printed
    assert "t-interval" in printed and "Holm family: all" in printed
    with open(tmp_path / "out" / "comparisons.csv") as handle:
        rows = list(csv.DictReader(handle))
    pooled = {(r["metric"], r["method"], r["baseline"]): float(r["effect"]) for r in rows if r["dataset"] == "all"}
    assert pooled[("accuracy", "probe", "kmer_span")] == pytest.approx(0.05, abs=0.01)
    assert pooled[("accuracy", "finetune", "kmer_span")] == pytest.approx(-0.05, abs=0.01)
    assert pooled[("mcc", "probe", "kmer_span")] == pytest.approx(0.1, abs=0.02)
    assert (tmp_path / "out" / "effects.png").read_bytes()[:4] == b"\x89PNG"
    with open(tmp_path / "out" / "summary.csv") as handle:
        summary = list(csv.DictReader(handle))
    assert len(summary) == 2 * 4 * 3 and {r["draw"] for r in summary} == {"per-class"}
    comparisons_md = (tmp_path / "out" / "comparisons.md").read_text()
    assert "| accuracy | probe | all | kmer_span |" in comparisons_md
    assert comparisons_md.index("95% t-interval") < comparisons_md.index("bootstrap 95% CI (secondary)")
    table = (tmp_path / "out" / "summary.md").read_text().splitlines()
    assert table[2] == "| method | dataset | shots | draw | genemask | kmer_span | no pretraining |"
    assert len(table) == 4 + 8 and table[-1].endswith("| 0.500 (0.000) |")
    assert main(["stats", str(tmp_path / "empty")]) == 1
    assert "no finished cells" in capsys.readouterr().err


@pytest.mark.parametrize("seeds, floor", [(3, "0.25"), (5, "0.0625"), (6, "0.03125")])
def test_report_states_the_wilcoxon_floor_of_its_seed_count(tmp_path, seeds, floor):
    write_cells(tmp_path, records(shift=0.05, seeds=seeds))
    assert main(["stats", str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    comparisons_md = (tmp_path / "out" / "comparisons.md").read_text()
    assert f"(with {seeds} seeds it cannot go below {floor})" in comparisons_md
    with open(tmp_path / "out" / "comparisons.csv") as handle:
        pooled = next(r for r in csv.DictReader(handle) if r["dataset"] == "all" and r["metric"] == "accuracy")
    assert float(pooled["p_wilcoxon_seeds"]) == pytest.approx(float(floor))  # every seed favours genemask
