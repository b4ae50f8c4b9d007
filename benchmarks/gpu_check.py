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
   cores, the recipes' one command (``examples/_common.sh: pretrain_args``): ``genemask_dnabert_base`` with
   ``--bf16``, then ``--fp16``; ``--task masked_lm`` (fairseq's own, bf16) for the ratio; ``genemask_logo`` (bf16)
   for its extrapolation. Asserts a finite, decreasing loss; records words/s and sequences/s (median of the
   ``train_inner`` intervals after the first), peak GPU memory (fairseq's per-update peak allocation, and
   nvidia-smi's peak use), wall time;
3. the bf16 run's checkpoint: resumed for 2 more log intervals (20 updates) (must continue from update N, not restart), then
   ``fairseq-validate`` on the GPU (finite loss);
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
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import statistics
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "genemask_plugin"
GENOME = REPO / "data" / "genomes" / "S288C_chr01_chr06.fa.gz"
FEWSHOT = REPO / "data" / "fewshot" / "Prom-core"
MODULES = {  # console command -> module run with this Python (console scripts may not be on PATH)
    "fairseq-train": "fairseq_cli.train",
    "fairseq-validate": "fairseq_cli.validate",
    "genemask-preprocess": "genemask_preprocess.corpus.cli",
    "genemask-pmi": "genemask_preprocess.pmi.cli",
    "genemask-fewshot": "genemask_plugin.fewshot.cli",
}
# The paper's pretraining: 10 000 updates of 1 000 sequences; its chunks are 511 bases with p = 0.5, else uniform
# in 6..510, so 0.5 * 508 + 0.5 * 255 = ~380 tokens each.
PAPER_UPDATES, PAPER_SEQUENCES, PAPER_TOKENS = 10_000, 1_000, 380
PAPER_HOURS = {"genemask_dnabert_base": 60.0, "genemask_logo": 20.0}  # 2.5 days and ~20 h on 4 GTX 1080 Ti
RESUME_EXTRA = 2  # log intervals run after resuming
TORCH_INDEX = "https://download.pytorch.org/whl/cu128"


class CheckFailed(Exception):
    """One step failed; the message is the one line printed."""


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


# --------------------------------------------------------------------------------------------- command lines


def recipe_pretrain_args(data, table, arch, strategy, updates, lr, warmup, batch, save_dir, *extra) -> list[str]:
    """The recipes' one pretraining command (examples/_common.sh: pretrain_args), as fairseq-train arguments."""
    script = (f"source {shlex.quote(str(REPO / 'examples' / '_common.sh'))}; "
              'pretrain_args "$@"; printf "%s\\0" "${PRETRAIN_ARGS[@]}"')
    values = [data, table, arch, strategy, updates, lr, warmup, batch, save_dir, *extra]
    result = subprocess.run(["bash", "-c", script, "pretrain_args", *map(str, values)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise CheckFailed(f"examples/_common.sh pretrain_args failed: {result.stderr.strip()}")
    return result.stdout.split("\0")[:-1]


def as_masked_lm(argv: list[str]) -> list[str]:
    """The same run with fairseq's own --task masked_lm (one 508-token chunk per block, as ours)."""
    out, skip = [], 0
    for i, arg in enumerate(argv):
        if skip:
            skip -= 1
            continue
        if arg in ("--task", "--criterion", "--mask-strategy", "--pmi-table"):
            skip = 1
            continue
        out.append(arg)
        if i == 0:
            out += ["--task", "masked_lm", "--criterion", "masked_lm", "--sample-break-mode", "complete"]
    return out


def pretraining_runs(s: Settings) -> list[Pretraining]:
    if s.cpu:  # one run per code path: ours (kept for resume and few-shot) and fairseq's masked_lm
        return [Pretraining("tiny", "genemask_tiny", "fp32", save=True),
                Pretraining("tiny_masked_lm", "genemask_tiny", "fp32", task="masked_lm")]
    return [Pretraining("dnabert_bf16", "genemask_dnabert_base", "bf16", save=True),
            Pretraining("dnabert_fp16", "genemask_dnabert_base", "fp16"),
            Pretraining("dnabert_masked_lm_bf16", "genemask_dnabert_base", "bf16", task="masked_lm"),
            Pretraining("logo_bf16", "genemask_logo", "bf16")]


def pretrain_argv(s: Settings, run: Pretraining, updates: int, save_dir: Path) -> list[str]:
    device = ["--cpu"] if s.cpu else [f"--{run.precision}"]
    saving = ["--save-interval", "1000"] if run.save else ["--no-save"]
    argv = recipe_pretrain_args(
        s.work / "data", s.work / "pmi" / "pmi_k6.tsv", run.arch, "genemask", updates, s.lr,
        max(1, updates // 10), s.batch_size, save_dir,
        "--num-workers", s.workers, "--disable-validation", "--log-format", "simple",
        "--log-interval", s.log_interval, "--required-batch-size-multiple", "1", *saving, *device,
    )
    return ["fairseq-train", *(as_masked_lm(argv) if run.task == "masked_lm" else argv)]


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


# --------------------------------------------------------------------------------------------- running


class Runner:
    """Runs commands with this Python, each logged to its own file, within one overall time budget."""

    def __init__(self, out: Path, logs: Path, budget_s: float):
        self.start = time.monotonic()
        self.budget_s = budget_s
        self.logs = logs
        self.transcript = open(out / "gpu_check.log", "a")

    def say(self, text: str) -> None:
        print(text, flush=True)
        self.transcript.write(text + "\n")
        self.transcript.flush()

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.start)

    def run(self, name: str, argv: list[str], step: str) -> tuple[str, float]:
        """Run one command; returns (its output, seconds). Fails the step on a non-zero exit or the budget."""
        if self.left() <= 5:
            raise CheckFailed(f"{step}: the {self.budget_s:.0f} s budget is spent before {name}")
        command = [sys.executable, "-m", MODULES[argv[0]], *argv[1:]]
        log = self.logs / f"{name}.log"
        self.say(f"+ {shlex.join(argv)}")
        started = time.monotonic()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
        with open(log, "w") as handle:
            handle.write(f"+ {shlex.join(argv)}\n")
            handle.flush()
            try:
                code = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env,
                                      timeout=self.left()).returncode
            except subprocess.TimeoutExpired:
                raise CheckFailed(f"{step}: {name} ran past the {self.budget_s:.0f} s budget (log: {log})") from None
        seconds = time.monotonic() - started
        text = log.read_text(errors="replace")
        if code != 0:
            last = next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "no output")
            raise CheckFailed(f"{step}: {name} exited {code}: {last} (log: {log})")
        return text, seconds


class MemorySampler:
    """nvidia-smi's memory use of GPU 0, sampled every 200 ms while a run lasts; its peak in MiB."""

    def __init__(self, path: Path, enabled: bool):
        self.path, self.process = path, None
        if enabled:
            try:
                self.process = subprocess.Popen(
                    ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0",
                     "-lms", "200"], stdout=open(path, "w"), stderr=subprocess.DEVNULL)
            except OSError:
                self.process = None

    def stop(self) -> float | None:
        if self.process is None:
            return None
        self.process.terminate()
        self.process.wait(timeout=10)
        values = [float(v) for v in self.path.read_text().split() if re.fullmatch(r"[\d.]+", v)]
        return max(values) if values else None


# --------------------------------------------------------------------------------------------- reading logs


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


# --------------------------------------------------------------------------------------------- environment


def python_probe(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def pip_install(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=timeout)


def ensure_environment(s: Settings, wheelhouse: Path | None, say) -> dict:
    """A CUDA torch, fairseq and this package importable by this Python; installs what is missing, timed."""
    env = {"python": sys.version.split()[0], "cores": os.cpu_count(), "install_s": {}}
    probe = python_probe("import torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_available())")
    has_cuda_torch = probe.returncode == 0 and probe.stdout.split()[-1] == "True"
    if not s.cpu and not has_cuda_torch:
        started = time.monotonic()
        wheels = sorted(wheelhouse.glob("torch-*.whl")) if wheelhouse else []
        say(f"no CUDA torch ({(probe.stdout or probe.stderr).strip()[-200:]}); installing "
            + (f"{wheels[-1].name}" if wheels else f"torch from {TORCH_INDEX}"))
        try:
            result = pip_install([str(wheels[-1])] if wheels else ["torch", "--index-url", TORCH_INDEX], 420)
        except subprocess.TimeoutExpired:
            raise CheckFailed("environment: installing a CUDA torch took over 420 s") from None
        if result.returncode != 0:
            raise CheckFailed("environment: no CUDA torch, and none could be installed (no index reachable? put a "
                              f"CUDA torch wheel in --wheelhouse): {result.stderr.strip().splitlines()[-1:]}")
        env["install_s"]["torch"] = round(time.monotonic() - started, 1)
        say(f"installed torch in {env['install_s']['torch']} s")
    imports = "import fairseq, fairseq_cli.train, fairseq_cli.validate, genemask_plugin, genemask_preprocess.corpus.cli"
    if python_probe(imports).returncode != 0:
        if not wheelhouse or not any(wheelhouse.glob("*.whl")):
            raise CheckFailed("environment: fairseq or this package is not installed; run benchmarks/gpu_wheels.sh "
                              "where pip works and pass --wheelhouse .whl (the device has no package index)")
        started = time.monotonic()
        wheels = [str(w) for w in sorted(wheelhouse.glob("*.whl")) if not w.name.startswith("torch-")]
        offline = ["--no-index", "--no-deps", "--no-cache-dir"]
        result = pip_install([*offline, *wheels], 300)
        if result.returncode == 0:
            result = pip_install([*offline, "--no-build-isolation", "-e", str(REPO)], 300)
        if result.returncode != 0:
            # An environment we may not write to: the wheels into a folder of our own, and this package by path
            # (its folder preprocess/ is imported as genemask_preprocess).
            say(f"pip could not install into this Python ({result.stderr.strip().splitlines()[-1:]}); "
                f"installing into {s.work / 'site'} instead")
            site = s.work / "site"
            result = pip_install([*offline, "--target", str(site), *wheels], 300)
            if result.returncode != 0:
                raise CheckFailed(f"environment: pip install of the wheelhouse failed: "
                                  f"{result.stderr.strip().splitlines()[-1:]}")
            link = site / "genemask_preprocess"
            if not link.exists():
                link.symlink_to(REPO / "preprocess", target_is_directory=True)
            os.environ["PYTHONPATH"] = os.pathsep.join(
                [str(REPO), str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
        env["install_s"]["fairseq_and_plugin"] = round(time.monotonic() - started, 1)
        say(f"installed fairseq and genemask-plugin offline in {env['install_s']['fairseq_and_plugin']} s")
        probe_imports = python_probe(imports)
        if probe_imports.returncode != 0:
            raise CheckFailed(f"environment: still cannot import: {probe_imports.stderr.strip().splitlines()[-1:]}")
    info = python_probe(
        "import json, torch, fairseq; c = torch.cuda.is_available(); p = torch.cuda.get_device_properties(0) if c "
        "else None; print(json.dumps({'torch': torch.__version__, 'cuda': torch.version.cuda, 'fairseq': "
        "fairseq.__version__, 'gpu': p.name if p else None, 'capability': '%d.%d' % (p.major, p.minor) if p else "
        "None, 'gpu_memory_gb': round(p.total_memory / 1024**3, 1) if p else None, 'gpus': "
        "torch.cuda.device_count()}))")
    if info.returncode != 0:
        raise CheckFailed(f"environment: {info.stderr.strip().splitlines()[-1:]}")
    env.update(json.loads(info.stdout.strip().splitlines()[-1]))
    if not s.cpu and not env["gpu"]:
        raise CheckFailed("environment: torch sees no GPU")
    if not s.cpu and env["capability"] and int(env["capability"].split(".")[0]) < 8:
        raise CheckFailed(f"environment: compute capability {env['capability']} has no bf16; the check needs >= 8.0")
    return env


# --------------------------------------------------------------------------------------------- the check


def hours_for_paper_run(words_per_s: float) -> float:
    return PAPER_UPDATES * PAPER_SEQUENCES * PAPER_TOKENS / words_per_s / 3600


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


def summary_markdown(report: dict) -> str:
    env = report.get("environment", {})
    lines = [f"# GPU check: {report['status']}", "",
             f"{env.get('gpu') or 'CPU'} (compute capability {env.get('capability')}, {env.get('gpu_memory_gb')} GB), "
             f"{env.get('cores')} cores; torch {env.get('torch')} (CUDA {env.get('cuda')}), fairseq "
             f"{env.get('fairseq')}, Python {env.get('python')}; installs: {env.get('install_s') or 'none'}; "
             f"total {report['total_s']} s.", ""]
    pre = report.get("pretrain", {})
    if pre:
        st = report["settings"]
        lines += [f"Pretraining, {st['updates']} updates x {st['batch_size']} sequences, {st['num_workers']} data "
                  "workers (words/s and sequences/s: median over the logged intervals after the first):", "",
                  "| run | arch | task | precision | loss first → last | words/s | sequences/s | tokens/seq "
                  "| peak allocated GB | peak nvidia-smi GB | wall s |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, r in pre.items():
            lines.append(f"| {name} | {r['arch']} | {r['task']} | {r['precision']} | {r['loss_first']:.3f} → "
                         f"{r['loss_last']:.3f} | {r['words_per_s']:.0f} | {r['sequences_per_s']:.1f} | "
                         f"{r['tokens_per_sequence']:.0f} | {r['peak_allocated_gb']} | {r['peak_nvidia_smi_gb']} "
                         f"| {r['wall_s']} |")
        lines.append("")
        ours = next((r for r in pre.values() if r["task"] == "genemask_mlm"), None)
        theirs = next((r for r in pre.values() if r["task"] == "masked_lm"), None)
        if ours and theirs:
            lines.append(f"words/s, genemask_mlm / masked_lm (same arch and precision): "
                         f"**{ours['words_per_s'] / theirs['words_per_s']:.2f}**")
        fp = [r for r in pre.values() if r["precision"] == "fp16" and r["task"] == "genemask_mlm"]
        if ours and fp:
            lines.append(f"words/s, bf16 / fp16: **{ours['words_per_s'] / fp[0]['words_per_s']:.2f}**")
        rows = [f"| {r['arch']} | {r['words_per_s']:.0f} | {hours_for_paper_run(r['words_per_s']):.1f} "
                f"| {PAPER_HOURS[r['arch']]:.0f} h |" for r in pre.values()
                if r["task"] == "genemask_mlm" and r["precision"] in ("bf16", "fp32") and r["arch"] in PAPER_HOURS]
        if rows:
            lines += ["", "The paper's pretraining (10 000 updates x 1 000 sequences x ~380 tokens) on one such GPU, "
                      "from the bf16 words/s above (measured on 508-token blocks; the paper's shorter blocks cost "
                      "less attention per token, so the hours are a slight overestimate):", "",
                      "| arch | words/s | hours here | paper: 4 GTX 1080 Ti |", "|---|---|---|---|", *rows]
        lines.append("")
    if "resume" in report:
        r = report["resume"]
        lines.append(f"Resume: continued at update {r['from_update']} to {r['to_update']}, loss {r['loss']:.3f}. "
                     f"fairseq-validate loss: {report.get('validate', {}).get('loss')}.")
    if "fewshot" in report:
        m = report["fewshot"]["metrics"]
        lines.append("Prom-core 10-shot from the resumed checkpoint: " + ", ".join(
            f"{k} {v:.3f}" for k, v in m.items() if isinstance(v, float)) + f" (fine-tune "
            f"{report['fewshot']['finetune_s']} s, evaluate {report['fewshot']['evaluate_s']} s).")
    return "\n".join(lines) + "\n"


def finish(s: Settings, report: dict, say) -> None:
    pre = report.get("pretrain", {})
    report["extrapolated_hours"] = {
        r["arch"]: round(hours_for_paper_run(r["words_per_s"]), 2) for r in pre.values()
        if r["task"] == "genemask_mlm" and r["precision"] in ("bf16", "fp32") and r["arch"] in PAPER_HOURS}
    (s.out / "summary.json").write_text(json.dumps(report, indent=2) + "\n")
    text = summary_markdown(report)
    (s.out / "summary.md").write_text(text)
    with tarfile.open(s.out / "logs.tar.gz", "w:gz") as tar:
        tar.add(s.work / "logs", arcname="logs")
    say("")
    say(text)
    if report["status"] != "passed":
        say(f"gpu_check: {report['status']}")


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
    try:
        sys.exit(main())
    except CheckFailed as failure:  # before the check starts (e.g. the recipes' command cannot be built)
        print(f"gpu_check: FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
