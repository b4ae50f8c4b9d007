"""The one parallel map: ordered results, a bounded number of tasks in flight, clean stops.

``parallel_map(func, items, workers)`` yields ``func(item)`` in input order. Items are
drawn lazily from ``items`` in the calling process (so a reader's errors surface there),
and at most ``max_pending`` tasks are in flight, so memory stays bounded on a genome. With
``workers == 1`` everything runs in-process. Workers ignore SIGINT; the main process
terminates the pool on any exception, including a signal.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from genemask_preprocess.command_line import ignore_signals_in_worker

T = TypeVar("T")
R = TypeVar("R")


def _init_worker(initializer, initargs) -> None:
    ignore_signals_in_worker()
    if initializer is not None:
        initializer(*initargs)


def parallel_map(
    func: Callable[[T], R],
    items: Iterable[T],
    workers: int,
    *,
    initializer: Callable[..., Any] | None = None,
    initargs: tuple = (),
    max_pending: int | None = None,
) -> Iterator[R]:
    """Yield ``func(item)`` for each item, in order, using ``workers`` forked processes."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers == 1:
        if initializer is not None:
            initializer(*initargs)
        for item in items:
            yield func(item)
        return
    limit = max_pending or 2 * workers
    pool = multiprocessing.get_context("fork").Pool(workers, initializer=_init_worker, initargs=(initializer, initargs))
    try:
        pending: deque = deque()
        for item in items:
            if len(pending) >= limit:
                yield pending.popleft().get()
            pending.append(pool.apply_async(func, (item,)))
        while pending:
            yield pending.popleft().get()
        pool.close()
        pool.join()
    finally:
        pool.terminate()
