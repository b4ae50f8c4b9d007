"""Fault injection for every console command: full disk, signals, hostile inputs, unwritable outputs.

Every case asserts the exit code, exactly one line on stderr (``PROG: ...``), no traceback,
and nothing new, changed or removed in the case's workspace. The commands and file kinds are
tables in ``fault_commands.py``: a new command is one row there. See docs/reliability.md.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from fault_commands import COMMANDS, CORRUPTIONS, Command
from fault_harness import assert_clean_failure, run_case, snapshot

pytestmark = pytest.mark.filterwarnings("ignore")
BIN = Path(sys.executable).parent
PLUGIN = Path(__file__).resolve().parents[2] / "genemask_plugin"


def _param(command: Command, *rest, name: str = ""):
    marks = [pytest.mark.slow] if command.slow else []
    return pytest.param(command, *rest, marks=marks, id="-".join(filter(None, [command.name, name])))


def _run(command: Command, workspace: Path, argv=None, **kwargs):
    return run_case(command.entry, list(argv or command.argv), workspace, **kwargs)


def _with_out(command: Command, new_out: str) -> list[str]:
    """The command's argv with its output path moved to ``new_out``."""
    out = command.out
    return [new_out + arg[len(out):] if arg == out or arg.startswith(out + "/") else arg for arg in command.argv]


@pytest.mark.parametrize("command", [_param(c) for c in COMMANDS if c.name != "fewshot-finetune"])  # ran in `inputs`
def test_good_run_follows_the_umask(command, workspace):
    """The row's invocation works (so every failure below is caused by its fault), and what it
    writes has the umask's permissions, temporary-then-renamed files and folders included."""
    outcome = _run(command, workspace, umask=0o027)
    assert outcome.code == 0, outcome.stderr
    assert "Traceback" not in outcome.stderr
    out = workspace / command.out
    paths = [out, *out.rglob("*")] if out.is_dir() else [out]
    assert paths and all(path.exists() for path in paths)
    for path in paths:
        expected = 0o750 if path.is_dir() else 0o640
        assert path.stat().st_mode & 0o777 == expected, (path, oct(path.stat().st_mode))


@pytest.mark.parametrize("command", [_param(c) for c in COMMANDS if c.fsize])
def test_file_size_limit(command, workspace):
    """A full disk (here RLIMIT_FSIZE) mid-write: exit 1, one line, no partial output or temp file."""
    before = snapshot(workspace)
    outcome = _run(command, workspace, fsize=command.fsize)
    assert_clean_failure(outcome, command.prog, 1, before, snapshot(workspace))


SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@pytest.mark.parametrize(
    "command, signum",
    [_param(c, s, name=s.name) for c in COMMANDS for s in SIGNALS if not (c.slow and s == signal.SIGHUP)],
)
def test_signal_to_the_process_group(command, signum, workspace):
    """SIGTERM (a scheduler's time limit), SIGINT (Ctrl-C), SIGHUP mid-run, workers included."""
    before = snapshot(workspace)
    outcome = _run(command, workspace, pause=command.pause, pause_module=command.pause_module, send=signum)
    assert_clean_failure(outcome, command.prog, 128 + signum, before, snapshot(workspace),
                         match=f"interrupted by {signum.name}")


def _under_a_file(workspace: Path) -> str:
    (workspace / "a_file").write_text("not a folder\n")
    return "a_file/sub/out"


def _in_proc(workspace: Path) -> str:
    return "/proc/genemask-fault-test/out"


def _in_read_only_pseudo_fs(workspace: Path) -> str:
    return "/proc/self/out"


UNWRITABLE = {"under-a-regular-file": _under_a_file, "in-proc": _in_proc, "proc-self": _in_read_only_pseudo_fs}


@pytest.mark.parametrize(
    "command, where", [_param(c, w, name=w) for c in COMMANDS for w in UNWRITABLE]
)
def test_unwritable_output(command, where, workspace):
    new_out = UNWRITABLE[where](workspace)
    before = snapshot(workspace)
    outcome = _run(command, workspace, argv=_with_out(command, new_out))
    assert_clean_failure(outcome, command.prog, 1, before, snapshot(workspace))


def _corruption_cases():
    for command in COMMANDS:
        for path, kind in command.reads.items():
            for name, edit in CORRUPTIONS[kind].items():
                yield _param(command, path, edit, name=f"{kind}-{name}")
        for name, (path, edit) in command.extra_cases.items():
            yield _param(command, path, edit, name=name)


@pytest.mark.parametrize("command, path, edit", list(_corruption_cases()))
def test_hostile_input(command, path, edit, workspace):
    """Truncated, corrupt or hand-edited input: exit 1 and one line naming the problem."""
    edit(workspace / path)
    before = snapshot(workspace)
    outcome = _run(command, workspace)
    assert_clean_failure(outcome, command.prog, 1, before, snapshot(workspace))
    assert os.path.basename(path.rstrip("/")) in outcome.stderr or command.name.startswith("fewshot-")


# ---------------------------------------------------------------------------------------------
# Fresh processes: what only a real console script shows (import-time noise, fairseq's own CLI)


def _fresh(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("GENEMASK_DEBUG", None)
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_fewshot_error_is_one_line_from_a_fresh_process(workspace):
    """No fairseq import-time line ("Please install tensorboardX") before the error."""
    done = _fresh([str(BIN / "genemask-fewshot"), "evaluate", "missing.pt", "prep"], workspace)
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == ["genemask-fewshot: error: checkpoint not found: missing.pt"]


FAIRSEQ_TASK_ERRORS = {
    "missing-pmi-table": (["--pmi-table", "nowhere.tsv"], "nowhere.tsv: no such PMI table"),
    "inf-score": (["--pmi-table", "pmi_inf.tsv"], "scores must be finite"),
    "centre-prob-2": (["--pmi-table", "pmi.tsv", "--centre-prob", "2"], "centre"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(FAIRSEQ_TASK_ERRORS))
def test_fairseq_train_task_error_is_one_line(case, workspace):
    extra, expected = FAIRSEQ_TASK_ERRORS[case]
    lines = (workspace / "pmi.tsv").read_text().splitlines(keepends=True)
    first_3 = next(i for i, line in enumerate(lines) if line.split("\t")[1] == "3")
    fields = lines[first_3].split("\t")
    fields[5] = "inf"
    lines[first_3] = "\t".join(fields)
    (workspace / "pmi_inf.tsv").write_text("".join(lines))
    before = snapshot(workspace)
    done = _fresh([str(BIN / "fairseq-train"), "corpus", "--user-dir", str(PLUGIN), "--task", "genemask_mlm",
                   "--criterion", "genemask_mlm", "--arch", "genemask_tiny", "--mask-strategy", "genemask",
                   "--max-update", "1", "--batch-size", "2", "--cpu", "--save-dir", "ckpt", "--no-save",
                   *extra], workspace)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in lines if line.startswith("genemask_mlm: error: ")]
    assert len(errors) == 1 and expected in errors[0], done.stderr
    assert lines[-1] == errors[0], done.stderr
    after = snapshot(workspace)
    assert set(after) - set(before) <= {"ckpt"}, sorted(set(after) - set(before))


# ---------------------------------------------------------------------------------------------
# What the shared output path already guarantees, per command


@pytest.mark.parametrize("command", [_param(c) for c in COMMANDS if c.force is not None])
def test_force_replaces_only_the_commands_own_files(command, workspace):
    """The user's files that merely look like outputs (train.notes, valid.mine) are kept."""
    out = workspace / command.out
    out.mkdir()
    mine = {"train.notes": "my notes\n", "valid.mine.txt": "keep\n", "dict.txt.orig": "mine\n", "report.old": "x\n"}
    for name, text in mine.items():
        (out / name).write_text(text)
    refused = _run(command, workspace)
    if command.force:  # without the option, a folder holding files is refused
        assert refused.code == 1 and len(refused.stderr_lines) == 1, refused.stderr
    argv = [*command.argv, command.force] if command.force else command.argv
    outcome = _run(command, workspace, argv=argv)
    assert outcome.code == 0, outcome.stderr
    for name, text in mine.items():
        assert (out / name).read_text() == text
    assert len(list(out.iterdir())) > len(mine)


# ---------------------------------------------------------------------------------------------
# Unusual but valid input must work, not be refused


def _crlf_trailing_spaces_lowercase(ws: Path) -> list[str]:
    text = (ws / "genome.fa").read_text()
    (ws / "odd.fa").write_text("".join(
        line.lower() + "  \r\n" if not line.startswith(">") else line + "\r\n" for line in text.splitlines()
    ))
    return ["odd.fa"]


def _long_tsv_field(ws: Path) -> list[str]:
    rng = random.Random(1)
    (ws / "long.tsv").write_text("sequence\tlabel\n" + "".join(rng.choice("ACGT") for _ in range(200_000)) + "\t1\n")
    return ["long.tsv"]


def _long_fewshot_sequence(ws: Path) -> list[str]:
    rng = random.Random(2)
    rows = (ws / "train.tsv").read_text().splitlines()
    rows[1] = "".join(rng.choice("ACGT") for _ in range(150_000)) + "\t" + rows[1].split("\t")[1]
    (ws / "train_long.tsv").write_text("\n".join(rows) + "\n")
    return ["train_long.tsv"]


VALID = {
    "preprocess-crlf-trailing-spaces-lowercase": (
        "preprocess", _crlf_trailing_spaces_lowercase, lambda f: [f, "--k", "3", "--out", "o", "--workers", "1", "--quiet"]),
    "pmi-count-200kbp-tsv-field": (
        "pmi-count", _long_tsv_field, lambda f: ["count", f, "--max-n", "4", "--out", "o.npz", "--workers", "1", "--quiet"]),
    # A sequence longer than the model's positions is read whole, then cut as asked (issue 12's
    # --truncate); without --truncate it is a one-line error (tested in tests/plugin/fewshot).
    "fewshot-prepare-150kbp-sequence": (
        "fewshot-prepare", _long_fewshot_sequence,
        lambda f: ["prepare", f, "--dict", "corpus/dict.txt", "--out", "o", "--truncate", "centre"]),
}


@pytest.mark.parametrize("case", list(VALID))
def test_unusual_valid_input_works(case, workspace):
    name, make, argv = VALID[case]
    command = next(c for c in COMMANDS if c.name == name)
    outcome = _run(command, workspace, argv=argv(*make(workspace)))
    assert outcome.code == 0, outcome.stderr
    assert "Traceback" not in outcome.stderr


def test_crlf_lowercase_genome_gives_the_same_corpus(workspace):
    """CR, trailing spaces and soft-masking change nothing in the corpus."""
    command = next(c for c in COMMANDS if c.name == "preprocess")
    odd = _crlf_trailing_spaces_lowercase(workspace)[0]
    for genome, out in (("genome.fa", "plain"), (odd, "odd")):
        outcome = _run(command, workspace, argv=[genome, "--k", "3", "--out", out, "--workers", "1", "--quiet"])
        assert outcome.code == 0, outcome.stderr
    for name in ("train.bin", "train.idx", "valid.bin", "valid.idx"):
        assert (workspace / "plain" / name).read_bytes() == (workspace / "odd" / name).read_bytes()
