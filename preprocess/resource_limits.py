"""What this process may use: CPU cores and memory, by every limit that applies to it.

A shared machine or a scheduler limits a job in several places at once, and the tightest one
is the one that ends it:

- **cores**: the CPUs the process may run on (``os.sched_getaffinity``: ``taskset``, Slurm's
  and SGE's binding) and the cgroup's CPU quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``:
  ``docker --cpus``, Kubernetes limits);
- **memory**: the address-space and data-size limits (``RLIMIT_AS`` / ``RLIMIT_DATA``, set by
  ``ulimit -v`` / ``-d`` and by SGE's ``h_vmem``), less what the process already maps; the
  cgroup's limit (v2 ``memory.max``, v1 ``memory.limit_in_bytes``: Slurm, docker,
  Kubernetes), less what the cgroup already uses, at every level up to the root; and the
  machine's available memory (``MemAvailable`` in ``/proc/meminfo``).

Each reader returns nothing when its limit is absent or unreadable (another OS, a
container without ``/sys/fs/cgroup``), so the answer is the tightest limit that is known.
"""

from __future__ import annotations

import math
import os
import re
import resource
from dataclasses import dataclass
from pathlib import Path

UNLIMITED = 1 << 60
"""Limits at or above this are "none" (cgroup v1 writes 2^63 - 4096 for no limit)."""
PROC = Path("/proc")


@dataclass(frozen=True)
class MemoryLimit:
    """Bytes this process may still allocate under one limit, and which limit that is."""

    available: int
    source: str
    """What sets it, as a user would look it up: ``address-space limit (ulimit -v)`` ..."""
    per_process: bool
    """True for a limit each process has on its own (a forked worker gets a fresh one)."""


def usable_cores() -> int:
    """The CPU cores this process may keep busy: its CPU affinity, capped by a cgroup CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(cores, 1)


def memory_limits() -> list[MemoryLimit]:
    """Every memory limit that applies to this process, tightest first."""
    limits = [*_rlimits(), *_cgroup_memory(), *_meminfo()]
    return sorted(limits, key=lambda limit: limit.available)


def tightest_memory_limit() -> MemoryLimit | None:
    """The limit with the least room left, or None when none is known."""
    limits = memory_limits()
    return limits[0] if limits else None


# ---------------------------------------------------------------------------------------------
# Address-space and data-size limits (per process)


_RLIMITS = (
    ("RLIMIT_AS", "VmSize", "address-space limit (ulimit -v)"),
    ("RLIMIT_DATA", "VmData", "data-size limit (ulimit -d)"),
)


def _rlimits() -> list[MemoryLimit]:
    status = _proc_status()
    out = []
    for name, used_field, source in _RLIMITS:
        which = getattr(resource, name, None)
        if which is None:
            continue
        soft, _ = resource.getrlimit(which)
        if soft == resource.RLIM_INFINITY or soft >= UNLIMITED:
            continue
        used = status.get(used_field, 0)
        out.append(MemoryLimit(max(soft - used, 0), f"{source} {_gib(soft)}", per_process=True))
    return out


def _proc_status() -> dict[str, int]:
    """``/proc/self/status`` sizes in bytes (``VmSize``, ``VmData`` ...)."""
    sizes = {}
    try:
        with open(PROC / "self" / "status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                parts = value.split()
                if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
                    sizes[key] = int(parts[0]) * 1024
    except OSError:
        pass
    return sizes


# ---------------------------------------------------------------------------------------------
# cgroups (shared by every process of the job)


def _cgroup_folders(controller: str) -> list[Path]:
    """This process's cgroup folders for ``controller`` (v1) or the unified tree (``""``), deepest first.

    Every level up to the mount point is listed: a parent's limit binds too. Inside a
    container the recorded path may not exist under the mount; the levels that do exist are used.
    """
    folders: list[Path] = []
    for mount, root, path in _cgroup_mounts(controller):
        relative = path
        if root != "/" and (path == root or path.startswith(root.rstrip("/") + "/")):
            relative = path[len(root.rstrip("/")):]
        parts = [p for p in relative.split("/") if p]
        for depth in range(len(parts), -1, -1):
            folder = mount.joinpath(*parts[:depth])
            if folder.is_dir() and folder not in folders:
                folders.append(folder)
    return folders


def _cgroup_mounts(controller: str) -> list[tuple[Path, str, str]]:
    """``(mount point, mounted root, this process's path)`` of the v2 tree (``controller == ""``) or a v1 controller."""
    paths = {}
    try:
        for line in (PROC / "self" / "cgroup").read_text(encoding="utf-8", errors="surrogateescape").splitlines():
            _, controllers, path = line.split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                paths[name] = path
        mountinfo = (PROC / "self" / "mountinfo").read_text(encoding="utf-8", errors="surrogateescape")
    except (OSError, ValueError):
        return []
    mounts = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        fstype, _, options = line.split(" - ", 1)[1].partition(" ")
        super_options = options.split()[-1].split(",") if options.split() else []
        wanted = fstype == "cgroup2" if controller == "" else (fstype == "cgroup" and controller in super_options)
        if wanted and controller in paths:
            mounts.append((Path(_unescape(fields[4])), _unescape(fields[3]), paths[controller]))
    return mounts


def _unescape(field: str) -> str:
    """A mountinfo field: spaces and the like are written as octal escapes (``\\040``)."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)


def _read_number(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _inactive_file(folder: Path, key: str) -> int:
    """Page cache the kernel reclaims before it runs out (counted in the usage, not really in use)."""
    try:
        for line in (folder / "memory.stat").read_text(encoding="ascii", errors="replace").splitlines():
            name, _, value = line.partition(" ")
            if name == key and value.strip().isdigit():
                return int(value)
    except OSError:
        pass
    return 0


def _cgroup_memory() -> list[MemoryLimit]:
    out = []
    for folder in _cgroup_folders(""):  # v2
        limit = _read_number(folder / "memory.max")
        if limit is not None and limit < UNLIMITED:
            used = (_read_number(folder / "memory.current") or 0) - _inactive_file(folder, "inactive_file")
            out.append(MemoryLimit(max(limit - max(used, 0), 0), f"cgroup memory.max {_gib(limit)}", False))
    for folder in _cgroup_folders("memory"):  # v1
        limit = _read_number(folder / "memory.limit_in_bytes")
        if limit is not None and limit < UNLIMITED:
            used = (_read_number(folder / "memory.usage_in_bytes") or 0) - _inactive_file(folder, "total_inactive_file")
            out.append(MemoryLimit(max(limit - max(used, 0), 0), f"cgroup memory.limit_in_bytes {_gib(limit)}", False))
    return out


def _cgroup_cpu_quota() -> float | None:
    """The tightest cgroup CPU quota in cores, or None when there is none."""
    quotas = []
    for folder in _cgroup_folders(""):
        try:
            quota, _, period = (folder / "cpu.max").read_text(encoding="ascii", errors="replace").partition(" ")
        except OSError:
            continue
        if quota.strip().isdigit() and period.strip().isdigit() and int(period) > 0:
            quotas.append(int(quota) / int(period))
    for folder in _cgroup_folders("cpu"):
        quota, period = _read_signed(folder / "cpu.cfs_quota_us"), _read_number(folder / "cpu.cfs_period_us")
        if quota is not None and quota > 0 and period:
            quotas.append(quota / period)
    return min(quotas) if quotas else None


def _read_signed(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="ascii", errors="replace").strip())
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
# The machine


def _meminfo() -> list[MemoryLimit]:
    try:
        with open(PROC / "meminfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return [MemoryLimit(int(line.split()[1]) * 1024, "available memory (MemAvailable)", False)]
    except (OSError, ValueError, IndexError):
        pass
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return [MemoryLimit(pages, "available memory", False)]
    except (ValueError, OSError, AttributeError):
        return []


def _gib(size: int) -> str:
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.0f} MiB"
