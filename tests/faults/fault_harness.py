"""Running a console command under a fault, and checking that it failed cleanly.

Each case runs the command's ``main(argv)`` in a forked child of the test process, so the
heavy imports (torch, fairseq, matplotlib) are paid once per session, not once per case.
The child is what the console script would be: its own process group (signals go to the
group, pool workers and fairseq-train included), stdout/stderr in files, ``TMPDIR`` inside
the case's folder (so stray temporary files count as "new on disk"), an optional
``RLIMIT_FSIZE``, and an uncaught exception printing a traceback and exiting 1.

A signal is sent when the child reaches a *pause point*, not after a guessed delay, so the
cases are not timing-dependent (:func:`start_case` instead holds a run there while the test
does something else, such as starting a second run, then resumes it):

- ``"commit"``: an atomic output has been written in full and is about to be renamed into
  place (the worst moment to be stopped);
- ``"worker"``: a pool worker is in the middle of a task (``parallel_map`` of the module
  named by the row), the main process waiting for it;
- ``"subprocess"``: the command has just started another program (fairseq-train) through
  the named module's ``subprocess.run``.
"""

from __future__ import annotations

import faulthandler
import importlib
import io
import logging
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
import types
from dataclasses import dataclass
from pathlib import Path

PAUSE_SECONDS = 120
HANG_SECONDS = 240  # a loaded 2-core CI machine needs minutes for a fairseq-train row; a real hang still shows
READY_NAME = "pause-reached"
RESUME_NAME = "resume"
_PAUSE_DIR: Path | None = None


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def _reach_pause() -> None:
    (_PAUSE_DIR / READY_NAME).touch()
    deadline = time.monotonic() + PAUSE_SECONDS
    while not (_PAUSE_DIR / RESUME_NAME).exists() and time.monotonic() < deadline:  # see RunningCase.resume
        time.sleep(0.05)


class _PausingTask:
    """A picklable task wrapper: the worker pauses before doing the task."""

    def __init__(self, func):
        self.func = func

    def __call__(self, item):
        _reach_pause()
        return self.func(item)


def _install_pause(kind: str, module: str | None) -> None:
    if kind == "commit":
        from genemask_preprocess import atomic_output

        real = atomic_output.current_umask

        def paused_umask():
            _reach_pause()
            return real()

        atomic_output.current_umask = paused_umask
    elif kind == "worker":
        target = importlib.import_module(module)
        real_map = target.parallel_map

        def paused_map(func, items, workers, **kwargs):
            return real_map(_PausingTask(func), items, workers, **kwargs)

        target.parallel_map = paused_map
    elif kind == "subprocess":
        target = importlib.import_module(module)
        real_run = target.subprocess.run

        def paused_run(*args, **kwargs):  # the signal reaches the program too (same group)
            (_PAUSE_DIR / READY_NAME).touch()
            return real_run(*args, **kwargs)

        target.subprocess = types.SimpleNamespace(**{**vars(target.subprocess), "run": paused_run})
    else:
        raise ValueError(kind)


def _child(entry, argv, cwd, env, fsize, pause, pause_module, out_dir: Path, umask: int | None) -> None:
    global _PAUSE_DIR
    os.setpgid(0, 0)
    if umask is not None:
        os.umask(umask)
    os.chdir(cwd)
    for fd, name in ((1, "stdout"), (2, "stderr")):
        handle = os.open(out_dir / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(handle, fd)
        os.close(handle)
    sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", closefd=False), write_through=True)
    sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", closefd=False), write_through=True)
    for handler in logging.getLogger().handlers:  # handlers made before the fork hold pytest's stream
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.setStream(sys.stderr)
    os.environ.update(env)
    tempfile.tempdir = None
    if pause:
        _PAUSE_DIR = out_dir
        _install_pause(pause, pause_module)
    if fsize is not None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)  # a hang shows its stacks in the report
    code = 1
    try:
        code = entry(argv)
    except SystemExit as err:  # argparse
        code = err.code if isinstance(err.code, int) else (0 if err.code is None else 1)
    except BaseException:  # what the console script would print
        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(int(code or 0))


def load_entry(spec: str):
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def run_case(
    entry_spec: str,
    argv: list[str],
    cwd: Path,
    *,
    fsize: int | None = None,
    pause: str | None = None,
    pause_module: str | None = None,
    send: signal.Signals | None = None,
    umask: int | None = None,
    timeout: float = HANG_SECONDS + 60,
) -> Outcome:
    """Run ``entry(argv)`` in a forked child under the given fault; return its exit code and output."""
    entry = load_entry(entry_spec)
    out_dir = Path(tempfile.mkdtemp(prefix="fault-case-"))  # outside cwd: not part of the snapshot
    tmp = cwd / ".case-tmp"
    tmp.mkdir(exist_ok=True)
    env = {"TMPDIR": str(tmp), "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore", "GENEMASK_DEBUG": ""}
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _child(entry, argv, cwd, env, fsize, pause, pause_module, out_dir, umask)
    try:
        if send is not None:
            _wait_for(out_dir / READY_NAME, pid, timeout)
            time.sleep(0.2)  # let every pool worker reach its pause too
            os.killpg(pid, send)
        status = _wait(pid, timeout)
    finally:
        try:
            os.killpg(pid, signal.SIGKILL)  # stray workers or fairseq-train, if any
        except ProcessLookupError:
            pass
    code = os.waitstatus_to_exitcode(status)
    text = {name: (out_dir / name).read_text(errors="replace") for name in ("stdout", "stderr")}
    shutil.rmtree(out_dir, ignore_errors=True)
    return Outcome(code, text["stdout"], text["stderr"])


def _wait_for(ready: Path, pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready.exists():
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            raise AssertionError("the command finished before reaching its pause point")
        if time.monotonic() > deadline:
            raise AssertionError(f"no pause point reached in {timeout} s")
        time.sleep(0.05)


def _wait(pid: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"the command did not end within {timeout} s")
        time.sleep(0.05)


THIRD_PARTY_CACHES = ("torchinductor_",)
"""Caches torch makes in TMPDIR on its own (fairseq-train imports it); not our outputs."""


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under ``root`` with its kind, size and modification time."""
    out = {}
    for path in sorted(root.rglob("*")):
        if any(part.startswith(THIRD_PARTY_CACHES) for part in path.relative_to(root).parts):
            continue
        info = path.lstat()
        kind = "dir" if path.is_dir() else "file"
        out[str(path.relative_to(root))] = (kind, None if kind == "dir" else info.st_size,
                                            None if kind == "dir" else info.st_mtime_ns)
    return out


def assert_clean_failure(outcome: Outcome, prog: str, code: int, before: dict, after: dict,
                         match: str | None = None) -> None:
    """Exit ``code``, exactly one stderr line naming ``prog``, no traceback, nothing new or changed."""
    detail = f"exit {outcome.code}; stderr:\n{outcome.stderr}"
    assert "Traceback" not in outcome.stderr, detail
    assert outcome.code == code, detail
    assert len(outcome.stderr_lines) == 1, detail
    assert outcome.stderr_lines[0].startswith(f"{prog}: "), detail
    if match is not None:
        assert match.lower() in outcome.stderr_lines[0].lower(), detail
    new = sorted(set(after) - set(before))
    changed = sorted(p for p in set(after) & set(before) if after[p] != before[p] and after[p][0] == "file")
    gone = sorted(set(before) - set(after))
    assert not new and not changed and not gone, f"new {new}, changed {changed}, removed {gone}; {detail}"


# ---------------------------------------------------------------------------------------------
# A run held at its pause point while the test acts (concurrent writers, changes meanwhile)


class RunningCase:
    """A command started by :func:`start_case`: wait for its pause point, resume it, collect its outcome."""

    def __init__(self, pid: int, out_dir: Path, timeout: float):
        self.pid, self.out_dir, self.timeout = pid, out_dir, timeout

    def wait_for_pause(self) -> None:
        _wait_for(self.out_dir / READY_NAME, self.pid, self.timeout)
        time.sleep(0.2)  # let every pool worker reach its pause too

    def resume(self) -> None:
        (self.out_dir / RESUME_NAME).touch()

    def finish(self) -> Outcome:
        try:
            status = _wait(self.pid, self.timeout)
        finally:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        text = {name: (self.out_dir / name).read_text(errors="replace") for name in ("stdout", "stderr")}
        shutil.rmtree(self.out_dir, ignore_errors=True)
        return Outcome(os.waitstatus_to_exitcode(status), text["stdout"], text["stderr"])


def start_case(entry_spec: str, argv: list[str], cwd: Path, *, pause: str | None = None,
               pause_module: str | None = None, setup=None, timeout: float = 120) -> RunningCase:
    """Start ``entry(argv)`` in a forked child as :func:`run_case` does, without waiting for it.

    ``setup`` runs in the child first (to inject a fault into ``os`` functions, say).
    """
    entry = load_entry(entry_spec)
    out_dir = Path(tempfile.mkdtemp(prefix="fault-case-"))
    (cwd / ".case-tmp").mkdir(exist_ok=True)
    env = {"TMPDIR": str(cwd / ".case-tmp"), "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore", "GENEMASK_DEBUG": ""}
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        if setup is not None:
            setup()
        _child(entry, argv, cwd, env, None, pause, pause_module, out_dir, None)
    return RunningCase(pid, out_dir, timeout)
