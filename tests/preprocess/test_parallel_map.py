import os

import pytest

from genemask_preprocess.errors import InputError
from genemask_preprocess.parallel_map import parallel_map

_STATE = {}


def _square_with_pid(x):
    return x * x, os.getpid()


def _set_offset(value):
    _STATE["offset"] = value


def _add_offset(x):
    return x + _STATE["offset"]


def _fail_on_3(x):
    if x == 3:
        raise InputError("item 3 is bad")
    return x


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_results_keep_input_order(workers):
    out = list(parallel_map(_square_with_pid, range(50), workers))
    assert [value for value, _ in out] == [x * x for x in range(50)]
    pids = {pid for _, pid in out}
    assert (pids == {os.getpid()}) == (workers == 1)


def test_initializer_runs_in_each_worker():
    assert list(parallel_map(_add_offset, range(5), 2, initializer=_set_offset, initargs=(10,))) == list(range(10, 15))


def test_items_are_drawn_lazily_within_the_bound():
    drawn = []

    def items():
        for i in range(100):
            drawn.append(i)
            yield i

    results = parallel_map(_add_offset, items(), 2, initializer=_set_offset, initargs=(0,), max_pending=3)
    assert next(results) == 0
    assert len(drawn) <= 4
    assert list(results) == list(range(1, 100))


@pytest.mark.parametrize("workers", [1, 2])
def test_a_worker_error_reaches_the_caller(workers):
    with pytest.raises(InputError, match="item 3"):
        list(parallel_map(_fail_on_3, range(10), workers))


def _die_on_3(x, how=None):
    import signal

    if x == 3:
        os.kill(os.getpid(), signal.SIGKILL if how is None else how)
    return x


def _stop_on_3(x):
    import signal

    return _die_on_3(x, signal.SIGTERM)


def test_a_worker_that_dies_ends_the_map_instead_of_hanging():
    from genemask_preprocess.parallel_map import WorkerDied

    with pytest.raises(WorkerDied, match="SIGKILL"):
        list(parallel_map(_die_on_3, range(10), 2))


def test_a_worker_stopped_by_a_signal_reads_as_that_signal():
    from genemask_preprocess.errors import Interrupted

    with pytest.raises(Interrupted) as info:
        list(parallel_map(_stop_on_3, range(10), 2))
    assert info.value.exit_code == 128 + 15


class _UnpicklableMemoryError(MemoryError):
    def __init__(self, shape, dtype):  # as numpy's: pickling calls __init__ with the message only
        super().__init__(f"Unable to allocate an array with shape {shape} and data type {dtype}")


def _out_of_memory_on_3(x):
    if x == 3:
        raise _UnpicklableMemoryError((1 << 40,), "int64")
    return x


def test_a_worker_out_of_memory_is_a_memory_error_in_the_main_process():
    with pytest.raises(MemoryError, match=r"Unable to allocate an array with shape \(1099511627776,\)"):
        list(parallel_map(_out_of_memory_on_3, range(10), 2))


def test_workers_option_caps_at_the_usable_cores_with_one_warning(monkeypatch, capsys):
    import argparse

    import genemask_preprocess.parallel_map as module

    monkeypatch.setattr(module, "usable_cores", lambda: 2)
    from genemask_preprocess.command_line import run_command

    assert module.workers_option("2") == 2 and capsys.readouterr().err == ""
    assert run_command("genemask-x", lambda argv: module.workers_option("200") - 2, []) == 0  # capped to 2
    assert capsys.readouterr().err.splitlines() == [
        "genemask-x: warning: --workers 200 is more than the 2 CPU core(s) this process may use; using 2"]
    for bad in ("0", "-3", "two"):
        with pytest.raises(argparse.ArgumentTypeError):
            module.workers_option(bad)
