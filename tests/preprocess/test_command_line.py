import errno
import os
import signal

import pytest

from genemask_preprocess.command_line import (
    HANDLED_SIGNALS,
    command_entry_point,
    printable,
    run_command,
    warn,
)
from genemask_preprocess.errors import GeneMaskError, InputError, Interrupted


def test_a_genemask_error_is_one_line_and_exit_1(capsys):
    def run(argv):
        raise InputError("genome.fa: no such\nfile")

    assert run_command("genemask-x", run, []) == 1
    assert capsys.readouterr().err == "genemask-x: error: genome.fa: no such file\n"


def test_an_os_error_is_one_line_and_exit_1(capsys):
    def run(argv):
        raise OSError(errno.ENOSPC, "No space left on device", "/out/table.tsv")

    assert run_command("genemask-x", run, []) == 1
    assert capsys.readouterr().err == "genemask-x: error: /out/table.tsv: No space left on device\n"


def test_signals_exit_128_plus_signum(capsys):
    def run(argv):
        raise Interrupted(signal.SIGHUP)

    assert run_command("genemask-x", run, []) == 128 + signal.SIGHUP
    assert "SIGHUP" in capsys.readouterr().err


def test_success_and_debug_mode(monkeypatch):
    main = command_entry_point("genemask-x", lambda argv: None)
    assert main([]) == 0

    def run(argv):
        raise GeneMaskError("bad")

    monkeypatch.setenv("GENEMASK_DEBUG", "1")
    with pytest.raises(GeneMaskError):
        run_command("genemask-x", run, [])


def test_every_error_class_derives_from_the_root():
    import genemask_preprocess.errors as errors

    assert issubclass(errors.InputError, GeneMaskError) and issubclass(errors.OutputError, GeneMaskError)
    assert not issubclass(Interrupted, Exception)  # `except Exception` must not swallow a signal


# ---------------------------------------------------------------------------------------------
# Memory limits, odd file names, warnings (issue 21)


def test_a_late_memory_error_is_one_line_naming_the_limit(capsys, monkeypatch):
    import genemask_preprocess.resource_limits as limits

    monkeypatch.setattr(limits, "memory_limits", lambda: [limits.MemoryLimit(1, "address-space limit (ulimit -v) 0.5 GiB", True)])

    def run(argv):
        raise MemoryError("Unable to allocate 128. MiB for an array with shape (16777216,) and data type int64")

    assert run_command("genemask-x", run, []) == 1
    assert capsys.readouterr().err == (
        "genemask-x: error: out of memory (Unable to allocate 128. MiB for an array with shape (16777216,) and data "
        "type int64); the tightest memory limit here: address-space limit (ulimit -v) 0.5 GiB; nothing was left "
        "half-written\n")


@pytest.mark.parametrize("out_of_memory, shown, bug", [
    (RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                  "you tried to allocate 8589934592 bytes.\nError code 12"), "[enforce fail", RuntimeError("a bug")),
    # what CPython raises when a C call ran out of memory without saying so
    (SystemError("error return without exception set"), "error return without",
     SystemError("bad argument to internal function")),
], ids=["torch", "interpreter"])
def test_out_of_memory_is_one_line_and_other_errors_of_its_type_are_not_hidden(capsys, out_of_memory, shown, bug):
    def fails(argv, err=out_of_memory):
        raise err

    assert run_command("genemask-x", fails, []) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"genemask-x: error: out of memory ({shown}")

    def has_a_bug(argv):
        raise bug

    with pytest.raises(type(bug), match=str(bug)):
        run_command("genemask-x", has_a_bug, [])


def test_file_names_that_are_not_utf8_print_readably_everywhere(capsys):
    name = os.fsdecode(b"caf\xe9\x1b[31m.fa")  # a Latin-1 byte and a terminal escape sequence

    def run(argv):
        print(f"reading {name}")  # stdout would raise UnicodeEncodeError on the surrogate
        raise InputError(f"{name}: no such file")

    assert run_command("genemask-x", run, []) == 1
    out, err = capsys.readouterr()
    assert out == "reading caf\\xe9\x1b[31m.fa\n"
    assert err == "genemask-x: error: caf\\xe9\\x1b[31m.fa: no such file\n"
    assert printable(name) == "caf\\xe9\\x1b[31m.fa" and printable("tab\tand é stay") == "tab\tand é stay"


def test_a_cpu_time_limit_is_a_stop_signal(capsys):
    def run(argv):
        raise Interrupted(signal.SIGXCPU)

    assert run_command("genemask-x", run, []) == 128 + signal.SIGXCPU
    assert capsys.readouterr().err == "genemask-x: interrupted by SIGXCPU; nothing was left half-written\n"
    assert signal.SIGXCPU in HANDLED_SIGNALS


def test_warnings_name_the_running_command(capsys):
    def run(argv):
        warn("--workers 9 is more\nthan 2")

    assert run_command("genemask-x", run, []) == 0
    assert capsys.readouterr().err == "genemask-x: warning: --workers 9 is more than 2\n"
