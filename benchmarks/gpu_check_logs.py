"""Reading fairseq's logs (``--log-format simple``): training lines, the resume point, the validation loss."""

from __future__ import annotations

import math
import re
import statistics

from gpu_check_runner import CheckFailed


def train_inner_records(log: str) -> list[dict[str, float]]:
    """fairseq's ``train_inner`` lines (``--log-format simple``) as dicts of numbers."""
    records = []
    for line in log.splitlines():
        if "| train_inner |" in line:
            fields = dict(re.findall(r"(\w+)=([-+]?(?:[\d.]+(?:[eE][-+]?\d+)?|inf|nan))", line))
            records.append({k: float(v) for k, v in fields.items()})
    return records


def training_stats(name: str, log: str, updates: int, log_interval: int) -> dict:
    """Loss checks and throughput of one pretraining log; raises CheckFailed when the loss is bad."""
    records = train_inner_records(log)
    if not records:
        raise CheckFailed(f"{name}: no train_inner line in its log")
    losses = [r.get("loss", math.nan) for r in records]
    if not all(math.isfinite(v) for v in losses):
        raise CheckFailed(f"{name}: non-finite loss {losses}")
    if records[-1].get("num_updates") != updates:
        raise CheckFailed(f"{name}: the last train_inner line is at update {records[-1].get('num_updates')}, "
                          f"not {updates}")
    if len(records) < 2 or not losses[-1] < losses[0]:
        raise CheckFailed(f"{name}: the loss did not decrease ({losses[0]:.3f} -> {losses[-1]:.3f})")
    steady = [r for r in records if r["num_updates"] > log_interval] or records  # the first interval warms up
    gb_free = [r["gb_free"] for r in records if "gb_free" in r]
    return {
        "loss_first": losses[0], "loss_last": losses[-1],
        "words_per_s": statistics.median(r["wps"] for r in steady),
        "sequences_per_s": statistics.median(r["wps"] / r["wpb"] * r["bsz"] for r in steady),
        "tokens_per_sequence": statistics.median(r["wpb"] / r["bsz"] for r in steady),
        "min_gb_free": min(gb_free) if gb_free else None,
    }


def resumed_from(log: str) -> int | None:
    """The update count fairseq reports on loading checkpoint_last.pt (None when it started fresh)."""
    match = re.search(r"[Ll]oaded checkpoint .*\(epoch \d+ @ (\d+) updates\)", log)
    return int(match.group(1)) if match else None


def validation_loss(log: str) -> float:
    match = re.search(r"valid on 'valid' subset \| loss ([-+\d.einfa]+)", log)
    if not match:
        raise CheckFailed("validate: no \"valid on 'valid' subset | loss\" line in its log")
    return float(match.group(1))
