"""The few-shot grid's summary: mean ± std over seeds as ``summary.csv``, ``summary.md`` and ``summary.png``.

Reads every finished cell's record (:mod:`.cell_record`) under a results folder, so grids run
one checkpoint at a time combine. matplotlib is imported only to draw the plot.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from genemask_preprocess.atomic_output import atomic_file

from .cell_record import CellRecord, read_cell_records
from .metrics import METRIC_TITLES, METRICS
from .protocol import DATASET_ORDER

SUMMARY_FILES = ("summary.csv", "summary.md", "summary.png")


def metric_value(value: float | None) -> float:
    """A metric from ``metrics.json`` (``null`` when undefined) as a float (NaN)."""
    return math.nan if value is None else value


def _per_class(records: list[CellRecord]) -> str:
    counts = sorted({c for r in records for c in r.train_per_class.values()})
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"


def summarize(records: list[CellRecord], checkpoint_order: list[str] = ()) -> list[dict]:
    """Mean and sample std (ddof=1; NaN with one seed) over seeds per (checkpoint, dataset, shots)."""
    groups = defaultdict(list)
    for record in records:
        groups[(record.checkpoint, record.dataset, record.shots)].append(record)
    seen = list(dict.fromkeys([*checkpoint_order, *sorted({key[0] for key in groups})]))

    def sort_key(key):
        label, dataset, shots = key
        rank = DATASET_ORDER.index(dataset) if dataset in DATASET_ORDER else len(DATASET_ORDER)
        return (rank, dataset, shots, seen.index(label))

    rows = []
    for key in sorted(groups, key=sort_key):
        group = groups[key]
        row = {
            "checkpoint": key[0], "dataset": key[1], "shots": key[2],
            "per_class": _per_class(group), "seeds": len(group),
            "n_test": group[0].n_test,
        }
        for metric in METRICS:
            values = np.array([metric_value(r.metrics[metric]) for r in group], dtype=np.float64)
            row[f"{metric}_mean"] = float(np.mean(values))
            row[f"{metric}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
        rows.append(row)
    return rows


def _fmt(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.3f}" if math.isnan(std) else f"{mean:.3f} ± {std:.3f}"


def metric_order(records: list[CellRecord]) -> list[str]:
    """Metrics in table order: MCC first when every cell is GUE data (how the field reports GUE)."""
    lead = "mcc" if records and all(r.headline == "mcc" for r in records) else "accuracy"
    return [lead, *(m for m in METRICS if m != lead)]


def markdown_table(rows: list[dict], metrics: list[str] = METRICS) -> str:
    header = ["dataset", "shots", "per class", "checkpoint", *(METRIC_TITLES[m] for m in metrics),
              "seeds", "test n"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["dataset"], str(row["shots"]), row["per_class"], row["checkpoint"],
                 *(_fmt(row[f"{m}_mean"], row[f"{m}_std"]) for m in metrics),
                 str(row["seeds"]), str(row["n_test"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_summary(rows: list[dict]) -> bytes:
    """PNG of metric vs shots, one line per checkpoint (error bars: std over seeds); one row per dataset."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    datasets = list(dict.fromkeys(row["dataset"] for row in rows))
    labels = list(dict.fromkeys(row["checkpoint"] for row in rows))
    fig, axes = plt.subplots(len(datasets), len(METRICS), squeeze=False,
                             figsize=(3.2 * len(METRICS), 2.8 * len(datasets)))
    for r, dataset in enumerate(datasets):
        for c, metric in enumerate(METRICS):
            ax = axes[r][c]
            for label in labels:
                points = sorted((row["shots"], row[f"{metric}_mean"], row[f"{metric}_std"])
                                for row in rows if row["dataset"] == dataset and row["checkpoint"] == label)
                if not points:
                    continue
                x, mean, std = (np.array(v, dtype=float) for v in zip(*points, strict=True))
                ax.errorbar(x, mean, yerr=np.nan_to_num(std), marker="o", capsize=3, label=label)
            ax.set_xscale("log")
            shots = sorted({row["shots"] for row in rows if row["dataset"] == dataset})
            ax.set_xticks(shots, [str(s) for s in shots])
            ax.minorticks_off()
            ax.set_title(f"{dataset}: {METRIC_TITLES[metric]}", fontsize=9)
            ax.set_xlabel("shots", fontsize=8)
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    return buffer.getvalue()


def write_summary(results: Path, checkpoint_order: list[str] = ()) -> list[dict]:
    """``summary.csv``, ``summary.md`` and ``summary.png`` over every finished cell under ``results``."""
    records = read_cell_records(results)
    rows = summarize(records, checkpoint_order)
    if not rows:
        return rows
    with atomic_file(results / "summary.csv", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    with atomic_file(results / "summary.md") as handle:
        handle.write(markdown_table(rows, metric_order(records)))
    with atomic_file(results / "summary.png", "wb") as handle:
        handle.write(plot_summary(rows))
    return rows
