"""Paired statistics of a multi-seed pretraining experiment (pure numpy/scipy; matplotlib only to plot).

Checkpoints are labelled ``STRATEGY@PRETRAIN_SEED`` (``examples/settle_experiment.sh``); a label
without ``@`` (``no pretraining``) is one model, used as the same value for every pretraining seed.
For each (method, dataset, shots) *cell*:

1. every (strategy, pretraining seed) is averaged over its evaluation seeds (fine-tuning seeds or
   shot draws): :func:`pretraining_seed_means`;
2. the reference strategy is compared with each baseline by the differences
   ``reference - baseline`` paired by pretraining seed (runs of one seed share the initial weights
   and the order of the batches: only the masks differ) and by cell;
3. the effect is the mean difference, with a 95% percentile bootstrap CI that resamples pretraining
   seeds (the units that were replicated; seeded, so reproducible); the p-value is a two-sided
   Wilcoxon signed-rank test over the (cell, pretraining seed) pairs, and a stricter one over the
   pretraining seeds' mean differences (independent units; with 5 seeds its smallest two-sided p is
   0.0625): :func:`compare`;
4. spreads: the std between pretraining seeds of the seed means, next to the mean std over
   evaluation seeds within a pretraining seed: :func:`spreads`.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import wilcoxon

from genemask_plugin.masking.strategies import GENEMASK
from genemask_preprocess.atomic_output import atomic_file

from .cell_record import CellRecord, read_cell_records
from .grid_summary import metric_value
from .metrics import METRIC_TITLES, METRICS
from .protocol import DATASET_ORDER

BOOTSTRAP_SAMPLES = 10_000
BOOTSTRAP_SEED = 0
ALL_CELLS = "all"
STATS_FILES = ("summary.csv", "summary.md", "comparisons.csv", "comparisons.md", "effects.png")


def split_label(label: str) -> tuple[str, int | None]:
    """``genemask@3`` -> (``genemask``, 3); a label without a pretraining seed -> (label, None)."""
    strategy, sep, seed = label.rpartition("@")
    if sep and seed.isdigit():
        return strategy, int(seed)
    return label, None


Cell = tuple[str, str, int]
"""(method, dataset, shots)"""


def _cell_sort_key(cell: Cell):
    method, dataset, shots = cell
    rank = DATASET_ORDER.index(dataset) if dataset in DATASET_ORDER else len(DATASET_ORDER)
    return (method, rank, dataset, shots)


@dataclass
class SeedMean:
    """One (cell, strategy, pretraining seed): the metric averaged over evaluation seeds."""

    mean: float
    eval_std: float
    """Sample std over evaluation seeds (NaN with one)."""
    n_eval: int
    draw: str


def pretraining_seed_means(records: list[CellRecord], metric: str = "accuracy") -> dict[Cell, dict[str, dict]]:
    """``{cell: {strategy: {pretraining seed (None: one model): SeedMean}}}``."""
    values = defaultdict(list)
    draws = {}
    for record in records:
        strategy, seed = split_label(record.checkpoint)
        key = ((record.method, record.dataset, int(record.shots)), strategy, seed)
        values[key].append(metric_value(record.metrics[metric]))
        draws[key] = record.draw
    out: dict[Cell, dict[str, dict]] = defaultdict(lambda: defaultdict(dict))
    for (cell, strategy, seed), vals in values.items():
        arr = np.array(vals, dtype=np.float64)
        std = float(np.std(arr, ddof=1)) if len(arr) > 1 else math.nan
        out[cell][strategy][seed] = SeedMean(float(np.mean(arr)), std, len(arr), draws[(cell, strategy, seed)])
    return out


def paired_differences(means: dict[Cell, dict[str, dict]], reference: str, baseline: str,
                       cells: list[Cell]) -> tuple[np.ndarray, list[int]]:
    """``(len(cells), n seeds)`` reference - baseline, NaN where either is missing; and the seeds."""
    seeds = sorted({s for c in cells for s in means[c].get(reference, {}) if s is not None})
    diffs = np.full((len(cells), len(seeds)), np.nan)
    for i, cell in enumerate(cells):
        ref, base = means[cell].get(reference, {}), means[cell].get(baseline, {})
        for j, seed in enumerate(seeds):
            other = base.get(seed, base.get(None))  # a single model stands for every seed
            if seed in ref and other is not None:
                diffs[i, j] = ref[seed].mean - other.mean
    return diffs, seeds


def bootstrap_ci(diffs: np.ndarray, samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile CI of the mean of ``diffs`` ``(cells, seeds)``, resampling seeds (columns) with replacement."""
    n_seeds = diffs.shape[1]
    if n_seeds == 0 or np.all(np.isnan(diffs)):
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    columns = rng.integers(0, n_seeds, size=(samples, n_seeds))
    resampled = diffs[:, columns]  # (cells, samples, seeds)
    valid = ~np.isnan(resampled)
    counts = valid.sum(axis=(0, 2))
    sums = np.where(valid, resampled, 0.0).sum(axis=(0, 2))
    means = sums[counts > 0] / counts[counts > 0]
    alpha = (1 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(low), float(high)


def wilcoxon_p(differences: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences (NaN if fewer than 2 non-zero)."""
    d = differences[~np.isnan(differences)]
    if np.count_nonzero(d) < 2:
        return math.nan
    return float(wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


def _column_means(diffs: np.ndarray) -> np.ndarray:
    """Per pretraining seed, the mean difference over the cells that have one (NaN if none)."""
    valid = ~np.isnan(diffs)
    counts = valid.sum(axis=0)
    sums = np.where(valid, diffs, 0.0).sum(axis=0)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def compare(means: dict[Cell, dict[str, dict]], reference: str, baseline: str, cells: list[Cell]) -> dict:
    """Effect (mean paired difference), bootstrap CI, Wilcoxon p and counts over ``cells``."""
    diffs, seeds = paired_differences(means, reference, baseline, cells)
    flat = diffs[~np.isnan(diffs)]
    low, high = bootstrap_ci(diffs)
    return {
        "effect": float(np.mean(flat)) if len(flat) else math.nan,
        "ci_low": low,
        "ci_high": high,
        "p_wilcoxon": wilcoxon_p(flat),
        "p_wilcoxon_seeds": wilcoxon_p(_column_means(diffs)),
        "wins": int(np.sum(flat > 0)),
        "losses": int(np.sum(flat < 0)),
        "pairs": int(len(flat)),
        "pretraining_seeds": len(seeds),
    }


def spreads(means: dict[Cell, dict[str, dict]]) -> list[dict]:
    """Per (cell, strategy): mean over pretraining seeds, std between them, mean std within them."""
    rows = []
    for cell in sorted(means, key=_cell_sort_key):
        for strategy, by_seed in means[cell].items():
            values = np.array([m.mean for m in by_seed.values()])
            eval_stds = np.array([m.eval_std for m in by_seed.values()])
            rows.append({
                "method": cell[0], "dataset": cell[1], "shots": cell[2],
                "draw": next(iter(by_seed.values())).draw, "strategy": strategy,
                "mean": float(np.mean(values)),
                "between_pretraining_std": float(np.std(values, ddof=1)) if len(values) > 1 else math.nan,
                "within_eval_std": float(np.nanmean(eval_stds)) if np.any(~np.isnan(eval_stds)) else math.nan,
                "pretraining_seeds": sum(s is not None for s in by_seed),
                "eval_seeds": int(sum(m.n_eval for m in by_seed.values())),
            })
    return rows


def comparison_rows(records: list[CellRecord], reference: str, metrics=METRICS) -> list[dict]:
    """The reference against every other strategy, per cell and pooled over each method's cells."""
    rows = []
    for metric in metrics:
        means = pretraining_seed_means(records, metric)
        cells = sorted(means, key=_cell_sort_key)
        strategies = list(dict.fromkeys(s for c in cells for s in means[c]))
        for baseline in (s for s in strategies if s != reference):
            for method in dict.fromkeys(c[0] for c in cells):
                own = [c for c in cells if c[0] == method and reference in means[c] and baseline in means[c]]
                for label, chosen in [*((c, [c]) for c in own), ((method, ALL_CELLS, 0), own)]:
                    if not chosen:
                        continue
                    rows.append({"metric": metric, "method": method, "dataset": label[1],
                                 "shots": label[2] or "", "reference": reference, "baseline": baseline,
                                 **compare(means, reference, baseline, chosen)})
    return rows


def _fmt(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:+.{digits}f}"


def comparisons_markdown(rows: list[dict]) -> str:
    """The pooled comparisons (one line per metric, method and baseline), then the per-cell ones."""
    head = ("| metric | method | cells | baseline | effect (ref - base) | 95% CI | Wilcoxon p (pairs) | "
            "Wilcoxon p (seed means) | wins/losses | pairs |\n|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for pooled in (True, False):
        for row in rows:
            if (row["dataset"] == ALL_CELLS) != pooled:
                continue
            cell = "all" if pooled else f"{row['dataset']} {row['shots']}"
            p, p_seeds = ("n/a" if math.isnan(row[k]) else f"{row[k]:.3g}" for k in ("p_wilcoxon", "p_wilcoxon_seeds"))
            lines.append(f"| {METRIC_TITLES[row['metric']]} | {row['method']} | {cell} | {row['baseline']} | "
                         f"{_fmt(row['effect'])} | [{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}] | {p} | {p_seeds} | "
                         f"{row['wins']}/{row['losses']} | {row['pairs']} |")
    return head + "\n".join(lines) + "\n"


def summary_markdown(rows: list[dict], first: str = "") -> str:
    """One line per (method, dataset, shots), one column per strategy (``first`` first, single models last):
    mean, ± std between pretraining seeds, (mean std over evaluation seeds)."""
    strategies = sorted(dict.fromkeys(r["strategy"] for r in rows),
                        key=lambda s: (s != first, not any(r["pretraining_seeds"] for r in rows if r["strategy"] == s)))
    cells = list(dict.fromkeys((r["method"], r["dataset"], r["shots"], r["draw"]) for r in rows))
    by_key = {(r["method"], r["dataset"], r["shots"], r["draw"], r["strategy"]): r for r in rows}

    def entry(row):
        if row is None:
            return ""
        text = f"{row['mean']:.3f}"
        if not math.isnan(row["between_pretraining_std"]):
            text += f" ± {row['between_pretraining_std']:.3f}"
        if not math.isnan(row["within_eval_std"]):
            text += f" ({row['within_eval_std']:.3f})"
        return text

    head = "| method | dataset | shots | draw | " + " | ".join(strategies) + " |\n"
    head += "|---" * (4 + len(strategies)) + "|\n"
    return head + "".join(
        f"| {m} | {d} | {n} | {draw} | " + " | ".join(entry(by_key.get((m, d, n, draw, s))) for s in strategies)
        + " |\n" for m, d, n, draw in cells)


def plot_effects(rows: list[dict], metric: str = "accuracy") -> bytes:
    """PNG: effect per cell with its 95% CI; rows are methods, columns baselines; the pooled effect in black."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    rows = [r for r in rows if r["metric"] == metric]
    methods = list(dict.fromkeys(r["method"] for r in rows)) or ["-"]
    baselines = list(dict.fromkeys(r["baseline"] for r in rows)) or ["-"]
    height = max((sum(1 for r in rows if (r["method"], r["baseline"]) == (m, b)) for m in methods
                  for b in baselines), default=4)
    fig, grid = plt.subplots(len(methods), len(baselines), squeeze=False, sharex="row",
                             figsize=(3.3 * len(baselines), (0.22 * height + 1.2) * len(methods)))
    axes = {(m, b): grid[i][j] for i, m in enumerate(methods) for j, b in enumerate(baselines)}
    panels = [key for key in axes if any((r["method"], r["baseline"]) == key for r in rows)]
    for key in set(axes) - set(panels):
        axes[key].axis("off")
    for (method, baseline) in panels:
        ax = axes[(method, baseline)]
        chosen = [r for r in rows if (r["method"], r["baseline"]) == (method, baseline)]
        names = [("all cells" if r["dataset"] == ALL_CELLS else f"{r['dataset']} {r['shots']}") for r in chosen]
        y = np.arange(len(chosen))[::-1]
        effect = np.array([r["effect"] for r in chosen])
        low = effect - np.array([r["ci_low"] for r in chosen])
        high = np.array([r["ci_high"] for r in chosen]) - effect
        for i, row in enumerate(chosen):
            color = "black" if row["dataset"] == ALL_CELLS else "tab:blue"
            ax.errorbar(effect[i], y[i], xerr=[[np.nan_to_num(low[i])], [np.nan_to_num(high[i])]], fmt="o",
                        color=color, capsize=2, markersize=3.5)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_yticks(y, names, fontsize=7)
        ax.set_title(f"{method}: {chosen[0]['reference']} - {baseline}", fontsize=8)
        ax.set_xlabel(f"{METRIC_TITLES[metric]} difference (95% CI)", fontsize=7)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    return buffer.getvalue()


def _write_csv(path: Path, rows: list[dict]) -> None:
    with atomic_file(path, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def write_statistics(results: Path, out: Path, reference: str = GENEMASK.name, metric: str = "accuracy") -> dict:
    """``summary.csv``/``.md`` (spreads, for ``metric``), ``comparisons.csv``/``.md`` (every metric), ``effects.png``."""
    records = read_cell_records(results, any_depth=True)  # probe/ and finetune/ grids alike
    if not records:
        return {"records": 0}
    summary = spreads(pretraining_seed_means(records, metric))
    for row in summary:
        row["metric"] = metric
    comparisons = comparison_rows(records, reference)
    _write_csv(out / "summary.csv", summary)
    _write_csv(out / "comparisons.csv", comparisons)
    with atomic_file(out / "summary.md") as handle:
        handle.write(f"{METRIC_TITLES[metric]}: mean over pretraining seeds ± std between them "
                     "(mean std over evaluation seeds within one)\n\n" + summary_markdown(summary, reference))
    with atomic_file(out / "comparisons.md") as handle:
        handle.write(comparisons_markdown(comparisons))
    with atomic_file(out / "effects.png", "wb") as handle:
        handle.write(plot_effects(comparisons, metric))
    return {"records": len(records), "summary": summary, "comparisons": comparisons}
