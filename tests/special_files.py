"""Special files for the tests of outputs that are not plain files or folders.

Made in the test's own folder, never taken from the host's ``/dev``: in some containers ``/dev/null``
is a regular file, and a command that wrongly replaced its output would then replace a host device.
"""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

HOST_CHARACTER_DEVICES = ("/dev/full", "/dev/zero", "/dev/null", "/dev/tty")


def make_socket(path: Path) -> None:
    here = os.getcwd()
    os.chdir(path.parent)  # a socket's path must fit in 108 bytes: bind it by its relative name
    try:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(path.name)
        sock.close()
    finally:
        os.chdir(here)


def make_character_device(path: Path) -> Path:
    """A character device at ``path`` and return it: a copy of ``/dev/full`` (every write fails), or,
    where ``mknod`` is not allowed, a symlink to the first host device that is one."""
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 7))
        return path
    except PermissionError:
        pass
    for host in HOST_CHARACTER_DEVICES:
        if os.path.exists(host) and stat.S_ISCHR(os.stat(host).st_mode):
            path.symlink_to(host)
            return path
    raise RuntimeError(f"cannot make a character device: mknod refused and none of {HOST_CHARACTER_DEVICES} is one")


def identity(path: str | os.PathLike) -> tuple:
    """What changes if a file is replaced: inode, type and device numbers."""
    st = os.stat(path)
    return st.st_ino, stat.S_IFMT(st.st_mode), st.st_rdev
