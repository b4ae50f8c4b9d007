"""Paired statistics of a multi-seed pretraining experiment (pure numpy/scipy; matplotlib only to plot).

Checkpoints are labelled ``STRATEGY@PRETRAIN_SEED`` (``examples/settle_experiment.sh``); a label
without ``@`` (``no pretraining``) is one model, used as the same value for every pretraining seed.
For each (method, dataset, shots) *cell*:

1. every (strategy, pretraining seed) is averaged over its evaluation seeds (fine-tuning seeds or
   shot draws): :func:`pretraining_seed_means`;
2. the reference strategy is compared with each baseline by the differences
   ``reference - baseline`` paired by pretraining seed (runs of one seed share the initial weights
   and the order of the batches: only the masks differ) and by cell;
3. the pretraining seeds are the independent units, so each comparison (one cell, or a method's
   cells pooled) reduces to one mean difference per pretraining seed; the effect is their mean,
   with :func:`compare`:

   - **primary:** a 95% t-interval over those seed means (df = seeds - 1) and the two-sided
     one-sample t-test p-value (``scipy.stats.ttest_1samp``): :func:`t_interval`;
   - **Holm-adjusted** p-values, the family being every comparison of one report (every metric,
     method, baseline and cell grouping, pooled and per cell, that has a p-value): :func:`holm_adjust`;
   - **secondary:** a 95% percentile bootstrap CI over the same seed means
     (``scipy.stats.bootstrap``, seeded), and the Wilcoxon signed-rank p over them (with n seeds
     its smallest two-sided p is 2 / 2**n: 0.0625 for 5);
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
from scipy import stats

from genemask_plugin.masking.strategies import GENEMASK
from genemask_preprocess.atomic_output import atomic_file

from .cell_record import CellRecord, read_cell_records
from .grid_summary import metric_value
from .metrics import METRIC_TITLES, METRICS
from .protocol import DATASET_ORDER

CONFIDENCE = 0.95
BOOTSTRAP_SAMPLES = 10_000
BOOTSTRAP_SEED = 0
BOOTSTRAP_METHOD = "percentile"
"""The secondary interval's method: with 5 seeds BCa's acceleration rests on a 5-point jackknife."""
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


@dataclass(frozen=True)
class TInterval:
    """A t-interval of a mean and its one-sample t-test against 0."""

    mean: float
    low: float
    high: float
    p: float
    """Two-sided p of mean == 0 (NaN with fewer than 2 values, or when they do not vary)."""
    df: int


def t_interval(values: np.ndarray, level: float = CONFIDENCE) -> TInterval:
    """The mean of ``values`` (NaNs dropped), its t-interval (df = n - 1) and t-test p, by ``scipy.stats``."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    mean = float(np.mean(v)) if v.size else math.nan
    if v.size < 2:
        return TInterval(mean, math.nan, math.nan, math.nan, max(v.size - 1, 0))
    if np.ptp(v) == 0:  # no spread: the interval is the point, and the test is undefined
        return TInterval(mean, mean, mean, math.nan, v.size - 1)
    test = stats.ttest_1samp(v, 0.0)
    interval = test.confidence_interval(confidence_level=level)
    return TInterval(mean, float(interval.low), float(interval.high), float(test.pvalue), int(test.df))


def bootstrap_ci(values: np.ndarray, samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED,
                 level: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``values`` (NaNs dropped), by ``scipy.stats.bootstrap``, seeded."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size < 2:
        return math.nan, math.nan
    if np.ptp(v) == 0:
        return float(v[0]), float(v[0])
    result = stats.bootstrap((v,), np.mean, n_resamples=samples, confidence_level=level,
                             method=BOOTSTRAP_METHOD, rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def holm_adjust(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the input order; NaNs are not in the family and stay NaN.

    With the m p-values sorted ascending, the i-th (0-based) becomes ``min(1, max over j <= i of
    (m - j) * p_(j))``. scipy has no Holm (``false_discovery_control`` is Benjamini-Hochberg).
    """
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    present = np.flatnonzero(~np.isnan(p))
    m = present.size
    if m == 0:
        return out
    order = np.argsort(p[present], kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[present][order])
    out[present[order]] = np.minimum(stepped, 1.0)
    return out


def wilcoxon_p(differences: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences (NaN if fewer than 2 non-zero)."""
    d = differences[~np.isnan(differences)]
    if np.count_nonzero(d) < 2:
        return math.nan
    return float(stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


def seed_mean_differences(diffs: np.ndarray) -> np.ndarray:
    """Per pretraining seed, the mean difference over the cells that have one (NaN if none)."""
    valid = ~np.isnan(diffs)
    counts = valid.sum(axis=0)
    sums = np.where(valid, diffs, 0.0).sum(axis=0)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def compare(means: dict[Cell, dict[str, dict]], reference: str, baseline: str, cells: list[Cell]) -> dict:
    """Effect over ``cells``: the mean of the pretraining seeds' mean differences, its t-interval and
    t-test p (primary), a bootstrap CI and Wilcoxon p over the same seed means (secondary), and counts.

    ``p_holm`` is filled in over a whole report by :func:`comparison_rows`.
    """
    diffs, _ = paired_differences(means, reference, baseline, cells)
    flat = diffs[~np.isnan(diffs)]
    by_seed = seed_mean_differences(diffs)
    primary = t_interval(by_seed)
    low, high = bootstrap_ci(by_seed)
    return {
        "effect": primary.mean,
        "ci_low": primary.low,
        "ci_high": primary.high,
        "df": primary.df,
        "p_t": primary.p,
        "p_holm": math.nan,
        "bootstrap_low": low,
        "bootstrap_high": high,
        "p_wilcoxon_seeds": wilcoxon_p(by_seed),
        "wins": int(np.sum(flat > 0)),
        "losses": int(np.sum(flat < 0)),
        "pairs": int(len(flat)),
        "pretraining_seeds": int(np.sum(~np.isnan(by_seed))),
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
    """The reference against every other strategy, per cell and pooled over each method's cells.

    The rows are one report: ``p_holm`` adjusts ``p_t`` over all of them (:func:`holm_adjust`), and
    ``holm_family`` says how many p-values that family holds.
    """
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
    adjusted = holm_adjust([row["p_t"] for row in rows])
    family = int(np.sum(~np.isnan(adjusted)))
    for row, p_holm in zip(rows, adjusted, strict=True):
        row["p_holm"] = float(p_holm)
        row["holm_family"] = family
    return rows


def _fmt(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:+.{digits}f}"


def _p(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3g}"


def family_sentence(rows: list[dict]) -> str:
    """What the Holm family of a report is, in one sentence."""
    family = rows[0]["holm_family"] if rows else 0
    metrics = len(dict.fromkeys(r["metric"] for r in rows))
    methods = len(dict.fromkeys(r["method"] for r in rows))
    baselines = len(dict.fromkeys(r["baseline"] for r in rows))
    return (f"Holm family: all {family} comparisons of this report that have a t-test p "
            f"({metrics} metrics x {methods} methods x {baselines} baselines x each method's cells, per cell "
            "and pooled).")


def wilcoxon_floor(rows: list[dict]) -> str:
    """The smallest two-sided Wilcoxon p the report's seed counts allow, in words (2 / 2**n for n seeds)."""
    seeds = sorted({int(r["df"]) + 1 for r in rows
                    if isinstance(r.get("df"), (int, float)) and not math.isnan(r["df"]) and r["df"] >= 1})
    if len(seeds) == 1:
        return f" (with {seeds[0]} seeds it cannot go below {2 / 2 ** seeds[0]:.4g})"
    return f" (it cannot go below {', '.join(f'{2 / 2 ** n:.4g} with {n} seeds' for n in seeds)})" if seeds else ""


def comparisons_markdown(rows: list[dict]) -> str:
    """The pooled comparisons (one line per metric, method and baseline), then the per-cell ones.

    Primary columns first (effect, t-interval, t-test p, Holm p), then the secondary ones.
    """
    intro = (
        "Reference minus baseline, paired by pretraining seed. Primary: the mean of the pretraining seeds' "
        "mean differences with its 95% t-interval (df = seeds - 1) and two-sided t-test p; Holm p adjusts that p "
        f"over the whole report. {family_sentence(rows)} Secondary: a 95% percentile bootstrap CI "
        f"(`scipy.stats.bootstrap`, {BOOTSTRAP_SAMPLES} resamples of the seed means, seed {BOOTSTRAP_SEED}) and the "
        f"Wilcoxon signed-rank p over the same seed means{wilcoxon_floor(rows)}. "
        "Wins/losses and pairs count the (cell, pretraining seed) differences.\n\n"
    )
    head = ("| metric | method | cells | baseline | effect (ref - base) | 95% t-interval | df | p (t) | p (Holm) | "
            "bootstrap 95% CI (secondary) | Wilcoxon p (seed means, secondary) | wins/losses | pairs |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for pooled in (True, False):
        for row in rows:
            if (row["dataset"] == ALL_CELLS) != pooled:
                continue
            cell = "all" if pooled else f"{row['dataset']} {row['shots']}"
            lines.append(f"| {METRIC_TITLES[row['metric']]} | {row['method']} | {cell} | {row['baseline']} | "
                         f"{_fmt(row['effect'])} | [{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}] | {row['df']} | "
                         f"{_p(row['p_t'])} | {_p(row['p_holm'])} | "
                         f"[{_fmt(row['bootstrap_low'])}, {_fmt(row['bootstrap_high'])}] | "
                         f"{_p(row['p_wilcoxon_seeds'])} | {row['wins']}/{row['losses']} | {row['pairs']} |")
    return intro + head + "\n".join(lines) + "\n"


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
    """PNG: effect per cell with its 95% t-interval over pretraining seeds; rows are methods, columns
    baselines; the pooled effect in black."""
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
        ax.set_xlabel(f"{METRIC_TITLES[metric]} difference (95% t-interval)", fontsize=7)
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
