"""Every console command answers ``--help`` at once: no torch, fairseq or transformers behind it.

Each command and sub-command runs ``--help`` in a fresh process, as a user types it. The time
bound is on the process's CPU time, not the wall clock: the suite runs on shared machines where
the wall clock of a 0.3 s command can reach seconds, while CPU time stays what the command costs
(on an idle machine the two agree). Importing torch alone costs about 2 s of CPU, fairseq 5 s.
"""

from __future__ import annotations

import argparse
import configparser
import importlib
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CPU_SECONDS_BOUND = 1.0
HEAVY = ("torch", "fairseq", "transformers", "scipy", "sklearn", "matplotlib", "Bio", "pyjaspar")
"""Packages ``--help`` must not import: each costs 1-5 s of CPU, or is an optional extra (numpy, 0.15 s, and
pysam, 0.06 s, are fine)."""

# Runs a console command's entry point as its script does, then names the heavy packages loaded.
PROBE = """
import importlib, io, contextlib, sys
module, function, argv, heavy = sys.argv[1], sys.argv[2], sys.argv[3:], {heavy!r}
entry = getattr(importlib.import_module(module), function)
with contextlib.redirect_stdout(io.StringIO()) as shown:
    try:
        code = entry(argv)
    except SystemExit as done:
        code = done.code
print(code, len(shown.getvalue()), *sorted({{m.split(".")[0] for m in sys.modules}} & set(heavy)))
"""


def console_scripts() -> dict[str, str]:
    """``name -> module:function`` of every console command in setup.cfg."""
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    lines = config["options.entry_points"]["console_scripts"].strip().splitlines()
    return dict(tuple(part.strip() for part in line.split("=")) for line in lines)


def sub_commands(target: str) -> list[str]:
    """The sub-commands of a command's parser (``build_parser`` beside its ``main``), or none."""
    module = importlib.import_module(target.split(":")[0])
    parser = module.build_parser()
    found = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(found[0].choices) if found else []


def help_cases() -> list[tuple[str, str, list[str]]]:
    cases = []
    for name, target in sorted(console_scripts().items()):
        cases.append((name, target, ["--help"]))
        cases += [(name, target, [sub, "--help"]) for sub in sub_commands(target)]
    return cases


CASES = help_cases()


def run_timed(argv: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``argv``; return its result and the CPU seconds (user + system) it used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return done, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def test_every_command_and_sub_command_is_covered():
    assert {name for name, _, _ in CASES} == {"genemask-preprocess", "genemask-pmi", "genemask-motifs",
                                              "genemask-fewshot", "genemask-hf", "genemask-validate"}
    assert {tuple(argv) for name, _, argv in CASES if name == "genemask-fewshot"} >= {
        ("prepare", "--help"), ("finetune", "--help"), ("evaluate", "--help"), ("probe", "--help"),
        ("grid", "--help"), ("stats", "--help")}
    assert {tuple(argv) for name, _, argv in CASES if name == "genemask-hf"} == {
        ("--help",), ("export", "--help"), ("import", "--help")}


@pytest.mark.parametrize("name, target, argv", CASES, ids=[" ".join([c[0], *c[2][:-1]]) for c in CASES])
def test_help_imports_no_heavy_package(name, target, argv):
    module, function = target.split(":")
    done = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), module, function, *argv],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    code, shown, *heavy = done.stdout.split()
    assert (code, heavy) == ("0", []) and int(shown) > 200  # it printed a help text, importing none of them


def test_the_import_check_would_see_torch():
    """A sub-command that runs (here to a one-line error) imports what it needs, and the probe sees it."""
    done = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), "genemask_plugin.fewshot.cli", "main",
                           "evaluate", "missing.pt", "prepared"], capture_output=True, text=True, timeout=300)
    code, _, *heavy = done.stdout.split()
    assert code == "1" and {"torch", "fairseq"} <= set(heavy), done.stderr


@pytest.mark.parametrize("name, argv", [(name, argv) for name, _, argv in CASES],
                         ids=[" ".join([c[0], *c[2][:-1]]) for c in CASES])
def test_help_answers_at_once(name, argv):
    done, cpu_seconds = run_timed([str(Path(sys.executable).parent / name), *argv])
    assert done.returncode == 0 and done.stdout.startswith("usage:"), done.stderr
    assert cpu_seconds < CPU_SECONDS_BOUND, f"{name} {' '.join(argv)}: {cpu_seconds:.2f} s of CPU"
    description = done.stdout.split("\n\n")[1]  # after the usage block: what the command does
    assert not description.startswith(("positional arguments:", "options:")), done.stdout[:300]


def test_the_timing_would_see_torch():
    _, cpu_seconds = run_timed([sys.executable, "-c", "import torch"])
    assert cpu_seconds > CPU_SECONDS_BOUND


def test_the_pretraining_command_builder_answers_at_once():
    """The recipes run it once per pretraining command."""
    done, cpu_seconds = run_timed([sys.executable, "-m", "genemask_plugin.pretraining_command", "--help"])
    assert done.returncode == 0 and "--strategy" in done.stdout, done.stderr
    assert cpu_seconds < CPU_SECONDS_BOUND


def test_importing_the_plugin_imports_neither_torch_nor_fairseq():
    probe = f"import sys, genemask_plugin; print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.stdout.strip() == "[]", done.stderr
