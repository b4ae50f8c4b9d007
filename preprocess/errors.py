"""The one error root: every error meant for the user derives from :class:`GeneMaskError`.

A command's entry point (:func:`genemask_preprocess.command_line.run_command`) turns any
``GeneMaskError`` into one line on stderr and exit code 1; usage errors exit 2 (argparse's
convention) and a signal exits ``128 + signum``. Each stage names its own subclass, so a
message can be tested by type, while callers catch the root.
"""

from __future__ import annotations


class GeneMaskError(Exception):
    """An error whose message is one line meant for the user, shown without a traceback."""

    exit_code = 1


class InputError(GeneMaskError):
    """A bad input file, option or argument."""


class OutputError(GeneMaskError):
    """An output that cannot be written (missing permission, full disk, file-size limit, ...)."""


class Interrupted(BaseException):
    """Raised in the main process on SIGINT, SIGTERM or SIGHUP, so every ``with`` block cleans up.

    A ``BaseException`` like ``KeyboardInterrupt``, so ``except Exception`` does not swallow it.
    """

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum
