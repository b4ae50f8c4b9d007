"""What the GPU check runs: its settings, and every command by step, as a user would type it.

The pretraining runs are the project's one pretraining command (genemask_plugin/pretraining_command.py),
with the check's own length, logging and saving; fairseq's ``--task masked_lm`` comes from the same builder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "genemask_plugin"
GENOME = REPO / "data" / "genomes" / "S288C_chr01_chr06.fa.gz"
FEWSHOT = REPO / "data" / "fewshot" / "Prom-core"
RESUME_EXTRA = 2  # log intervals run after resuming


@dataclass
class Pretraining:
    """One pretraining run of the check."""

    name: str
    arch: str
    precision: str  # bf16, fp16, or fp32 (CPU)
    task: str = "genemask_mlm"
    save: bool = False
    argv: list[str] = field(default_factory=list)


@dataclass
class Settings:
    """The check's settings, from its options (the CPU run has its own defaults)."""

    out: Path
    work: Path
    updates: int
    batch_size: int
    workers: int
    cpu: bool
    log_interval: int
    lr: float
    finetune_max_updates: int | None

    @property
    def resume_extra(self) -> int:
        return RESUME_EXTRA * self.log_interval


def pretraining_runs(s: Settings) -> list[Pretraining]:
    if s.cpu:  # one run per code path: ours (kept for resume and few-shot) and fairseq's masked_lm
        return [Pretraining("tiny", "genemask_tiny", "fp32", save=True),
                Pretraining("tiny_masked_lm", "genemask_tiny", "fp32", task="masked_lm")]
    return [Pretraining("dnabert_bf16", "genemask_dnabert_base", "bf16", save=True),
            Pretraining("dnabert_fp16", "genemask_dnabert_base", "fp16"),
            Pretraining("dnabert_masked_lm_bf16", "genemask_dnabert_base", "bf16", task="masked_lm"),
            Pretraining("logo_bf16", "genemask_logo", "bf16")]


def pretrain_argv(s: Settings, run: Pretraining, updates: int, save_dir: Path) -> list[str]:
    """One pretraining run's command: the recipes' settings, the check's length, logging and saving."""
    # Imported here, not above: the environment step may first have to install fairseq and this package.
    from genemask_plugin.pretraining_command import masked_lm_arguments, pretraining_arguments

    settings = {
        "arch": run.arch, "updates": updates, "lr": s.lr, "warmup": max(1, updates // 10),
        "batch_size": s.batch_size, "num_workers": s.workers,
        "device": ["--cpu"] if s.cpu else [f"--{run.precision}"],
        "extra": ["--disable-validation", "--log-format", "simple", "--log-interval", str(s.log_interval),
                  "--required-batch-size-multiple", "1",
                  *(["--save-interval", "1000"] if run.save else ["--no-save"])],
    }
    data = s.work / "data"
    if run.task == "masked_lm":
        return ["fairseq-train", *masked_lm_arguments(data, save_dir, **settings)]
    return ["fairseq-train", *pretraining_arguments(data, s.work / "pmi" / "pmi_k6.tsv", save_dir, **settings)]


def plan(s: Settings) -> dict:
    """Every command the check runs, by step (program name first, as a user would type it)."""
    data, pmi, few = s.work / "data", s.work / "pmi", s.work / "fewshot"
    runs = pretraining_runs(s)
    for run in runs:
        run.argv = pretrain_argv(s, run, s.updates, s.work / "checkpoints" / run.name)
    saved = next(r for r in runs if r.save)
    checkpoint = s.work / "checkpoints" / saved.name / "checkpoint_last.pt"
    resume = pretrain_argv(s, saved, s.updates + s.resume_extra, s.work / "checkpoints" / saved.name)
    validate = ["fairseq-validate", str(data), "--user-dir", str(PLUGIN), "--task", "genemask_mlm",
                "--pmi-table", str(pmi / "pmi_k6.tsv"), "--path", str(checkpoint), "--valid-subset", "valid",
                "--batch-size", str(s.batch_size), "--num-workers", str(s.workers), "--log-format", "simple",
                *(["--cpu"] if s.cpu else [])]
    limit = ["--max-updates", str(s.finetune_max_updates)] if s.finetune_max_updates else []
    fewshot = [
        ["genemask-fewshot", "prepare", str(FEWSHOT / "10" / "train.tsv"), "--test", str(FEWSHOT / "test.tsv"),
         "--dict", str(data / "dict.txt"), "--out", str(few / "prepared"), "--force"],
        ["genemask-fewshot", "finetune", str(checkpoint), str(few / "prepared"), "--shots", "10", "--seed", "1",
         "--out", str(few / "finetuned"), *limit],
        ["genemask-fewshot", "evaluate", str(few / "finetuned" / "checkpoint_last.pt"), str(few / "prepared"),
         "--out", str(few / "test_metrics.json")],
    ]
    return {
        "data": [
            ["genemask-preprocess", str(GENOME), "--k", "6", "--out", str(data), "--full-chunk-probability", "1",
             "--reverse-complement", "--seed", "1", "--workers", str(s.workers), "--force", "--quiet"],
            ["genemask-pmi", "count", str(GENOME), "--max-n", "6", "--both-strands", "--out",
             str(pmi / "counts.npz"), "--workers", str(min(s.workers, 8)), "--quiet"],
            ["genemask-pmi", "score", str(pmi / "counts.npz"), "--k", "6", "--out", str(pmi / "pmi_k6.tsv")],
        ],
        "pretrain": runs,
        "resume": ["fairseq-train", *resume[1:]],
        "validate": validate,
        "fewshot": fewshot,
    }


def all_commands(p: dict) -> list[list[str]]:
    return [*p["data"], *(r.argv for r in p["pretrain"]), p["resume"], p["validate"], *p["fewshot"]]
