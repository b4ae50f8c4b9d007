"""How much memory counting needs, how much there is, and the piece size it cuts a genome into.

Counting refuses up front, naming the figures, rather than being killed by the OOM killer
an hour in. The estimate follows :mod:`genemask_preprocess.pmi.ngram_counts`: per worker one
piece of rolling codes, plus the merged tables of every length.
"""

from __future__ import annotations

import os

import numpy as np

from genemask_preprocess.formats.input_file import is_gzip
from genemask_preprocess.formats.ngram_counts_file import DENSE_MAX_N, CountsError


def default_piece_bases(total_bases: int, workers: int) -> int:
    """A quarter of the genome per worker, clipped to 1..16 Mbp."""
    return int(np.clip(total_bases // (4 * workers) + 1, 1 << 20, 1 << 24))


def estimate_memory(max_n: int, total_bases: int, workers: int, both_strands: bool) -> int:
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
    return workers * per_worker + merged + reader


def available_memory() -> int:
    """Bytes of memory available without swapping (MemAvailable), or a large number if unknown."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def check_memory(max_n: int, total_bases: int, workers: int, both_strands: bool) -> None:
    """Raise :class:`CountsError` naming the figures if counting would not fit in memory."""
    need = estimate_memory(max_n, total_bases, workers, both_strands)
    have = int(available_memory() * 0.8)
    if need <= have:
        return
    fits = [n for n in range(1, max_n) if estimate_memory(n, total_bases, workers, both_strands) <= have]
    hint = f"; --max-n {fits[-1]} fits" if fits else ""
    raise CountsError(
        f"--max-n {max_n} needs about {need / 2**30:.1f} GiB of memory for {total_bases:,} bases "
        f"with {workers} worker(s), but only {have / 2**30:.1f} GiB is available{hint}"
    )


def guess_total_bases(path: str | os.PathLike) -> int:
    """Genome size from the file size when there is no .fai (gzip DNA compresses about 4x)."""
    size = os.path.getsize(path)
    return size * 4 if is_gzip(path) else size
