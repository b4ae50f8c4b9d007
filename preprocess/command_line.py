"""What every console command shares: one-line errors, signal handling and exit codes.

``main = command_entry_point("genemask-x", run)`` wraps a command's ``run(argv)``:

- a :class:`~genemask_preprocess.errors.GeneMaskError` prints ``PROG: error: MESSAGE`` and exits 1;
- an ``OSError`` (a full disk, a file-size limit, a read-only folder) prints one line and exits 1;
- SIGINT, SIGTERM and SIGHUP raise :class:`~genemask_preprocess.errors.Interrupted` in the
  main process, so every atomic output cleans up, then print one line and exit ``128 + signum``;
- argparse's usage errors exit 2;
- log records print from WARNING up, one line each on stderr (:func:`log_warnings_only`).

Set ``GENEMASK_DEBUG=1`` to see the full traceback instead.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable

from genemask_preprocess.errors import GeneMaskError, Interrupted

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
DEBUG_ENV = "GENEMASK_DEBUG"


def _raise_interrupted(signum, frame):
    raise Interrupted(signum)


def install_signal_handlers() -> None:
    """Turn the stop signals into :class:`Interrupted`, and a file-size limit into ``OSError`` (EFBIG)."""
    for signum in HANDLED_SIGNALS:
        signal.signal(signum, _raise_interrupted)
    if hasattr(signal, "SIGXFSZ"):  # the default action kills the process before any clean-up
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def ignore_signals_in_worker() -> None:
    """For pool workers: the main process alone handles SIGINT, and terminates the pool on exit."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def log_warnings_only() -> None:
    """Log records from WARNING up, one line each on stderr, through a handler of our own.

    That is what Python prints with no logging set-up at all, but with a handler in place a library's
    import-time ``logging.basicConfig(level=DEBUG)`` (fairseq's task and model zoo call it) is a no-op
    instead of printing its INFO lines ("Please install tensorboardX") before our output.
    """
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.WARNING)


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def describe_os_error(err: OSError) -> str:
    where = err.filename if err.filename is not None else ""
    reason = err.strerror or str(err) or type(err).__name__
    return f"{where}: {reason}" if where else reason


def run_command(prog: str, run: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Run ``run(argv)`` under the shared error and signal policy; return the exit code."""
    install_signal_handlers()
    log_warnings_only()
    debug = bool(os.environ.get(DEBUG_ENV))
    try:
        return int(run(argv) or 0)
    except GeneMaskError as err:
        if debug:
            raise
        _say(prog, f"error: {one_line(err)}")
        return err.exit_code
    except Interrupted as err:
        _say(prog, f"interrupted by {signal.Signals(err.signum).name}; nothing was left half-written")
        return err.exit_code
    except KeyboardInterrupt:  # raised before our handler was installed
        _say(prog, "interrupted by SIGINT; nothing was left half-written")
        return 128 + signal.SIGINT
    except OSError as err:
        if debug:
            raise
        _say(prog, f"error: {one_line(describe_os_error(err))}")
        return 1


def command_entry_point(prog: str, run: Callable[[list[str] | None], int | None]) -> Callable[..., int]:
    """A console-script ``main(argv=None)`` for ``run``."""

    def main(argv: list[str] | None = None) -> int:
        return run_command(prog, run, argv)

    main.__doc__ = f"Entry point of ``{prog}``."
    return main


def _say(prog: str, message: str) -> None:
    try:
        sys.stderr.flush()
        print(f"{prog}: {message}", file=sys.stderr, flush=True)
    except (OSError, ValueError):  # stderr itself is gone (a closed pipe)
        pass
