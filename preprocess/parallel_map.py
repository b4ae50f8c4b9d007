"""The one parallel map: ordered results, a bounded number of tasks in flight, clean stops.

``parallel_map(func, items, workers)`` yields ``func(item)`` in input order. Items are
drawn lazily from ``items`` in the calling process (so a reader's errors surface there),
and at most ``max_pending`` tasks are in flight, so memory stays bounded on a genome. With
``workers == 1`` everything runs in-process. A command's ``--workers`` option is parsed by
:func:`workers_option`, which caps it at the usable cores.

Each worker is a forked process with its own pipe: no lock is shared between processes, so
a worker killed at any moment (SIGTERM to the process group, the OOM killer) cannot leave
the others or the main process waiting on a lock it held, as it can with
``multiprocessing.Pool``. Workers ignore SIGINT; on any exception, a signal included, the
main process kills them (SIGKILL) before it unwinds. A worker that dies on its own ends the
map with one error, or with :class:`~genemask_preprocess.errors.Interrupted` when a stop
signal killed it.
"""

from __future__ import annotations

import multiprocessing
import signal
import traceback
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import wait
from typing import Any, TypeVar

from genemask_preprocess.command_line import HANDLED_SIGNALS, ignore_signals_in_worker, warn
from genemask_preprocess.errors import GeneMaskError, Interrupted
from genemask_preprocess.resource_limits import usable_cores

T = TypeVar("T")
R = TypeVar("R")


class WorkerDied(GeneMaskError):
    """A worker process ended without returning its task's result."""


def workers_option(text: str, option: str = "--workers") -> int:
    """An argparse ``type`` for a number of worker processes: >= 1, at most the usable cores.

    More workers than cores only adds processes and memory, so the number is capped at the cores
    this process may use (CPU affinity and cgroup quota, :func:`~genemask_preprocess.resource_limits.usable_cores`),
    with one warning line. Below 1 is a usage error naming the option.
    """
    import argparse

    try:
        workers = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of processes, got {text!r}") from None
    if workers < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {workers}")
    cores = usable_cores()
    if workers > cores:
        warn(f"{option} {workers} is more than the {cores} CPU core(s) this process may use; using {cores}")
        return cores
    return workers


def _worker_loop(conn, func, initializer, initargs) -> None:
    ignore_signals_in_worker()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED_SIGNALS)  # blocked by the parent around the fork
    if initializer is not None:
        initializer(*initargs)
    while True:
        try:
            task = conn.recv()
        except EOFError:  # the main process is gone
            return
        if task is None:
            return
        index, item = task
        try:
            result = (index, True, func(item))
        except Exception as err:  # sent back and raised in the main process
            result = (index, False, _portable(err))
        conn.send(result)


def _portable(err: Exception) -> Exception:
    """``err`` if it survives pickling, else a RuntimeError with its text and traceback.

    A ``MemoryError`` stays one (as a plain ``MemoryError``), so the main process reports it as such.
    """
    import pickle

    try:
        pickle.loads(pickle.dumps(err))
        return err
    except Exception:
        if isinstance(err, MemoryError):
            return MemoryError(str(err))
        return RuntimeError(f"{type(err).__name__}: {err}\n{traceback.format_exc()}")


class _Workers:
    def __init__(self, count: int, func, initializer, initargs):
        context = multiprocessing.get_context("fork")
        self.processes, self.conns = [], []
        # A stop signal between the fork and the worker's own handlers would raise in the
        # worker (a traceback); blocked, it waits until the worker ignores or dies of it.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
        try:
            for _ in range(count):
                parent, child = context.Pipe()
                process = context.Process(target=_worker_loop, args=(child, func, initializer, initargs), daemon=True)
                process.start()
                child.close()
                self.processes.append(process)
                self.conns.append(parent)
        except BaseException:
            self.kill()
            raise
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def kill(self) -> None:
        for process in self.processes:
            if process.exitcode is None:
                process.kill()
        for process in self.processes:
            process.join()
        for conn in self.conns:
            conn.close()

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(None)
            except OSError:
                pass
        for process in self.processes:
            process.join()
        for conn in self.conns:
            conn.close()

    def died(self, slot: int) -> BaseException:
        process = self.processes[slot]
        process.join()
        signum = -process.exitcode if process.exitcode and process.exitcode < 0 else None
        if signum in [int(s) for s in HANDLED_SIGNALS]:
            return Interrupted(signum)
        how = f"signal {signal.Signals(signum).name}" if signum else f"exit code {process.exitcode}"
        return WorkerDied(f"a worker process died ({how}; out of memory?)")


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
    limit = max(max_pending or 2 * workers, 1)
    pool = _Workers(workers, func, initializer, initargs)
    try:
        source = enumerate(items)
        idle = list(range(workers))
        busy: dict[int, int] = {}  # slot -> index of its task
        done: dict[int, Any] = {}
        next_out, exhausted = 0, False
        while True:
            while idle and not exhausted and len(busy) + len(done) < limit:
                task = next(source, None)
                if task is None:
                    exhausted = True
                    break
                slot = idle.pop()
                pool.conns[slot].send(task)
                busy[slot] = task[0]
            while next_out in done:
                yield done.pop(next_out)
                next_out += 1
            if not busy:
                if exhausted:
                    break
                continue
            by_conn = {pool.conns[slot]: slot for slot in busy}
            for conn in wait(list(by_conn)):
                slot = by_conn[conn]
                try:
                    index, ok, value = conn.recv()
                except (EOFError, OSError):
                    raise pool.died(slot) from None
                if not ok:
                    raise value
                del busy[slot]
                idle.append(slot)
                done[index] = value
    except BaseException:
        pool.kill()
        raise
    pool.close()
