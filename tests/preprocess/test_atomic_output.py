import os
import signal
import subprocess
import sys
import textwrap

import pytest
from special_files import make_character_device, make_socket

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


# --- what claim_outputs refuses, and the lock ----------------------------------------------------


@pytest.mark.parametrize("kind, word", [("fifo", "FIFO"), ("device", "character device"), ("socket", "socket"),
                                        ("stdout", "file descriptor")])
def test_claim_refuses_an_output_that_is_not_a_file_or_folder(tmp_path, kind, word):
    from genemask_preprocess.atomic_output import Output, claim_outputs

    out = tmp_path / "out"
    if kind == "fifo":
        os.mkfifo(out)
    elif kind == "device":
        (tmp_path / "devices").mkdir()
        out.symlink_to(make_character_device(tmp_path / "devices" / "full"))
    elif kind == "socket":
        make_socket(out)
    else:
        out.symlink_to("/dev/stdout")
    for folder in (False, True):
        with pytest.raises(OutputError, match=word), claim_outputs([Output(out, folder=folder)]):
            pass
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "devices") == ["out"]


def test_claim_refuses_an_output_that_is_an_input_by_inode_not_by_name(tmp_path, monkeypatch):
    from genemask_preprocess.atomic_output import Output, claim_outputs

    monkeypatch.chdir(tmp_path)
    (tmp_path / "g.fa").write_text(">a\nACGT\n")
    os.link(tmp_path / "g.fa", tmp_path / "hard.fa")
    (tmp_path / "soft.fa").symlink_to(tmp_path / "g.fa")
    for out in ("g.fa", "./g.fa", str(tmp_path / "g.fa"), "hard.fa", "soft.fa", "sub/../g.fa"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        with pytest.raises(OutputError, match="is also an input"), claim_outputs([Output(out)], ["g.fa"]):
            pass
    with pytest.raises(OutputError, match="same place"), claim_outputs([Output("x.json"), Output("./x.json", "--p")]):
        pass
    with claim_outputs([Output("counts.npz")], ["g.fa", None, "missing.fa"]) as targets:
        assert targets == [tmp_path / "counts.npz"]


def test_claim_refuses_a_folder_output_replacing_an_input_and_an_output_inside_an_input_folder(tmp_path, monkeypatch):
    from genemask_preprocess.atomic_output import Output, claim_outputs

    monkeypatch.chdir(tmp_path)
    (tmp_path / "out" / "input0").mkdir(parents=True)
    (tmp_path / "out" / "input0" / "dict.txt").write_text("A 1\n")
    (tmp_path / "out" / "notes.txt").write_text("mine\n")
    owned = ("input0", "label", "checkpoint*.pt")
    with pytest.raises(OutputError, match="would replace"), claim_outputs(
        [Output("out", folder=True, owned=owned)], ["out/input0/dict.txt"]
    ):
        pass
    (tmp_path / "out" / "checkpoint_last.pt").write_text("x")
    with pytest.raises(OutputError, match="would replace"), claim_outputs(
        [Output("out", folder=True, owned=owned)], ["out/checkpoint_last.pt"]
    ):
        pass
    with claim_outputs([Output("out", folder=True, owned=owned)], ["out/notes.txt"]):  # not among the replaced
        pass
    with pytest.raises(OutputError, match="inside the input folder"), claim_outputs(
        [Output("out/input0/m.json")], ["out/input0"]
    ):
        pass


def test_claim_locks_the_output_against_a_second_process(tmp_path):
    from genemask_preprocess.atomic_output import Output, claim_outputs

    out = tmp_path / "sub" / "counts.npz"
    claimed, claimed_signal = os.pipe()
    go, go_signal = os.pipe()
    pid = os.fork()
    if pid == 0:  # the first run: claims, then holds its claim until the parent has tried
        try:
            with claim_outputs([Output(out)]):
                os.write(claimed_signal, b"x")
                os.read(go, 1)
        finally:
            os._exit(0)
    assert os.read(claimed, 1) == b"x"
    with pytest.raises(OutputError, match=r"another run \(process \d+\) is writing it"), claim_outputs([Output(out)]):
        pass
    os.write(go_signal, b"x")
    os.waitpid(pid, 0)
    assert not (tmp_path / "sub").exists()  # the folder the claim made is gone with its lock file
    with claim_outputs([Output(out)]):
        assert (tmp_path / "sub" / ".counts.npz.lock").exists()
        (tmp_path / "sub" / "counts.npz").write_text("done")
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["counts.npz"]


def test_a_file_that_appeared_after_the_claim_is_not_replaced_unless_forced(tmp_path):
    from genemask_preprocess.atomic_output import Output, claim_outputs

    out = tmp_path / "out.txt"
    with claim_outputs([Output(out)]):
        out.write_text("theirs")
        with pytest.raises(OutputError, match="appeared or changed"), atomic_file(out) as handle:
            handle.write("mine")
    assert out.read_text() == "theirs"
    with claim_outputs([Output(out)], force=True):
        out.write_text("theirs again")
        with atomic_file(out) as handle:
            handle.write("mine")
        with atomic_file(out) as handle:  # its own earlier write is replaced freely
            handle.write("mine twice")
    assert out.read_text() == "mine twice"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_a_folder_filled_meanwhile_is_not_replaced(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(OutputError, match="appeared or changed"), atomic_directory(out) as tmp:
        (tmp / "train.bin").write_text("mine")
        out.mkdir()
        (out / "theirs.txt").write_text("theirs")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert [p.name for p in out.iterdir()] == ["theirs.txt"]


def test_outputs_are_written_through_symlinks(tmp_path):
    real = tmp_path / "elsewhere"
    real.mkdir()
    (real / "old.txt").write_text("old")
    (tmp_path / "f").symlink_to(real / "old.txt")
    with atomic_file(tmp_path / "f") as handle:
        handle.write("new")
    assert (tmp_path / "f").is_symlink() and (real / "old.txt").read_text() == "new"
    (tmp_path / "d").symlink_to(real)
    with atomic_directory(tmp_path / "d", force=True, owned=["a.bin"]) as tmp:
        (tmp / "a.bin").write_text("a")
    assert (tmp_path / "d").is_symlink() and sorted(p.name for p in real.iterdir()) == ["a.bin", "old.txt"]


# --- replacing with --force: nothing is deleted before the new files are in place ----------------


def _old_corpus(out):
    out.mkdir()
    for name, text in (("train.bin", "old bin"), ("dict.txt", "old dict"), ("spm.model", "stale"),
                       ("mine.txt", "the user's")):
        (out / name).write_text(text)
    return {p.name: p.read_text() for p in out.iterdir()}


def test_a_failed_replace_puts_every_old_file_back(tmp_path, monkeypatch):
    from genemask_preprocess import atomic_output

    out = tmp_path / "out"
    old = _old_corpus(out)
    real_rename, placed = os.rename, []

    def failing_rename(src, dst):
        if os.path.dirname(dst) == str(out) and ".tmp-old-" not in str(src):
            placed.append(dst)
            if len(placed) == 2:
                raise OSError(5, "Input/output error", dst)
        return real_rename(src, dst)

    monkeypatch.setattr(atomic_output.os, "rename", failing_rename)
    with pytest.raises(OSError, match="Input/output"), atomic_directory(
        out, force=True, owned=["train.bin", "dict.txt", "spm.model", "meta.json"]
    ) as tmp:
        (tmp / "train.bin").write_text("new bin")
        (tmp / "dict.txt").write_text("new dict")
        (tmp / "meta.json").write_text("{}")
    assert {p.name: p.read_text() for p in out.iterdir()} == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_force_into_a_mount_point_stages_inside_it(tmp_path, monkeypatch):
    """A folder that is a mount point: renames from beside it would cross file systems (EXDEV)."""
    from genemask_preprocess import atomic_output

    out = tmp_path / "mnt"
    old = _old_corpus(out)
    real_rename = os.rename

    def rename_within_the_mount(src, dst):
        inside = [os.path.realpath(p).startswith(str(out) + os.sep) for p in (src, dst)]
        if inside[0] != inside[1]:
            raise OSError(18, "Invalid cross-device link", src)
        return real_rename(src, dst)

    monkeypatch.setattr(atomic_output, "_is_mount_point", lambda folder: folder == out)
    monkeypatch.setattr(atomic_output.os, "rename", rename_within_the_mount)
    with atomic_directory(out, force=True, owned=["train.bin", "dict.txt", "spm.model"]) as tmp:
        assert tmp.parent == out
        (tmp / "train.bin").write_text("new bin")
        (tmp / "dict.txt").write_text("new dict")
    assert {p.name: p.read_text() for p in out.iterdir()} == {
        "train.bin": "new bin", "dict.txt": "new dict", "mine.txt": old["mine.txt"]}


def test_files_written_together_are_all_placed_or_none(tmp_path):
    from genemask_preprocess.atomic_output import Output, claim_outputs, write_files_together

    a, b = tmp_path / "a.csv", tmp_path / "b.json"
    with claim_outputs([Output(a), Output(b)]):
        write_files_together({a: "one\n", b: "two\n"})
    assert (a.read_text(), b.read_text()) == ("one\n", "two\n")
    with claim_outputs([Output(a), Output(b)]):
        a.write_text("theirs\n")  # another program writes the first output meanwhile
        with pytest.raises(OutputError, match="appeared or changed"):
            write_files_together({a: "new one\n", b: "new two\n"})
    assert (a.read_text(), b.read_text()) == ("theirs\n", "two\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.json"]
