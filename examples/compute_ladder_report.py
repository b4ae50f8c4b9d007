"""The compute ladder's report: the pre-written decision rule applied, and its two plots.

Reads what ``examples/compute_ladder.sh`` wrote under OUT: the grids of every budget
(``updates_N/probe``, ``updates_N/finetune``) and ``losses.csv`` (``genemask-validate``). Writes:

- ``trend.csv``: the effect (reference - baseline, the method's cells pooled) per budget and pretraining seed,
  each budget's mean and 95% t-interval over seeds, and each seed's slope against log2(updates);
- ``decision.md``: the rule, its inputs (slope interval, effect at the largest budget) and the outcome, the
  fine-tuning effect at the largest budget, and the shared-mask losses beside the unigram floor;
- ``effects_by_budget.png``: the effect against updates with its intervals, one thin line per seed;
- ``losses.png``: the shared-mask validation losses against updates, per strategy, and the floor.

Usage: python examples/compute_ladder_report.py OUT [--reference genemask] [--baseline kmer_span]
           [--method probe] [--metric accuracy]
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from genemask_plugin.fewshot.cell_record import read_cell_records
from genemask_plugin.fewshot.effect_trend import (
    decide,
    effect_matrix,
    seed_effects,
    slopes_per_seed,
    t_interval,
)
from genemask_plugin.fewshot.metrics import METRIC_TITLES, METRICS
from genemask_preprocess.atomic_output import atomic_file
from genemask_preprocess.command_line import command_entry_point
from genemask_preprocess.errors import InputError

BUDGET_FOLDER = re.compile(r"updates_(\d+)\Z")
RULE = ("GeneMask's advantage \"emerges with compute\" only if the slope of (GeneMask - kmer_span) against "
        "log2(updates), fitted per pretraining seed, has a 95% t-interval above 0, and the effect at the largest "
        "budget is positive.")


def budget_folders(out: Path) -> dict[int, Path]:
    """``{updates: folder}`` of every ``updates_N`` folder under ``out``."""
    found = {int(m.group(1)): path for path in out.iterdir() if (m := BUDGET_FOLDER.match(path.name))}
    if not found:
        raise InputError(f"no updates_N folders under {out}: run examples/compute_ladder.sh first")
    return dict(sorted(found.items()))


def _fmt(value: float, digits: int = 4) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:+.{digits}f}"


def trend_rows(budgets, seeds, effects, slopes) -> list[dict]:
    rows = []
    for i, budget in enumerate(budgets):
        mean, low, high = t_interval(effects[i])
        rows.append({"updates": int(budget), **{f"seed{s}": effects[i, j] for j, s in enumerate(seeds)},
                     "mean": mean, "t_low": low, "t_high": high})
    mean, low, high = t_interval(slopes)
    rows.append({"updates": "slope per log2(updates)", **{f"seed{s}": slopes[j] for j, s in enumerate(seeds)},
                 "mean": mean, "t_low": low, "t_high": high})
    return rows


def loss_summary(losses_csv: Path) -> tuple[list[dict], float | None]:
    """Per (mask set, strategy, updates): mean shared-mask loss over seeds; and the floor."""
    if not losses_csv.is_file():
        return [], None
    groups, floor = defaultdict(list), None
    with losses_csv.open(newline="") as handle:
        for row in csv.DictReader(handle):
            strategy = row["checkpoint"].rpartition("@")[0] or row["trained_strategy"]
            groups[(row["masks"], strategy, int(row["updates"]))].append(float(row["loss_bits"]))
            floor = float(row["floor_bits"])
    summary = [{"masks": masks, "strategy": strategy, "updates": updates, "loss_bits": float(np.mean(values)),
                "between_seed_std": float(np.std(values, ddof=1)) if len(values) > 1 else math.nan,
                "seeds": len(values)}
               for (masks, strategy, updates), values in sorted(groups.items())]
    return summary, floor


def models_learned(losses: list[dict], floor: float | None, largest: int) -> bool | None:
    """The pre-written condition on the models: at the largest budget every strategy's `random`-mask loss is at
    least 1 bit below the unigram floor (None when the losses were not measured)."""
    at_largest = [r for r in losses if r["masks"] == "random" and r["updates"] == int(largest)]
    if not at_largest or floor is None:
        return None
    return all(r["loss_bits"] <= floor - 1 for r in at_largest)


def decision_markdown(args, budgets, seeds, effects, decision, finetune, losses, floor) -> str:
    title = METRIC_TITLES[args.metric]
    lines = [f"# Compute ladder: the decision ({args.reference} - {args.baseline}, {args.method} {title})", "",
             f"**Rule (written before any run):** {RULE}", "",
             f"| updates | {' | '.join(f'seed {s}' for s in seeds)} | mean | 95% t-interval |",
             "|---" * (len(seeds) + 3) + "|"]
    for i, budget in enumerate(budgets):
        mean, low, high = t_interval(effects[i])
        lines.append(f"| {budget} | " + " | ".join(_fmt(v) for v in effects[i]) +
                     f" | {_fmt(mean)} | [{_fmt(low)}, {_fmt(high)}] |")
    slopes = slopes_per_seed(budgets, effects)
    lines.append("| slope per doubling | " + " | ".join(_fmt(v) for v in slopes) +
                 f" | {_fmt(decision.slope)} | [{_fmt(decision.slope_low)}, {_fmt(decision.slope_high)}] |")
    learned = models_learned(losses, floor, budgets[-1])
    verdict = "**emerges with compute**" if decision.emerges else "**does not emerge with compute** (by the rule)"
    if learned is False:
        verdict = (f"{'emerges' if decision.emerges else 'does not emerge'} with compute by the slope rule, but the "
                   "models did not all learn (below: not every strategy's `random`-mask loss is 1 bit under the "
                   "floor), so by the pre-written condition this is **not a finding about the strategies**")
    lines += ["", f"- Slope of the effect per doubling of the updates: {_fmt(decision.slope)} "
                  f"[{_fmt(decision.slope_low)}, {_fmt(decision.slope_high)}] over {decision.seeds} pretraining seeds.",
              f"- Effect at the largest budget ({decision.final_budget} updates): {_fmt(decision.final_effect)} "
              f"[{_fmt(decision.final_low)}, {_fmt(decision.final_high)}].",
              f"- Outcome: {args.reference}'s advantage over {args.baseline} {verdict}."]
    if finetune:
        mean, low, high = t_interval(list(finetune.values()))
        lines.append(f"- Fine-tuning at {decision.final_budget} updates, {args.reference} - {args.baseline}: "
                     f"{_fmt(mean)} [{_fmt(low)}, {_fmt(high)}] over {len(finetune)} pretraining seeds.")
    if losses:
        lines += ["", f"## Shared-mask validation losses (bits; mean over seeds), unigram floor {floor:.3f} bits", "",
                  "| masks | strategy | " + " | ".join(str(b) for b in budgets) + " |",
                  "|---" * (len(budgets) + 2) + "|"]
        by_key = {(r["masks"], r["strategy"], r["updates"]): r for r in losses}
        for masks, strategy in dict.fromkeys((r["masks"], r["strategy"]) for r in losses):
            cells = [by_key.get((masks, strategy, int(b))) for b in budgets]
            lines.append(f"| {masks} | {strategy} | " + " | ".join(
                f"{c['loss_bits']:.3f}" if c else "" for c in cells) + " |")
        largest = [r for r in losses if r["masks"] == "random" and r["updates"] == int(budgets[-1])]
        if largest and floor is not None:
            best, worst = min(r["loss_bits"] for r in largest), max(r["loss_bits"] for r in largest)
            gap = floor - worst
            lines += ["", f"At {budgets[-1]} updates the `random`-mask losses are {best:.3f}-{worst:.3f} bits, the "
                          f"highest {abs(gap):.3f} bits {'below' if gap >= 0 else 'above'} the floor: "
                          f"{'every' if learned else 'not every'} strategy is at least 1 bit below it."]
    return "\n".join(lines) + "\n"


def plot_effects(budgets, seeds, effects, reference, baseline, metric) -> bytes:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    x = np.log2(budgets)
    for j in range(len(seeds)):
        ax.plot(x, effects[:, j], color="tab:blue", alpha=0.3, lw=0.8, label="pretraining seeds" if j == 0 else None)
    intervals = [t_interval(row) for row in effects]
    means = np.array([m for m, _, _ in intervals])
    low = means - np.array([lo for _, lo, _ in intervals])
    high = np.array([hi for _, _, hi in intervals]) - means
    ax.errorbar(x, means, yerr=[np.nan_to_num(low), np.nan_to_num(high)], fmt="o-", color="black", capsize=3,
                label="mean, 95% t-interval")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(x, [str(b) for b in budgets])
    ax.set_xlabel("pretraining updates (log scale)")
    ax.set_ylabel(f"{METRIC_TITLES[metric]}: {reference} - {baseline}")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    return buffer.getvalue()


def plot_losses(losses: list[dict], floor: float) -> bytes:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    mask_sets = list(dict.fromkeys(r["masks"] for r in losses))
    fig, axes = plt.subplots(1, len(mask_sets), figsize=(4.5 * len(mask_sets), 3.6), squeeze=False, sharey=True)
    for ax, masks in zip(axes[0], mask_sets, strict=True):
        for strategy in dict.fromkeys(r["strategy"] for r in losses if r["masks"] == masks):
            rows = [r for r in losses if r["masks"] == masks and r["strategy"] == strategy]
            ax.errorbar([r["updates"] for r in rows], [r["loss_bits"] for r in rows],
                        yerr=[np.nan_to_num(r["between_seed_std"]) for r in rows], fmt="o-", capsize=2, label=strategy)
        ax.axhline(floor, color="black", ls="--", lw=1, label=f"unigram floor {floor:.2f}")
        ax.set_xscale("log", base=2)
        ax.set_title(f"shared {masks} masks", fontsize=9)
        ax.set_xlabel("pretraining updates")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("validation loss (bits), mean ± std over seeds")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    return buffer.getvalue()


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="compute_ladder_report.py", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the ladder's results folder (compute_ladder.sh --out)")
    parser.add_argument("--reference", default="genemask")
    parser.add_argument("--baseline", default="kmer_span")
    parser.add_argument("--method", default="probe", help="the method whose effect the rule follows (default probe)")
    parser.add_argument("--metric", choices=METRICS, default="accuracy")
    args = parser.parse_args(argv)
    folders = budget_folders(args.out)
    records = {budget: read_cell_records(folder, any_depth=True) for budget, folder in folders.items()}
    by_budget = {b: seed_effects(r, args.reference, args.baseline, args.method, args.metric) for b, r in records.items()}
    by_budget = {b: effects for b, effects in by_budget.items() if effects}
    if not by_budget:
        raise InputError(f"no {args.method} cells of both {args.reference} and {args.baseline} under {args.out}")
    budgets, seeds, effects = effect_matrix(by_budget)
    decision = decide(budgets, effects)
    largest = max(records)
    finetune = seed_effects(records[largest], args.reference, args.baseline, "finetune", args.metric)
    losses, floor = loss_summary(args.out / "losses.csv")
    rows = trend_rows(budgets, seeds, effects, slopes_per_seed(budgets, effects))
    outputs = {"trend.csv": None, "decision.md": decision_markdown(args, budgets, seeds, effects, decision, finetune,
                                                                   losses, floor),
               "effects_by_budget.png": plot_effects(budgets, seeds, effects, args.reference, args.baseline, args.metric)}
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    outputs["trend.csv"] = buffer.getvalue()
    if losses:
        outputs["losses.png"] = plot_losses(losses, floor)
    for name, content in outputs.items():
        with atomic_file(args.out / name, "wb" if isinstance(content, bytes) else "w") as handle:
            handle.write(content)
    print(outputs["decision.md"], end="")
    print(f"wrote {', '.join(str(args.out / name) for name in outputs)}")
    return 0


main = command_entry_point("compute_ladder_report.py", run)


if __name__ == "__main__":
    sys.exit(main())
