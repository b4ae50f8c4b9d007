"""Inputs that are pipes: sniffing then reading loses nothing; a large pipe is read once, in one line if twice."""

import gzip
import os
import threading

import pytest

from genemask_preprocess.errors import InputError
from genemask_preprocess.formats import input_file
from genemask_preprocess.formats.genome import open_genome
from genemask_preprocess.formats.input_file import (
    PipeReadTwiceError,
    is_gzip,
    is_pipe,
    open_input,
    open_seekable,
    open_text,
    require_regular_file,
)
from genemask_preprocess.formats.text_table import read_labelled_rows


def _pipe(data: bytes, chunk: int = 1000) -> str:
    """``/dev/fd/N`` of a pipe that a thread fills with ``data`` in small writes, as ``cat`` would."""
    read_end, write_end = os.pipe()

    def feed():
        with os.fdopen(write_end, "wb", buffering=0) as handle:
            for start in range(0, len(data), chunk):
                handle.write(data[start : start + chunk])

    threading.Thread(target=feed, daemon=True).start()
    return f"/dev/fd/{read_end}"


FASTA = b"".join(b">r%d\n" % i + b"ACGTTGCANN" * 70 + b"\n" for i in range(300))


def test_a_pipe_sniffed_then_read_gives_every_byte(tmp_path):
    path = _pipe(FASTA)
    assert is_pipe(path) and not is_pipe(__file__)
    assert not is_gzip(path)
    with open_input(path) as handle:
        assert handle.read(5) == b">r0\nA"
    with open_input(path) as handle:  # the head is replayed, then the pipe goes on
        assert handle.read() == FASTA


def test_a_gzip_pipe_is_recognised_and_read_whole():
    path = _pipe(gzip.compress(FASTA), chunk=1)  # one byte at a time: sniffing must wait for the magic
    assert is_gzip(path)
    with open_input(path) as handle:
        assert handle.read() == FASTA


def test_a_small_pipe_reads_like_a_file_any_number_of_times(tmp_path):
    table = b"sequence\tlabel\nACGTACGT\t1\nTTTTGGGG\t0\n"
    path = _pipe(table)
    for _ in range(3):
        with open_text(path) as handle:
            assert handle.read() == table.decode()
    assert [row.sequence for row in read_labelled_rows(path)] == ["ACGTACGT", "TTTTGGGG"]
    with open_seekable(path) as handle:
        handle.seek(9)
        assert handle.read(5) == b"label"


def test_a_large_pipe_read_twice_is_one_error_not_short_data(monkeypatch):
    monkeypatch.setattr(input_file, "REPLAY_BYTES", 1 << 14)  # a sniff's buffered read (8 KiB) fits
    path = _pipe(FASTA)
    with open_input(path) as handle:
        assert handle.read(100) == FASTA[:100]  # sniffing: kept
    with open_input(path) as handle:
        assert handle.read() == FASTA  # the one full pass
    with pytest.raises(PipeReadTwiceError, match="read only once"), open_input(path) as handle:
        handle.read()


def test_genomes_from_pipes_read_as_the_files_do(tmp_path):
    plain = tmp_path / "g.fa"
    plain.write_bytes(FASTA)
    expected = [(r.name, r.sequence) for r in open_genome(plain).records()]
    for data in (FASTA, gzip.compress(FASTA)):
        source = open_genome(_pipe(data))
        assert source.format == "fasta" and source.total_bases is None
        assert [(r.name, r.sequence) for r in source.records()] == expected
    tsv = b"sequence\tlabel\n" + b"".join(b"ACGTACGTAC%d\t1\n" % 0 for _ in range(3)).replace(b"0\t", b"\t")
    source = open_genome(_pipe(tsv))
    assert source.format == "tsv" and [r.sequence for r in source.records()] == ["ACGTACGTAC"] * 3


def test_a_command_that_reads_twice_refuses_a_pipe_up_front(tmp_path):
    require_regular_file(tmp_path, "never")  # a folder is not a pipe: its own errors apply
    (tmp_path / "f").write_text("x")
    require_regular_file(tmp_path / "f", "never")
    with pytest.raises(InputError, match=r"is a pipe, which can be read only once, but it is read twice"):
        require_regular_file(_pipe(b"x"), "it is read twice")
