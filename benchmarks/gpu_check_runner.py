"""How the GPU check runs a command: with this Python, logged to its own file, within one time budget."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

MODULES = {  # console command -> module run with this Python (console scripts may not be on PATH)
    "fairseq-train": "fairseq_cli.train",
    "fairseq-validate": "fairseq_cli.validate",
    "genemask-preprocess": "genemask_preprocess.corpus.cli",
    "genemask-pmi": "genemask_preprocess.pmi.cli",
    "genemask-fewshot": "genemask_plugin.fewshot.cli",
}


class CheckFailed(Exception):
    """One step failed; the message is the one line printed."""


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
