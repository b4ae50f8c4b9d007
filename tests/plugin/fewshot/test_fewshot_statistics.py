"""Paired statistics over pretraining seeds (genemask_plugin.fewshot.statistics)."""

import csv
import json

import numpy as np
import pytest

from genemask_plugin.fewshot import statistics as st
from genemask_plugin.fewshot.cell_record import CellRecord
from genemask_plugin.fewshot.cli import main

CELLS = [("Prom-core", 10), ("Prom-core", 50), ("Splice-40", 10), ("Splice-40", 50)]


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


def test_a_real_effect_is_found_with_a_ci_that_excludes_zero():
    rows = st.comparison_rows(records(shift=0.05), "genemask", metrics=["accuracy"])
    pooled = next(r for r in rows if r["dataset"] == st.ALL_CELLS and r["baseline"] == "kmer_span")
    assert pooled["effect"] == pytest.approx(0.05, abs=0.01)
    assert 0 < pooled["ci_low"] < pooled["effect"] < pooled["ci_high"]
    assert pooled["p_wilcoxon"] < 1e-4 and pooled["pairs"] == 20 and pooled["pretraining_seeds"] == 5
    assert pooled["p_wilcoxon_seeds"] == pytest.approx(0.0625)  # 5 seeds, all positive: the smallest p
    floor = next(r for r in rows if r["dataset"] == st.ALL_CELLS and r["baseline"] == "no pretraining")
    assert floor["effect"] > 0.1 and floor["pairs"] == 20  # the single model stands for every seed


def test_no_effect_gives_a_ci_around_zero_and_a_large_p():
    rows = st.comparison_rows(records(shift=0.0), "genemask", metrics=["accuracy"])
    pooled = next(r for r in rows if r["dataset"] == st.ALL_CELLS and r["baseline"] == "kmer_span")
    assert pooled["ci_low"] < 0 < pooled["ci_high"] and pooled["p_wilcoxon"] > 0.05
    per_cell = [r for r in rows if r["dataset"] != st.ALL_CELLS and r["baseline"] == "kmer_span"]
    assert len(per_cell) == 4 and all(r["pairs"] == 5 for r in per_cell)


def test_differences_are_paired_by_pretraining_seed():
    """A large shared per-seed level cancels in the pairs: the CI is narrow around the shift."""
    means = st.pretraining_seed_means(records(shift=0.02, noise=0.0))
    cells = list(means)
    diffs, seeds = st.paired_differences(means, "genemask", "kmer_span", cells)
    assert seeds == [1, 2, 3, 4, 5] and np.allclose(diffs, 0.02)
    assert st.bootstrap_ci(diffs) == pytest.approx((0.02, 0.02))
    diffs[0, 0] = np.nan  # a missing pair is left out, not counted as zero
    assert st.compare(means, "genemask", "kmer_span", cells)["pairs"] == 20


def test_bootstrap_is_seeded_and_resamples_seeds():
    diffs = np.array([[0.1, -0.05, 0.02, 0.0, 0.04]])
    assert st.bootstrap_ci(diffs) == st.bootstrap_ci(diffs.copy())
    low, high = st.bootstrap_ci(diffs)
    assert diffs.min() <= low < diffs.mean() < high <= diffs.max()


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
    assert "| accuracy | probe | all | kmer_span |" in (tmp_path / "out" / "comparisons.md").read_text()
    table = (tmp_path / "out" / "summary.md").read_text().splitlines()
    assert table[2] == "| method | dataset | shots | draw | genemask | kmer_span | no pretraining |"
    assert len(table) == 4 + 8 and table[-1].endswith("| 0.500 (0.000) |")
    assert main(["stats", str(tmp_path / "empty")]) == 1
    assert "no finished cells" in capsys.readouterr().err
