"""Fault injection for every console command: full disk, signals, hostile inputs, unwritable outputs.

Every case asserts the exit code, exactly one line on stderr (``PROG: ...``), no traceback,
and nothing new, changed or removed in the case's workspace. The commands and file kinds are
tables in ``fault_commands.py``: a new command is one row there. See docs/reliability.md.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest
from fault_commands import COMMANDS, CORRUPTIONS, Command, build_inputs
from fault_harness import assert_clean_failure, run_case, snapshot

pytestmark = pytest.mark.filterwarnings("ignore")


def _param(command: Command, *rest, name: str = ""):
    marks = [pytest.mark.slow] if command.slow else []
    return pytest.param(command, *rest, marks=marks, id="-".join(filter(None, [command.name, name])))


@pytest.fixture(scope="session")
def inputs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fault-inputs")
    (root / ".case-tmp").mkdir()

    def run(entry, argv):
        outcome = run_case(entry, argv, root)
        assert outcome.code == 0, outcome.stderr

    build_inputs(root, run)
    shutil.rmtree(root / ".case-tmp")
    return root


@pytest.fixture
def workspace(inputs, tmp_path) -> Path:
    ws = tmp_path / "ws"
    shutil.copytree(inputs, ws, symlinks=True)
    (ws / ".case-tmp").mkdir()
    return ws


def _run(command: Command, workspace: Path, argv=None, **kwargs):
    return run_case(command.entry, list(argv or command.argv), workspace, **kwargs)


def _with_out(command: Command, new_out: str) -> list[str]:
    """The command's argv with its output path moved to ``new_out``."""
    out = command.out
    return [new_out + arg[len(out):] if arg == out or arg.startswith(out + "/") else arg for arg in command.argv]


@pytest.mark.parametrize("command", [_param(c) for c in COMMANDS if not c.slow])
def test_good_run(command, workspace):
    """The row's invocation works, so every failure below is caused by its fault."""
    outcome = _run(command, workspace)
    assert outcome.code == 0, outcome.stderr
    assert "Traceback" not in outcome.stderr
    assert (workspace / command.out).exists()


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
