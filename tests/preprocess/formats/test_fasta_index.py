"""FASTA indexes: read by region exactly as the stream reads, checked against the file, never written."""

import os
import random

import pysam
import pytest

from genemask_preprocess.formats.fasta_index import FastaIndexError, IndexedFasta, load_fasta_index
from genemask_preprocess.formats.genome import open_genome

LENGTHS = (30_000, 1, 59, 60, 61, 45_000, 700)


def _write(path, records, width=60, newline="\n"):
    with open(path, "w", newline="") as handle:
        for name, seq in records.items():
            handle.write(f">{name} some description{newline}")
            handle.writelines(seq[i : i + width] + newline for i in range(0, len(seq), width))


def _genome(tmp_path, width=60, newline="\n", bgzip=False):
    rng = random.Random(width)
    records = {f"r{i}": "".join(rng.choice("ACGTNacgt") for _ in range(n)) for i, n in enumerate(LENGTHS)}
    path = tmp_path / "g.fa"
    _write(path, records, width, newline)
    if bgzip:
        pysam.tabix_compress(str(path), str(path) + ".gz")
        path = tmp_path / "g.fa.gz"
    pysam.faidx(str(path))
    return str(path), records


@pytest.mark.parametrize("width, newline, bgzip", [(60, "\n", False), (80, "\r\n", False), (61, "\n", True)])
def test_regions_read_by_index_are_the_records_bases(tmp_path, width, newline, bgzip):
    path, records = _genome(tmp_path, width, newline, bgzip)
    index, note = load_fasta_index(path)
    assert note is None and index.by_region and index.total_bases == sum(LENGTHS)
    assert (index.blocks is not None) == bgzip and (not bgzip or len(index.blocks) > 1)
    rng = random.Random(1)
    with IndexedFasta(index) as fasta:
        for name, seq in [*records.items(), *reversed(records.items())]:
            for _ in range(5):
                start = rng.randrange(len(seq))
                stop = rng.randrange(start, len(seq)) + 1
                assert fasta.bases(name, start, stop).decode() == seq[start:stop]
            assert fasta.bases(name, 0, len(seq)).decode() == seq


def test_an_index_is_used_only_when_it_fits_the_file(tmp_path):
    path, records = _genome(tmp_path)
    fasta_time = os.stat(path).st_mtime_ns
    os.utime(path + ".fai", ns=(fasta_time - 10**9, fasta_time - 10**9))
    assert load_fasta_index(path) == (None, "g.fa.fai is older than g.fa, so it may not describe it")
    os.utime(path + ".fai")
    records["r3"] += "ACGT"  # another file of the same names (its index made after the FASTA)
    _write(tmp_path / "other.fa", records)
    os.replace(tmp_path / "other.fa", path)
    os.utime(path + ".fai")
    index, note = load_fasta_index(path)
    assert index is None and "does not describe g.fa" in note
    with open(path + ".fai", "a") as handle:
        handle.write("broken line\n")
    assert "cannot be read as a FASTA index" in load_fasta_index(path)[1]
    os.remove(path + ".fai")
    assert load_fasta_index(path) == (None, None)


def test_gzip_and_bgzip_without_gzi_give_lengths_but_no_regions(tmp_path):
    path, _ = _genome(tmp_path, bgzip=True)
    os.remove(path + ".gzi")
    index, note = load_fasta_index(path)
    assert not index.by_region and index.total_bases == sum(LENGTHS) and note == "g.fa.gz has a .fai but no .gzi"
    plain = tmp_path / "g.fa"
    os.system(f"gzip -c {plain} > {tmp_path / 'p.fa.gz'}")
    os.replace(path + ".fai", tmp_path / "p.fa.gz.fai")
    os.utime(tmp_path / "p.fa.gz.fai")
    index, note = load_fasta_index(str(tmp_path / "p.fa.gz"))
    assert not index.by_region and "gzip, not bgzip" in note


def _edit_fai(path, edit):
    lines = [line.split("\t") for line in open(path + ".fai").read().splitlines()]
    edit(lines)
    with open(path + ".fai", "w") as handle:
        handle.writelines("\t".join(fields) + "\n" for fields in lines)


def test_a_mismatch_found_while_reading_is_one_error(tmp_path):
    path, records = _genome(tmp_path)

    _edit_fai(path, lambda lines: lines[3].__setitem__(0, "chrX"))  # the index of a file naming it otherwise
    index, _ = load_fasta_index(path)
    with IndexedFasta(index) as fasta:
        assert fasta.bases("r2", 0, 59).decode() == records["r2"]
        with pytest.raises(FastaIndexError, match="not its header"):
            fasta.bases("chrX", 0, 10)
    for shorter, problem in ((100, "its lines are not 60 bases each"), (120, "goes on past its length")):
        _genome(tmp_path)  # r5 grew after indexing, its index then touched
        _edit_fai(path, lambda lines, cut=shorter: lines[5].__setitem__(1, str(int(lines[5][1]) - cut)))
        index, _ = load_fasta_index(path)
        with IndexedFasta(index) as fasta:
            assert fasta.bases("r5", 0, 100).decode() == records["r5"][:100]
            with pytest.raises(FastaIndexError, match=problem):
                fasta.bases("r5", 44_000, 45_000 - shorter)


def test_reading_a_bgzip_genome_without_gzi_writes_nothing_beside_it(tmp_path):
    path, records = _genome(tmp_path, bgzip=True)
    os.remove(path + ".gzi")
    before = {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    source = open_genome(path)
    assert source.index() is None and source.total_bases == sum(LENGTHS)
    assert [r.sequence for r in source.records()] == list(records.values())
    assert {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in tmp_path.iterdir()} == before
