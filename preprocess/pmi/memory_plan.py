"""How much memory counting needs, how much there is, and the piece size it cuts a genome into.

Counting refuses up front, naming the figures and the limit, rather than being killed by the
OOM killer or a ``MemoryError`` an hour in. The estimate follows
:mod:`genemask_preprocess.pmi.ngram_counts`: per worker one piece of rolling codes, plus the
merged tables of every length. It is checked against every limit that applies
(:mod:`genemask_preprocess.resource_limits`: ``ulimit -v``, the cgroup's, the machine's).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from genemask_preprocess.formats.input_file import is_gzip
from genemask_preprocess.formats.ngram_counts_file import DENSE_MAX_N, CountsError
from genemask_preprocess.resource_limits import MemoryLimit, memory_limits


def default_piece_bases(total_bases: int, workers: int) -> int:
    """A quarter of the genome per worker, clipped to 1..16 Mbp."""
    return int(np.clip(total_bases // (4 * workers) + 1, 1 << 20, 1 << 24))


HEADROOM = 0.8
"""The share of a limit's room the estimate may take: allocator overhead and the rest of the process."""


@dataclass(frozen=True)
class MemoryNeed:
    """Peak bytes of a count: in all processes together, and in the largest one."""

    total: int
    per_process: int

    def fits(self, limit: MemoryLimit) -> bool:
        need = self.per_process if limit.per_process else self.total
        return need <= int(limit.available * HEADROOM)


def estimate_memory(max_n: int, total_bases: int, workers: int, both_strands: bool) -> MemoryNeed:
    """Peak bytes counting needs for a genome of ``total_bases`` bases."""
    piece = default_piece_bases(total_bases, workers)
    per_worker = piece * 40  # codes, validity, the int64 copy bincount/sort make
    strands = 2 if both_strands else 1
    merged = 0
    for n in range(1, max_n + 1):
        if n <= DENSE_MAX_N:
            merged += (4**n) * 8 * (3 if n == max_n else 1)
        else:  # sparse: codes + counts, and a merge copy of both
            merged += min(4**n, total_bases * strands) * 32
    if max_n <= DENSE_MAX_N:
        per_worker += (4**max_n) * 8 * 2
    # The reader holds one record (as text, bytes and codes); chromosome-sized at most.
    reader = 3 * min(total_bases, 250_000_000)
    # A forked worker starts as a copy of the main process's address space, so under a
    # per-process limit each one may need the main process's share and its own.
    return MemoryNeed(total=workers * per_worker + merged + reader, per_process=per_worker + merged + reader)


def check_memory(max_n: int, total_bases: int, workers: int, both_strands: bool,
                 limits: list[MemoryLimit] | None = None) -> None:
    """Raise :class:`CountsError` naming the figures and the limit if counting would not fit.

    ``limits`` defaults to every limit that applies to this process
    (:func:`~genemask_preprocess.resource_limits.memory_limits`). The message says what would
    fit: fewer ``--workers`` when they are what does not fit, else a smaller ``--max-n``.
    """
    limits = memory_limits() if limits is None else limits
    need = estimate_memory(max_n, total_bases, workers, both_strands)
    failed = [limit for limit in limits if not need.fits(limit)]
    if not failed:
        return

    def fits(n: int, w: int) -> bool:
        return all(estimate_memory(n, total_bases, w, both_strands).fits(limit) for limit in limits)

    fewer_workers = [w for w in range(workers - 1, 0, -1) if fits(max_n, w)]
    shorter = [n for n in range(max_n - 1, 0, -1) if fits(n, workers)]
    if fewer_workers:
        hint = f"; --workers {fewer_workers[0]} fits"
    elif shorter:
        hint = f"; --max-n {shorter[0]} fits"
    else:
        hint = ""
    limit = min(failed, key=lambda limit: limit.available)
    size = need.per_process if limit.per_process else need.total
    raise CountsError(
        f"--max-n {max_n} needs about {_size(size)} of memory for {total_bases:,} bases "
        f"with {workers} worker(s), but only {_size(limit.available * HEADROOM)} is available "
        f"({limit.source}){hint}"
    )


def _size(size: float) -> str:
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.0f} MiB"


def guess_total_bases(path: str | os.PathLike) -> int:
    """Genome size from the file size when there is no .fai (gzip DNA compresses about 4x)."""
    size = os.path.getsize(path)
    return size * 4 if is_gzip(path) else size
