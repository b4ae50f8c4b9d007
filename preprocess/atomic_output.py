"""The one output path: claimed first, written into a temporary sibling, renamed into place on success.

A command first claims its outputs with its inputs (:func:`claim_outputs`). Each output must
be missing, a regular file or a folder; a symlink is followed and written through, anything
else (a FIFO, a device such as ``/dev/null``, a socket) is refused. No output may be one of
the command's inputs or another of its outputs, compared by inode, not by name (hard links,
symlinks, ``./x`` and ``x``). An advisory lock (``flock`` on ``.NAME.lock`` beside the output,
removed at the end) keeps a second run from writing the same output at the same time.

Every output is then written through :func:`atomic_file` or :func:`atomic_directory`. On any
exception, including :class:`~genemask_preprocess.errors.Interrupted` from a signal, the
temporary file or folder is removed, so a failed or stopped run leaves nothing behind.
An output that appeared or changed after the claim (another program wrote it) is left as it
is unless the command was given ``--force``. Replacing files in an existing folder moves the
old ones aside, in the same file system, and deletes them only once the new ones are in
place; a failure puts them back. Permissions follow the umask, as a plain ``open`` would.
Missing parent folders are created.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import fnmatch
import os
import shutil
import signal
import stat
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
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


class _StagedFile:
    """One output file written into a temporary sibling: checked, then renamed into place, or discarded."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.target = resolve_output(self.path)
        if self.target.is_dir():
            raise OutputError(f"{self.path}: is a directory, expected a file name")
        self.claim = _CLAIMS.get(self.target)
        self.expected = self.claim.state if self.claim is not None else _file_state(self.target)
        self.created = _make_parent(self.target)
        try:
            self.fd, self.tmp = tempfile.mkstemp(prefix=_temporary_name(self.target), dir=self.target.parent)
        except OSError as err:
            _remove_empty_folders(self.target.parent, self.created)
            raise OutputError(f"{self.path}: cannot write: {err.strerror or err}") from None

    def check(self) -> None:
        """Refuse if the output appeared or changed since the claim (unless the command was forced)."""
        os.chmod(self.tmp, 0o666 & ~current_umask())
        if not (self.claim is not None and self.claim.force) and _file_state(self.target) != self.expected:
            raise OutputError(_changed_meanwhile(self.path))

    def place(self) -> None:
        os.replace(self.tmp, self.target)
        if self.claim is not None:
            self.claim.state = _file_state(self.target)  # this run's own file: a second write may replace it

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)
        _remove_empty_folders(self.target.parent, self.created)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w", **open_kwargs) -> Iterator:
    """Open a temporary file beside ``path`` for writing; rename it to ``path`` on a clean exit.

    A symlink ``path`` is written through: its target is replaced, the link kept.
    """
    staged = _StagedFile(path)
    try:
        with os.fdopen(staged.fd, mode, **open_kwargs) as handle:
            yield handle
        staged.check()
        staged.place()
    except BaseException:
        staged.discard()
        raise


def write_files_together(texts: dict[str | os.PathLike, str]) -> None:
    """Write several text files as one output: all are written in full and checked before any is renamed
    into place, so an output that changed meanwhile leaves every one of them as it was."""
    staged: list[_StagedFile] = []
    try:
        for path, text in texts.items():
            staged.append(_StagedFile(path))
            with os.fdopen(staged[-1].fd, "w") as handle:
                handle.write(text)
        for file in staged:
            file.check()
        with _stop_signals_held():
            for file in staged:
                file.place()
    except BaseException:
        for file in staged:
            file.discard()
        raise


@contextlib.contextmanager
def atomic_directory(
    path: str | os.PathLike, *, force: bool = False, owned: Iterable[str] | None = None
) -> Iterator[Path]:
    """Build a folder in a temporary sibling and move it to ``path`` on a clean exit.

    ``path`` must be missing or empty, unless ``force``: then only the names the command
    writes (``owned``, else the names it wrote this time) are replaced, and any other file
    of the user's in ``path`` is kept. A symlink ``path`` is written through. The temporary
    folder is made where its renames cannot cross file systems: beside the (resolved) folder,
    or inside it when it is a mount point.
    """
    path = Path(path)
    target = resolve_output(path)
    check_output_directory(path, force)
    created = _make_parent(target)
    staging_parent = target if _is_mount_point(target) else target.parent
    try:
        tmp = Path(tempfile.mkdtemp(prefix=_temporary_name(target), dir=staging_parent))
    except OSError as err:
        _remove_empty_folders(target.parent, created)
        raise OutputError(f"{path}: cannot write: {err.strerror or err}") from None
    try:
        yield tmp
        _follow_umask(tmp)
        _move_into_place(tmp, target, owned, force, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty_folders(target.parent, created)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _is_mount_point(folder: Path) -> bool:
    try:
        return folder.is_dir() and os.stat(folder).st_dev != os.stat(folder.parent).st_dev
    except OSError:
        return False


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
    target = resolve_output(path)
    if target.exists() and not target.is_dir():
        raise OutputError(f"{path}: exists and is not a directory")
    if target.is_dir() and _user_entries(target) and not force:
        raise OutputError(f"{path}: already holds files; pass --force to replace them")


def _user_entries(folder: Path) -> list[str]:
    """The names in ``folder``, less this module's own temporary ones (staging in a mount point)."""
    return [name for name in os.listdir(folder) if not name.startswith(_temporary_name(folder))]


def _move_into_place(tmp: Path, target: Path, owned: Iterable[str] | None, force: bool, shown: Path) -> None:
    """Put the staged files in place; what they replace is moved aside first and deleted only at the end."""
    if not os.path.lexists(target):
        try:
            os.rename(tmp, target)  # nothing to replace: one atomic step
        except OSError as err:
            if err.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise OutputError(_changed_meanwhile(shown)) from None
            raise
        return
    if not target.is_dir() or (_user_entries(target) and not force):
        raise OutputError(_changed_meanwhile(shown))
    # Metadata (JSON) last: it marks the folder complete.
    written = sorted(os.listdir(tmp), key=lambda name: (name.endswith(".json"), name))
    stale = sorted(set(owned or ()) - set(written))  # outputs of an earlier run that this one does not write
    replaced = [name for name in (*written, *stale) if os.path.lexists(target / name)]
    aside = Path(tempfile.mkdtemp(prefix=_temporary_name(target) + "old-", dir=tmp.parent)) if replaced else None
    moved, placed = [], []
    with _stop_signals_held():
        try:
            for name in replaced:
                os.rename(target / name, aside / name)
                moved.append(name)
            for name in written:
                os.rename(tmp / name, target / name)
                placed.append(name)
        except BaseException as err:
            _put_back(tmp, target, aside, placed, moved, shown, err)
            raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def _put_back(tmp: Path, target: Path, aside: Path | None, placed: list[str], moved: list[str], shown: Path,
              err: BaseException) -> None:
    """Undo a failed commit: the new files out, the old ones back where they were."""
    failed = []
    for name in reversed(placed):
        try:
            os.rename(target / name, tmp / name)
        except OSError:
            failed.append(name)
    for name in reversed(moved):
        try:
            os.rename(aside / name, target / name)
        except OSError:
            failed.append(name)
    if failed:
        raise OutputError(
            f"{shown}: replacing its files failed ({getattr(err, 'strerror', None) or err}) and "
            f"{', '.join(failed)} could not be put back: the earlier files are in {aside}"
        ) from None
    if aside is not None:
        with contextlib.suppress(OSError):
            os.rmdir(aside)


@contextlib.contextmanager
def _stop_signals_held() -> Iterator[None]:
    """A commit's few renames finish, or are undone, before a stop signal is handled."""
    stops = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, stops)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _changed_meanwhile(path: Path) -> str:
    return (f"{path}: appeared or changed while this run was writing it (another program or run?); "
            "it was left as it is and nothing was written")


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


# ---------------------------------------------------------------------------------------------
# Claiming the outputs: what they are, that they alias nothing, and one writer at a time


@dataclass(frozen=True)
class Output:
    """One output of a command, as its option names it."""

    path: str | os.PathLike
    option: str = "--out"
    folder: bool = False
    owned: tuple[str, ...] | None = None
    """For a folder: the names (or glob patterns) the command replaces in it; None: any."""


@dataclass
class _Claim:
    force: bool
    state: tuple | None  # a file output's (device, inode, size, mtime) when claimed; None if missing


_CLAIMS: dict[Path, _Claim] = {}
"""The outputs this process has claimed, by resolved path."""

_SPECIAL_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
)


def resolve_output(path: str | os.PathLike) -> Path:
    """Where writing ``path`` lands: every symlink followed (a dangling one to where it points)."""
    return Path(os.path.realpath(path))


def _file_state(path: Path) -> tuple | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns


@contextlib.contextmanager
def claim_outputs(
    outputs: Iterable[Output], inputs: Iterable[str | os.PathLike | None] = (), *, force: bool = False
) -> Iterator[list[Path]]:
    """Check and lock a command's outputs for the whole run; yield where each resolves to.

    Refuses, in one line (:class:`OutputError`): an output that exists as anything but a
    regular file or folder (or a symlink to one), an output that is one of ``inputs`` (or a
    folder output holding an input among the names it replaces, or an output inside an input
    folder), two outputs that are one, and an output another run is writing (its lock is
    held). Missing parent folders are created, and removed again if the run fails. An
    output that appears or changes after the claim is not replaced unless ``force``.
    """
    outputs = [output for output in outputs if output is not None]
    targets = [_check_kind(output) for output in outputs]
    _check_distinct(outputs, [Path(p) for p in inputs if p is not None and os.path.lexists(p)])
    with contextlib.ExitStack() as stack:
        for output, target in zip(outputs, targets, strict=True):
            stack.enter_context(_claimed(output, target, force))
        yield targets


def _check_kind(output: Output) -> Path:
    """The resolved output path, if the output is missing, a regular file or a folder."""
    shown = f"{output.option} {os.fspath(output.path)}"
    try:
        info = os.stat(output.path)
    except (FileNotFoundError, NotADirectoryError):
        return resolve_output(output.path)  # missing, or a dangling symlink: created where it points
    except OSError as err:
        raise OutputError(f"{shown}: cannot use it: {err.strerror or err}") from None
    for test, kind in _SPECIAL_KINDS:
        if test(info.st_mode):
            raise OutputError(f"{shown}: is {kind}; an output must be a regular file or a folder (or a symlink to one)")
    if _through_proc(output.path):
        raise OutputError(f"{shown}: is a link to an open file descriptor (/proc/self/fd/N, /dev/stdout); "
                          "an output must be a regular file or a folder")
    target = resolve_output(output.path)
    if _file_state(target) is None or not os.path.samestat(info, os.stat(target)):
        raise OutputError(f"{shown}: does not resolve to a plain path (a /proc link?); name a file or a folder")
    if output.folder and not stat.S_ISDIR(info.st_mode):
        raise OutputError(f"{shown}: exists and is not a directory")
    if not output.folder and stat.S_ISDIR(info.st_mode):
        raise OutputError(f"{shown}: is a directory, expected a file name")
    return target


def _through_proc(path: str | os.PathLike) -> bool:
    """Whether ``path``, or a symlink it leads through, lies in ``/proc`` (a process's fd links)."""
    step = os.path.abspath(path)
    for _ in range(40):  # the kernel's own limit on symlinks in a row
        if os.path.realpath(os.path.dirname(step)).startswith("/proc/"):
            return True
        if not os.path.islink(step):
            return False
        step = os.path.join(os.path.dirname(step), os.readlink(step))
    return False


def _identity(path: Path) -> tuple:
    """What ``path`` names on disk: (device, inode) if it exists, else its nearest existing folder's and the rest."""
    real, rest = resolve_output(path), []
    while True:
        try:
            info = os.stat(real)
        except FileNotFoundError:
            if real.parent == real:
                return (str(path),)
            rest.append(real.name)
            real = real.parent
            continue
        except OSError:
            return (str(resolve_output(path)),)
        return (info.st_dev, info.st_ino, *reversed(rest))


def _within(inner: Path, outer: Path) -> Path | None:
    """``inner`` relative to the folder ``outer`` if it lies inside it (by inode, so links count), else None."""
    outer_id = _identity(outer)
    real = resolve_output(inner)
    for ancestor in real.parents:
        if _identity(ancestor) == outer_id:
            return real.relative_to(ancestor)
    return None


def _check_distinct(outputs: list[Output], inputs: list[Path]) -> None:
    """No output may be an input, hold one among what it replaces, lie inside an input folder, or be another output."""
    for output in outputs:
        shown, out = f"{output.option} {os.fspath(output.path)}", Path(output.path)
        for source in inputs:
            if _identity(out) == _identity(source):
                raise OutputError(f"{shown}: is also an input of this command ({source}); write the output elsewhere")
            inside = _within(source, out) if output.folder else None
            if inside is not None and (output.owned is None or any(
                fnmatch.fnmatchcase(inside.parts[0], pattern) for pattern in output.owned
            )):
                raise OutputError(f"{shown}: holds the input {source}, which this command would replace; "
                                  "write the output elsewhere")
            if source.is_dir() and _within(out, source) is not None:
                raise OutputError(f"{shown}: is inside the input folder {source}; write the output elsewhere")
        for other in outputs:
            if other is output:
                continue
            if _identity(out) == _identity(Path(other.path)) or (
                other.folder and _within(out, Path(other.path)) is not None
            ):
                raise OutputError(f"{shown}: is the same place as {other.option} {os.fspath(other.path)}; "
                                  "give each output its own path")


@contextlib.contextmanager
def _claimed(output: Output, target: Path, force: bool) -> Iterator[None]:
    check_can_write(output.path, output.option)
    created = _make_parent(target)
    try:
        lock = _lock(output, target)
    except BaseException:
        _remove_empty_folders(target.parent, created)
        raise
    _CLAIMS[target] = _Claim(force, _file_state(target))
    try:
        yield
    finally:
        _CLAIMS.pop(target, None)
        _release(lock, target)
        _remove_empty_folders(target.parent, created)  # if the run wrote nothing there


def _lock_path(target: Path) -> Path:
    return target.parent / f".{target.name}.lock"


def _lock(output: Output, target: Path) -> int:
    """Hold an exclusive ``flock`` on the output's lock file; refuse if another run holds it."""
    path = _lock_path(target)
    shown = f"{output.option} {os.fspath(output.path)}"
    for _ in range(100):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as err:
            raise OutputError(f"{shown}: cannot write in {target.parent}: {err.strerror or err}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
            os.close(fd)
            if err.errno not in (errno.EWOULDBLOCK, errno.EACCES, errno.EAGAIN):
                raise OutputError(f"{shown}: cannot lock {path}: {err.strerror or err}") from None
            by = f" ({holder})" if holder else ""
            raise OutputError(f"{shown}: another run{by} is writing it; wait for it to finish, or write elsewhere") from None
        # The run before may have removed the lock file between our open and our lock: retry on the new one.
        if _file_state(path) is not None and os.path.samestat(os.fstat(fd), os.stat(path)):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"process {os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)
    raise OutputError(f"{shown}: cannot lock {path}: it keeps being replaced")


def _release(fd: int, target: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(_lock_path(target))  # while still holding the lock, so no run locks a removed file
    os.close(fd)
