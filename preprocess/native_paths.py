"""File names for libraries that take only UTF-8 ones: torch's memory map, safetensors, tokenizers, sentencepiece.

On Linux a file name is any bytes. Python holds the bytes that are not UTF-8 (a Latin-1 ``é``
from an old system, say) as surrogate escapes, reads and writes such files itself, and
hands them to ``subprocess`` as the original bytes; but libraries in C++ or Rust that take
a ``str`` path encode it as strict UTF-8 and refuse it. :func:`native_path` gives them an
equivalent name that is plain ASCII: the ``/proc/self/fd`` link of a descriptor opened on
the file (or on its folder, for a file still to be written there), valid while the ``with``
block lasts. A path that is already UTF-8 is handed over unchanged.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator

PROC_FD = "/proc/self/fd"


def is_utf8(path: str | os.PathLike) -> bool:
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@contextlib.contextmanager
def native_path(path: str | os.PathLike) -> Iterator[str]:
    """``path``, or an equivalent UTF-8 name for it while the block runs (see the module docstring).

    ``path`` may be a file or folder that exists, or a file to be created in an existing
    folder (the descriptor is then the folder's, and the name is joined to its link).
    """
    text = os.fspath(path)
    if is_utf8(text) or not os.path.isdir(PROC_FD):
        yield text
        return
    target, name = (text, "") if os.path.lexists(text) else os.path.split(text)
    if not is_utf8(name):  # a new file whose own name is not UTF-8: no library can be given it
        raise OSError(errno.EINVAL, "this library cannot create a file whose name is not UTF-8", text)
    fd = os.open(target or ".", os.O_PATH)
    try:
        yield os.path.join(f"{PROC_FD}/{fd}", name) if name else f"{PROC_FD}/{fd}"
    finally:
        os.close(fd)
