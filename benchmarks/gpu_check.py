"""The GPU check: one command that exercises everything this plugin does on a GPU, in under 8 minutes.

Usage: python3 benchmarks/gpu_check.py [--out DIR] [--work-dir DIR] [--wheelhouse DIR]
                                       [--updates 150] [--batch-size 32] [--budget-s 480] [--cpu] [--dry-run]

Needs only the repository (and, on a machine without fairseq or a package index, the wheels that
benchmarks/gpu_wheels.sh puts in .whl/). Steps,
each failing fast with one line ``gpu_check: FAILED at STEP: WHY`` and exit status 1:

0. environment: a CUDA torch (installed from the wheelhouse or the PyTorch index if missing, timed), then fairseq
   and this package (installed offline from ``--wheelhouse`` if missing, timed); records GPU, torch, CUDA, cores;
1. data: ``genemask-preprocess`` of the bundled yeast chromosomes, both strands, every chunk 511 bases (so every
   sample is a realistic 508-token block), and a 6-mer PMI table (``genemask-pmi count`` + ``score``);
2. pretraining, each ``--updates`` updates of ``--batch-size`` x 512-token blocks, ``--num-workers`` from the
   cores, the project's one pretraining command (``genemask_plugin/pretraining_command.py``, as the recipes run
   it): ``genemask_dnabert_base`` with ``--bf16``, then ``--fp16``; the same with fairseq's own ``--task
   masked_lm`` (bf16) for the ratio; ``genemask_logo`` (bf16) for its extrapolation. Asserts a finite, decreasing
   loss; records words/s and sequences/s (median of the ``train_inner`` intervals after the first), peak GPU memory
   (fairseq's per-update peak allocation, and nvidia-smi's peak use), wall time;
3. the bf16 run's checkpoint: resumed for 2 more log intervals (20 updates) (must continue from update N, not
   restart), then ``fairseq-validate`` on the GPU (finite loss);
4. few-shot: ``genemask-fewshot prepare`` / ``finetune`` / ``evaluate`` on the bundled Prom-core 10-shot set from
   that checkpoint, on the GPU;
5. the summary table (also ``summary.md`` and ``summary.json``), with the paper's pretraining run (10 000 updates
   x 1 000 sequences x ~380 tokens) extrapolated to hours on this GPU for ``genemask_dnabert_base`` and
   ``genemask_logo``.

Everything that should come back lands in ``--out`` (default ``$OUT``, else ``gpu_check_out``): ``summary.md``,
``summary.json``, ``gpu_check.log`` (this output) and ``logs.tar.gz`` (every command's log). Data and checkpoints
(GBs) stay in ``--work-dir``. ``--dry-run`` prints every command and runs none (the test suite parses them with
fairseq's and our parsers); ``--cpu`` runs the same path with ``genemask_tiny`` on the CPU (the test suite's
end-to-end run).

This file holds the steps in order; its parts sit beside it: ``gpu_check_commands.py`` (settings and every command),
``gpu_check_environment.py`` (step 0), ``gpu_check_runner.py`` (running a command within the budget),
``gpu_check_logs.py`` (reading fairseq's logs) and ``gpu_check_report.py`` (the summary).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from pathlib import Path

from gpu_check_commands import REPO, Settings, all_commands, plan
from gpu_check_environment import ensure_environment
from gpu_check_logs import resumed_from, train_inner_records, training_stats, validation_loss
from gpu_check_report import finish
from gpu_check_runner import CheckFailed, MemorySampler, Runner


def check(s: Settings, wheelhouse: Path | None, budget_s: float) -> dict:
    logs = s.work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    runner = Runner(s.out, logs, budget_s)
    say = runner.say
    report: dict = {"settings": {"updates": s.updates, "batch_size": s.batch_size, "num_workers": s.workers,
                                 "cpu": s.cpu, "lr": s.lr}}
    step = "environment"
    try:
        say("== 0 environment")
        report["environment"] = env = ensure_environment(s, wheelhouse, say)
        say(json.dumps(env))
        p = plan(s)

        step = "data"
        say("== 1 corpus and PMI table (bundled yeast chromosomes I + VI, both strands, 511-base chunks)")
        for i, argv in enumerate(p["data"]):
            _, seconds = runner.run(f"data_{i}", argv, step)
        corpus = json.loads((s.work / "data" / "preprocess.json").read_text())
        report["data"] = {"corpus": corpus.get("splits", corpus.get("counts"))}

        step = "pretrain"
        say(f"== 2 pretraining: {s.updates} updates x {s.batch_size} blocks of 512 tokens, "
            f"{s.workers} data workers")
        report["pretrain"] = {}
        for run in p["pretrain"]:
            sampler = MemorySampler(logs / f"{run.name}.nvidia-smi.txt", enabled=not s.cpu)
            try:
                log, seconds = runner.run(run.name, run.argv, f"{step} {run.name}")
            finally:
                peak_mib = sampler.stop()
            stats = training_stats(run.name, log, s.updates, s.log_interval)
            total_gb = env.get("gpu_memory_gb")
            stats.update(arch=run.arch, task=run.task, precision=run.precision, wall_s=round(seconds, 1),
                         peak_allocated_gb=None if stats["min_gb_free"] is None or not total_gb
                         else round(total_gb - stats["min_gb_free"], 1),
                         peak_nvidia_smi_gb=None if peak_mib is None else round(peak_mib / 1024, 1))
            report["pretrain"][run.name] = stats
            say(f"   {run.name}: loss {stats['loss_first']:.3f} -> {stats['loss_last']:.3f}, "
                f"{stats['words_per_s']:.0f} words/s, {stats['sequences_per_s']:.1f} sequences/s, "
                f"peak {stats['peak_allocated_gb']} GB allocated, {seconds:.0f} s")

        step = "resume"
        saved = next(r for r in p["pretrain"] if r.save)
        say(f"== 3 resume {saved.name} from checkpoint_last.pt for {s.resume_extra} more updates, then validate")
        log, seconds = runner.run("resume", p["resume"], step)
        start = resumed_from(log)
        if start != s.updates:
            raise CheckFailed(f"resume: fairseq resumed from update {start}, not {s.updates}")
        records = train_inner_records(log)
        if not records or records[-1].get("num_updates") != s.updates + s.resume_extra:
            raise CheckFailed(f"resume: it did not reach update {s.updates + s.resume_extra}")
        loss = records[-1]["loss"]
        before = report["pretrain"][saved.name]
        if not math.isfinite(loss) or loss >= before["loss_first"]:
            raise CheckFailed(f"resume: loss {loss} after resuming is not below the first loss "
                              f"{before['loss_first']:.3f} (restarted from scratch?)")
        report["resume"] = {"from_update": start, "to_update": s.updates + s.resume_extra, "loss": loss,
                            "wall_s": round(seconds, 1)}

        step = "validate"
        log, seconds = runner.run("validate", p["validate"], step)
        valid = validation_loss(log)
        if not math.isfinite(valid):
            raise CheckFailed(f"validate: loss {valid}")
        report["validate"] = {"loss": valid, "wall_s": round(seconds, 1)}
        say(f"   resumed at update {start}, loss {loss:.3f} at {s.updates + s.resume_extra}; "
            f"fairseq-validate loss {valid:.3f}")

        step = "fewshot"
        say("== 4 few-shot: Prom-core 10-shot, fine-tuned from that checkpoint and evaluated")
        timings = {}
        for name, argv in zip(("prepare", "finetune", "evaluate"), p["fewshot"], strict=True):
            _, timings[name] = runner.run(f"fewshot_{name}", argv, step)
        metrics = json.loads((s.work / "fewshot" / "test_metrics.json").read_text())
        if not 0.0 <= metrics.get("accuracy", -1.0) <= 1.0:
            raise CheckFailed(f"fewshot: accuracy {metrics.get('accuracy')} out of [0, 1]")
        report["fewshot"] = {"metrics": metrics, **{f"{k}_s": round(v, 1) for k, v in timings.items()}}
        say(f"   test accuracy {metrics['accuracy']:.3f}, n = {metrics.get('n')}")
        report["status"] = "passed"
    except CheckFailed as failure:
        report["status"] = f"FAILED at {step}: {failure}"
    report["total_s"] = round(time.monotonic() - runner.start, 1)
    finish(s, report, say)
    runner.transcript.close()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "gpu_check_out"),
                        help="what comes back: summary.md, summary.json, gpu_check.log, logs.tar.gz "
                             "(default: $OUT, else gpu_check_out)")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/genemask_gpu_check"),
                        help="data and checkpoints (default /tmp/genemask_gpu_check)")
    parser.add_argument("--wheelhouse", type=Path, default=REPO / ".whl",
                        help="wheels to install offline when fairseq is missing (default .whl, filled by "
                             "benchmarks/gpu_wheels.sh)")
    parser.add_argument("--updates", type=int, help="updates per pretraining run (default 150; --cpu: 20)")
    parser.add_argument("--batch-size", type=int, help="sequences per update (default 32; --cpu: 4)")
    parser.add_argument("--num-workers", type=int, help="data workers (default: cores - 1, 1..8)")
    parser.add_argument("--budget-s", type=float, default=480, help="stop with a failure after this (480)")
    parser.add_argument("--cpu", action="store_true", help="the same path on the CPU with genemask_tiny")
    parser.add_argument("--dry-run", action="store_true", help="print every command, run none")
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 2
    s = Settings(
        out=args.out.resolve(), work=args.work_dir.resolve(),
        updates=args.updates or (20 if args.cpu else 150), batch_size=args.batch_size or (4 if args.cpu else 32),
        workers=args.num_workers or max(1, min(8, cores - 1)), cpu=args.cpu,
        log_interval=5 if args.cpu else 10, lr=3e-3 if args.cpu else 5e-4,
        finetune_max_updates=4 if args.cpu else None,
    )
    if s.updates % s.log_interval or s.updates < 2 * s.log_interval:
        parser.error(f"--updates must be a multiple of {s.log_interval} and at least {2 * s.log_interval}")
    if args.dry_run:
        for argv_ in all_commands(plan(s)):
            print("+ " + shlex.join(argv_))
        return 0
    s.out.mkdir(parents=True, exist_ok=True)
    report = check(s, args.wheelhouse if args.wheelhouse.is_dir() else None, args.budget_s)
    return 0 if report["status"] == "passed" else 1


if __name__ == "__main__":
    sys.exit(main())
