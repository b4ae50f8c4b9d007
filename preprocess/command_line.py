"""What every console command shares: one-line errors, signal handling and exit codes.

``main = command_entry_point("genemask-x", run)`` wraps a command's ``run(argv)``:

- a :class:`~genemask_preprocess.errors.GeneMaskError` prints ``PROG: error: MESSAGE`` and exits 1;
- an ``OSError`` (a full disk, a file-size limit, a read-only folder) prints one line and exits 1;
- a ``MemoryError`` (``ulimit -v``, a cgroup limit), wherever it happens, prints one line and exits 1;
- SIGINT, SIGTERM and SIGHUP (and SIGXCPU, a CPU-time limit) raise
  :class:`~genemask_preprocess.errors.Interrupted` in the main process, so every atomic output
  cleans up, then print one line and exit ``128 + signum``;
- argparse's usage errors exit 2;
- log records print from WARNING up, one line each on stderr (:func:`log_warnings_only`).

Every message is printable whatever the path in it: a file name that is not UTF-8 (bytes that
Python holds as surrogate escapes) shows its bytes as ``\\xe9``, control characters are escaped
(:func:`printable`), and stdout and stderr never fail on such text.

Set ``GENEMASK_DEBUG=1`` to see the full traceback instead.
"""

from __future__ import annotations

import codecs
import logging
import os
import re
import signal
import sys
from collections.abc import Callable

from genemask_preprocess.errors import GeneMaskError, Interrupted
from genemask_preprocess.resource_limits import tightest_memory_limit

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, *(
    [signal.SIGXCPU] if hasattr(signal, "SIGXCPU") else []))  # SIGXCPU: ulimit -t, SGE's s_cpu
DEBUG_ENV = "GENEMASK_DEBUG"
PRINTABLE_ERRORS = "genemask-printable"
"""The codec error handler of stdout and stderr in a command: unencodable text shown as escapes."""
_current_prog = "genemask"


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
    for signum in HANDLED_SIGNALS:
        if signum != signal.SIGINT:
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


_UNPRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def _escape(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte os.fsdecode could not decode (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text) -> str:
    """``text`` safe to print and to write as UTF-8: a path's undecodable bytes as ``\\xe9``, control
    characters (an escape sequence in a file name) escaped. Tabs and newlines are kept."""
    return _UNPRINTABLE.sub(lambda match: _escape(match.group()), str(text))


def _printable_errors(err: UnicodeError):
    if not isinstance(err, UnicodeEncodeError):
        raise err
    return "".join(map(_escape, err.object[err.start : err.end])), err.end


codecs.register_error(PRINTABLE_ERRORS, _printable_errors)


def printable_streams() -> None:
    """Make stdout and stderr print any text: what their encoding cannot hold is shown escaped.

    A path that is not UTF-8 reaches ``print`` as surrogate escapes, which a UTF-8 stdout
    refuses (a ``UnicodeEncodeError`` traceback) and stderr shows as ``\\udce9``.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors=PRINTABLE_ERRORS)
        except (AttributeError, ValueError, OSError):  # not a text stream we may change
            pass


def warn(message: str) -> None:
    """One ``PROG: warning: ...`` line on stderr (the running command's name)."""
    _say(_current_prog, f"warning: {one_line(message)}")


def is_out_of_memory(err: BaseException) -> bool:
    """A ``MemoryError``, torch's out-of-memory ``RuntimeError`` (CPU allocator or CUDA), a
    compiled module that could not be mapped into memory (a late import under ``ulimit -v``), or
    the interpreter's ``SystemError`` from a C call whose allocation failed without saying so."""
    if isinstance(err, MemoryError):
        return True
    text = str(err)
    if isinstance(err, SystemError):
        return "without exception set" in text
    if isinstance(err, ImportError):
        return "failed to map segment" in text or "cannot allocate memory" in text.lower()
    return isinstance(err, RuntimeError) and (
        type(err).__name__ == "OutOfMemoryError" or "can't allocate memory" in text or "out of memory" in text
    )


def describe_out_of_memory(err: BaseException) -> str:
    """One line: what could not be allocated, and the tightest memory limit here."""
    detail = one_line(str(err).split("\n")[0]) or type(err).__name__
    try:
        limit = tightest_memory_limit()
    except Exception:  # reading /proc may itself fail when memory is short
        limit = None
    where = f"; the tightest memory limit here: {limit.source}" if limit is not None else ""
    return f"out of memory ({detail}){where}; nothing was left half-written"


def describe_os_error(err: OSError) -> str:
    where = err.filename if err.filename is not None else ""
    reason = err.strerror or str(err) or type(err).__name__
    return f"{where}: {reason}" if where else reason


def run_command(prog: str, run: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Run ``run(argv)`` under the shared error and signal policy; return the exit code."""
    global _current_prog
    _current_prog = prog
    install_signal_handlers()
    log_warnings_only()
    printable_streams()
    debug = bool(os.environ.get(DEBUG_ENV))
    if not debug:
        sys.unraisablehook = _quiet_unraisable
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
    except (MemoryError, RuntimeError, ImportError, SystemError) as err:
        if debug or not is_out_of_memory(err):
            raise
        err.__traceback__ = None  # let the frames, and the arrays they hold, go first
        try:
            message = describe_out_of_memory(err)
        except MemoryError:
            message = "out of memory; nothing was left half-written"
        _say(prog, f"error: {message}")
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
        print(f"{prog}: {printable(message)}", file=sys.stderr, flush=True)
    except (OSError, ValueError):  # stderr itself is gone (a closed pipe)
        pass
    except MemoryError:  # too little left even to format a line: write what we have, unbuffered
        try:
            os.write(2, f"{prog}: {message}\n".encode("utf-8", "backslashreplace"))
        except (OSError, MemoryError):
            pass


def _quiet_unraisable(unraisable) -> None:
    """Errors in destructors while a failing run unwinds (a half-built memory map, say) are not the user's
    error: the one line names that. ``GENEMASK_DEBUG=1`` shows them."""
