import os
import signal
import subprocess
import sys
import textwrap

import pytest

from genemask_preprocess.atomic_output import atomic_directory, atomic_file, check_output_directory
from genemask_preprocess.errors import OutputError


def test_atomic_file_appears_only_on_success(tmp_path):
    target = tmp_path / "sub" / "out.txt"  # missing parents are created
    with atomic_file(target) as handle:
        handle.write("partial")
        assert not target.exists()
        assert len(list(target.parent.iterdir())) == 1  # only the temporary sibling
    assert target.read_text() == "partial"
    assert list(target.parent.iterdir()) == [target]


def test_atomic_file_leaves_nothing_on_error_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(target) as handle:
        handle.write("new")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_outputs_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        with atomic_file(tmp_path / "f.txt") as handle:
            handle.write("x")
        with atomic_directory(tmp_path / "d") as tmp:
            (tmp / "a").write_text("a")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o750


def test_atomic_file_refuses_a_directory_and_an_unwritable_place(tmp_path):
    with pytest.raises(OutputError, match="is a directory"), atomic_file(tmp_path):
        pass
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutputError, match="cannot create its folder"), atomic_file(blocker / "x" / "out"):
        pass


def test_atomic_directory_moves_a_new_folder_into_place(tmp_path):
    out = tmp_path / "out"
    with atomic_directory(out) as tmp:
        (tmp / "train.bin").write_bytes(b"1")
        (tmp / "meta.json").write_text("{}")
        assert not out.exists()
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "train.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_atomic_directory_refuses_data_without_force_and_keeps_user_files_with_it(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "train.notes").write_text("mine")  # matches train.* but is not ours
    (out / "spm.model").write_text("stale")  # ours, from an earlier run
    (out / "train.bin").write_text("old")
    with pytest.raises(OutputError, match="--force"):
        check_output_directory(out, force=False)
    with atomic_directory(out, force=True, owned=["train.bin", "spm.model", "meta.json"]) as tmp:
        (tmp / "train.bin").write_text("new")
        (tmp / "meta.json").write_text("{}")
    assert (out / "train.notes").read_text() == "mine"
    assert (out / "train.bin").read_text() == "new"
    assert not (out / "spm.model").exists()


def test_atomic_directory_cleans_up_on_error(tmp_path):
    with pytest.raises(KeyboardInterrupt), atomic_directory(tmp_path / "out") as tmp:
        (tmp / "x").write_text("x")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_a_signal_mid_write_leaves_nothing(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal, sys, time
        from genemask_preprocess.atomic_output import atomic_file
        from genemask_preprocess.command_line import run_command
        def run(argv):
            with atomic_file({str(tmp_path / "out.txt")!r}) as handle:
                handle.write("partial"); handle.flush()
                print("writing", flush=True)
                time.sleep(30)
        sys.exit(run_command("demo", run, []))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    assert err.strip().splitlines() == ["demo: interrupted by SIGTERM; nothing was left half-written"]
    assert list(tmp_path.iterdir()) == []
