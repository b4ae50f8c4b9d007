"""The one output path: write into a temporary sibling, rename into place only on success.

Every command writes through :func:`atomic_file` or :func:`atomic_directory`. On any
exception, including :class:`~genemask_preprocess.errors.Interrupted` from a signal, the
temporary file or folder is removed, so a failed or stopped run leaves nothing behind.
Permissions follow the umask, as a plain ``open`` would. Missing parent folders are created.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from genemask_preprocess.errors import OutputError


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _make_parent(path: Path) -> None:
    parent = path.parent
    if parent.is_dir():
        return
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"{path}: cannot create its folder {parent}: {err.strerror or err}") from None


def _temporary_name(path: Path) -> str:
    return f".{path.name}.tmp-"


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w", **open_kwargs) -> Iterator:
    """Open a temporary file beside ``path`` for writing; rename it to ``path`` on a clean exit."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a directory, expected a file name")
    _make_parent(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=_temporary_name(path), dir=path.parent)
    except OSError as err:
        raise OutputError(f"{path}: cannot write: {err.strerror or err}") from None
    try:
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            yield handle
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_directory(
    path: str | os.PathLike, *, force: bool = False, owned: Iterable[str] | None = None
) -> Iterator[Path]:
    """Build a folder in a temporary sibling and move it to ``path`` on a clean exit.

    ``path`` must be missing or empty, unless ``force``: then only the names the command
    writes (``owned``, else the names it wrote this time) are replaced, and any other file
    of the user's in ``path`` is kept.
    """
    path = Path(path)
    check_output_directory(path, force)
    _make_parent(path)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=_temporary_name(path), dir=path.parent))
    except OSError as err:
        raise OutputError(f"{path}: cannot write: {err.strerror or err}") from None
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~current_umask())
        _move_into_place(tmp, path, owned)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_output_directory(path: str | os.PathLike, force: bool) -> None:
    """Refuse a path that is a file, or a folder that already holds files (unless ``force``)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise OutputError(f"{path}: already holds files; pass --force to replace them")


def _move_into_place(tmp: Path, path: Path, owned: Iterable[str] | None) -> None:
    if not path.exists():
        os.rename(tmp, path)
        return
    if not any(path.iterdir()):
        os.rmdir(path)
        os.rename(tmp, path)
        return
    # Metadata (JSON) last: it marks the folder complete.
    written = sorted((p.name for p in tmp.iterdir()), key=lambda name: (name.endswith(".json"), name))
    for name in set(owned or ()) - set(written):  # a stale output of an earlier run
        _remove(path / name)
    for name in written:
        _remove(path / name)
        os.replace(tmp / name, path / name)


def _remove(target: Path) -> None:
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    elif target.exists() or target.is_symlink():
        target.unlink()
