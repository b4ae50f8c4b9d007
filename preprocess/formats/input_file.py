"""Opening an input file: a regular file, or a pipe read once; gzip recognised by its content.

Every reader opens its input here (:func:`open_input` for bytes, :func:`open_text` for text),
so every command reads pipes alike. A regular file is opened afresh each time. A pipe, a FIFO
or a process substitution (``<(zcat genome.fa.gz)``, ``/dev/stdin``) can be read only once,
and sniffing its format must not lose what it read: the first :data:`REPLAY_BYTES` bytes read
from it are kept and replayed to every later opening in this process. So sniffing and then
reading works, and a pipe that fits in them reads like a file (a dictionary, a few-shot TSV).
Past them a pipe is streamed; reading it again is refused in one line
(:class:`PipeReadTwiceError`), and a command that needs a second pass over a large input
refuses a pipe up front (:func:`require_regular_file`), saying which pass and why.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
from pathlib import Path
from typing import BinaryIO

from genemask_preprocess.errors import InputError

GZIP_MAGIC = b"\x1f\x8b"
REPLAY_BYTES = 1 << 24
"""The head of a pipe kept for replay (16 MiB)."""


class PipeReadTwiceError(InputError):
    """A pipe longer than :data:`REPLAY_BYTES` read a second time."""


def check_input_file(path: str | os.PathLike, what: str = "file") -> Path:
    """``path`` as a Path if it is a readable file (or pipe); else :class:`InputError`."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a {what}")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: permission denied")
    return path


def is_pipe(path: str | os.PathLike) -> bool:
    """Whether ``path`` is something read once (a pipe, FIFO, socket or device), not a regular file."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def require_regular_file(path: str | os.PathLike, why: str) -> None:
    """Refuse a pipe where the command reads ``path`` more than once (``why`` says when)."""
    if is_pipe(path):
        raise InputError(f"{os.fspath(path)}: is a pipe, which can be read only once, but {why}; "
                         "save it to a file first")


def open_input(path: str | os.PathLike, decompress: bool = True) -> BinaryIO:
    """``path``'s bytes for reading, gunzipped if they start with the gzip magic (and ``decompress``)."""
    pipe = is_pipe(path)
    if decompress and is_gzip(path):
        return _Gunzipped(io.BufferedReader(_PipeReader(path))) if pipe else gzip.open(path, "rb")
    return io.BufferedReader(_PipeReader(path)) if pipe else open(path, "rb")


def open_text(path: str | os.PathLike, encoding: str = "utf-8-sig", errors: str = "strict",
              decompress: bool = True) -> io.TextIOBase:
    """``path`` as text (newlines kept as written, for ``csv``); gzip recognised by its magic bytes."""
    return io.TextIOWrapper(open_input(path, decompress), encoding=encoding, errors=errors, newline="")


def open_seekable(path: str | os.PathLike) -> BinaryIO:
    """``path`` for a reader that seeks (a zip archive): a pipe is read whole into memory."""
    if not is_pipe(path):
        return open(path, "rb")
    with open_input(path, decompress=False) as handle:
        return io.BytesIO(handle.read())


def is_gzip(path: str | os.PathLike) -> bool:
    with open_input(path, decompress=False) as handle:
        return handle.read(len(GZIP_MAGIC)) == GZIP_MAGIC


class _Pipe:
    """One pipe of this process: opened once, its head kept for replay."""

    def __init__(self, path: str | os.PathLike):
        self.raw = open(path, "rb", buffering=0)
        self.kept = bytearray()
        self.offset = 0  # bytes read from the pipe so far
        self.streamed = False  # bytes past `kept` were read and not kept


_PIPES: dict[tuple[int, int], _Pipe] = {}


class _PipeReader(io.RawIOBase):
    """Reads a pipe from its start: the kept head first, then the pipe itself where it stands."""

    def __init__(self, path: str | os.PathLike):
        info = os.stat(path)
        key = (info.st_dev, info.st_ino)
        if key not in _PIPES:
            _PIPES[key] = _Pipe(path)
        self.pipe, self.path, self.position = _PIPES[key], os.fspath(path), 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        pipe, view = self.pipe, memoryview(buffer).cast("B")
        if self.position < len(pipe.kept):
            size = min(len(view), len(pipe.kept) - self.position)
            view[:size] = pipe.kept[self.position : self.position + size]
        elif self.position == pipe.offset:
            data = pipe.raw.read(len(view))
            size = len(data or b"")
            view[:size] = data or b""
            pipe.offset += size
            if not pipe.streamed and len(pipe.kept) + size <= REPLAY_BYTES:
                pipe.kept += data or b""
            else:
                pipe.streamed = True
        else:
            kept = f"{REPLAY_BYTES >> 20} MiB" if REPLAY_BYTES >= 1 << 20 else f"{REPLAY_BYTES} bytes"
            raise PipeReadTwiceError(
                f"{self.path}: is a pipe longer than {kept}, which can be read only once, "
                "and this command reads it again; save it to a file first"
            )
        self.position += size
        return size


class _Gunzipped(gzip.GzipFile):
    """A gzip stream over a pipe; closing it closes the pipe reader too."""

    def __init__(self, handle: BinaryIO):
        super().__init__(fileobj=handle, mode="rb")
        self._handle = handle

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._handle.close()
