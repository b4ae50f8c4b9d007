import errno
import signal

import pytest

from genemask_preprocess.command_line import command_entry_point, run_command
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
