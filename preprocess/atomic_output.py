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


def _make_parent(path: Path) -> Path | None:
    """Create ``path``'s missing folders; return the topmost one created (None if none was)."""
    parent = path.parent
    if parent.is_dir():
        return None
    top = parent
    while not top.parent.exists():
        top = top.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        _remove_empty_folders(parent, top)
        raise OutputError(f"{path}: cannot create its folder {parent}: {err.strerror or err}") from None
    return top


def _remove_empty_folders(deepest: Path, top: Path | None) -> None:
    """Undo :func:`_make_parent` after a failure: remove the folders it created, if still empty."""
    if top is None:
        return
    for folder in (deepest, *deepest.parents):
        try:
            folder.rmdir()
        except OSError:
            return
        if folder == top:
            return


def _temporary_name(path: Path) -> str:
    # Cut long names so that the temporary one (8 random characters follow) fits NAME_MAX, 255 bytes.
    return f".{os.fsdecode(os.fsencode(path.name)[:200])}.tmp-"


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w", **open_kwargs) -> Iterator:
    """Open a temporary file beside ``path`` for writing; rename it to ``path`` on a clean exit."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a directory, expected a file name")
    created = _make_parent(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=_temporary_name(path), dir=path.parent)
    except OSError as err:
        _remove_empty_folders(path.parent, created)
        raise OutputError(f"{path}: cannot write: {err.strerror or err}") from None
    try:
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            yield handle
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        _remove_empty_folders(path.parent, created)
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
    created = _make_parent(path)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=_temporary_name(path), dir=path.parent))
    except OSError as err:
        _remove_empty_folders(path.parent, created)
        raise OutputError(f"{path}: cannot write: {err.strerror or err}") from None
    try:
        yield tmp
        _follow_umask(tmp)
        _move_into_place(tmp, path, owned)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty_folders(path.parent, created)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _follow_umask(tmp: Path) -> None:
    """Give the folder and what was written in it the modes a plain ``open``/``mkdir`` would.

    ``mkdtemp``, and libraries that write through ``mkstemp`` (safetensors, for one), make
    owner-only files; a shared output folder must follow the user's umask instead.
    """
    umask = current_umask()
    os.chmod(tmp, 0o777 & ~umask)
    for root, dirs, files in os.walk(tmp):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o777 & ~umask)
        for name in files:
            target = os.path.join(root, name)
            if not os.path.islink(target):
                executable = os.stat(target).st_mode & 0o111
                os.chmod(target, (0o666 | executable) & ~umask)


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


@contextlib.contextmanager
def removing_on_failure(path: str | os.PathLike) -> Iterator[Path]:
    """For a folder another program fills in place (fairseq-train's ``--save-dir``).

    The folder is created if missing. On any exception, a signal included, what appeared in
    it during the block is removed (the folder itself if this call created it), so a failed
    or stopped run leaves no half-written checkpoint; what was there before is kept.
    """
    path = Path(path)
    created = not path.exists()
    parents = None
    if created:
        parents = _make_parent(path)
        try:
            path.mkdir()
        except OSError as err:
            _remove_empty_folders(path.parent, parents)
            raise OutputError(f"{path}: cannot create: {err.strerror or err}") from None
    before = set() if created else {p.name for p in path.iterdir()}
    try:
        yield path
    except BaseException:
        if created:
            shutil.rmtree(path, ignore_errors=True)
            _remove_empty_folders(path.parent, parents)
        else:
            for entry in path.iterdir():
                if entry.name not in before:
                    with contextlib.suppress(OSError):
                        _remove(entry)
        raise


def check_can_write(path: str | os.PathLike, what: str = "--out") -> None:
    """Fail before a long run, not after it, if ``path`` cannot be written.

    Finds the nearest existing folder on the way to ``path`` and creates (and at once removes)
    a temporary file there: an access check alone says yes on ``/proc`` or for root on a
    read-only mount, where the write still fails. Nothing is left behind.
    """
    path = Path(path)
    existing = path.parent if path.parent != Path("") else Path(".")
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{path}: cannot create directory {path.parent} ({what}): {existing} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".genemask-write-check-", dir=existing)
    except OSError as err:
        raise OutputError(f"{path}: cannot write in {existing} ({what}): {err.strerror or err}") from None
    os.close(fd)
    os.unlink(probe)
