"""File names that are not UTF-8, handed to libraries that take UTF-8 names only."""

import os

import pytest

from genemask_preprocess.native_paths import is_utf8, native_path

LATIN1 = os.fsdecode(b"caf\xe9")


def test_a_utf8_path_is_handed_over_unchanged(tmp_path):
    with native_path(tmp_path / "café.txt") as path:
        assert path == str(tmp_path / "café.txt")


def test_an_existing_file_or_folder_gets_an_ascii_name_that_reaches_it(tmp_path):
    folder = tmp_path / LATIN1
    folder.mkdir()
    (folder / "x.txt").write_text("hello")
    assert not is_utf8(folder)
    with native_path(folder / "x.txt") as path:
        assert path.isascii() and open(path).read() == "hello"
        path.encode("utf-8")  # what a Rust or C++ library does with it
    with native_path(folder) as path, open(os.path.join(path, "new.txt"), "w") as handle:
        handle.write("written through the folder's link")
    assert (folder / "new.txt").read_text() == "written through the folder's link"
    with native_path(folder / "other.txt") as path, open(path, "w") as handle:  # a file still to be written
        handle.write("new")
    assert (folder / "other.txt").read_text() == "new"


def test_a_new_file_whose_own_name_is_not_utf8_is_an_os_error(tmp_path):
    with pytest.raises(OSError, match="not UTF-8"), native_path(tmp_path / LATIN1):
        pass
