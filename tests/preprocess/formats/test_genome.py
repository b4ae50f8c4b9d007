import gzip
import os

import numpy as np
import pysam
import pytest

from genemask_preprocess.formats.genome import GenomeInputError, open_genome

FASTA = ">chr1 first record\nACGTACGTNN\nacgtAC\n>chr2\nGGGG\n"


def _records(path):
    source = open_genome(path)
    return source.format, [(r.name, r.sequence) for r in source.records()]


def test_plain_gzip_and_bgzip_fasta_read_the_same(tmp_path):
    plain = tmp_path / "g.fa"
    plain.write_text(FASTA)
    gz = tmp_path / "g.fa.gz"
    with gzip.open(gz, "wt") as handle:
        handle.write(FASTA)
    bgz = tmp_path / "b.fa"
    bgz.write_text(FASTA)
    pysam.tabix_compress(str(bgz), str(bgz) + ".gz")
    expected = ("fasta", [("chr1", "ACGTACGTNNacgtAC"), ("chr2", "GGGG")])
    assert _records(plain) == expected
    assert _records(gz) == expected
    assert _records(str(bgz) + ".gz") == expected


def test_crlf_fasta_reads_like_lf(tmp_path):
    lf = tmp_path / "lf.fa"
    lf.write_bytes(FASTA.encode())
    crlf = tmp_path / "crlf.fa"
    crlf.write_bytes(FASTA.replace("\n", "\r\n").encode())
    assert _records(crlf) == _records(lf)


def test_total_bases_comes_from_the_fai(tmp_path):
    path = tmp_path / "g.fa"
    path.write_text(FASTA)
    assert open_genome(path).total_bases is None
    pysam.faidx(str(path))
    assert open_genome(path).total_bases == 20


def test_tsv_with_kmers_or_raw_dna(tmp_path):
    path = tmp_path / "x.tsv"
    path.write_text("sequence\tlabel\nACGTAC CGTACG GTACGT\t1\nTTTTGGGG\t0\n")
    fmt, records = _records(path)
    assert fmt == "tsv"
    assert records == [("x.tsv:2", "ACGTACGT"), ("x.tsv:3", "TTTTGGGG")]


def test_tsv_with_non_overlapping_kmers_is_an_error(tmp_path):
    path = tmp_path / "x.tsv"
    path.write_text("sequence\tlabel\nACGTAC CGTACG GTACGT\t1\nACG TTT\t0\n")
    with pytest.raises(GenomeInputError, match="row 3"):
        _records(path)


def test_duplicate_record_names_are_an_error(tmp_path):
    path = tmp_path / "d.fa"
    path.write_text(">a\nACGT\n>b\nACGT\n>a\nGGGG\n")
    with pytest.raises(GenomeInputError, match="duplicate record name 'a'"):
        _records(path)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "file is empty"),
        (b"\n  \n", "file is empty"),
        (b"hello world\nthis is not dna\n", "not a FASTA"),
        (bytes(range(256)) * 4, "binary content"),
    ],
)
def test_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.fa"
    path.write_bytes(content)
    with pytest.raises(GenomeInputError, match=message):
        open_genome(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(GenomeInputError, match="no such file"):
        open_genome(tmp_path / "nope.fa")
    with pytest.raises(GenomeInputError, match="is a directory"):
        open_genome(tmp_path)


def test_unreadable_file(tmp_path, monkeypatch):
    path = tmp_path / "g.fa"
    path.write_text(FASTA)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(path) else real_access(p, mode))
    with pytest.raises(GenomeInputError, match="permission denied"):
        open_genome(path)


def test_gzipped_tsv_is_recognised_by_content_not_name(tmp_path):
    path = tmp_path / "rows.tsv"  # gzip content, no .gz suffix
    with gzip.open(path, "wt") as handle:
        handle.write("sequence\tlabel\nACGTACGTAA\t1\n")
    assert _records(path) == ("tsv", [("rows.tsv:2", "ACGTACGTAA")])


def test_truncated_compressed_fasta_is_a_one_line_error(tmp_path):
    source = tmp_path / "big.fa"
    rng = np.random.default_rng(0)
    source.write_text(">a\n" + "".join(rng.choice(list("ACGT"), size=300_000)) + "\n")
    pysam.tabix_compress(str(source), str(source) + ".gz")
    truncated = tmp_path / "cut.fa.gz"
    truncated.write_bytes((tmp_path / "big.fa.gz").read_bytes()[:40_000])
    with pytest.raises(GenomeInputError, match="truncated or corrupt"):
        _records(truncated)


def test_genome_errors_are_input_errors():
    from genemask_preprocess.errors import GeneMaskError, InputError

    assert issubclass(GenomeInputError, InputError) and issubclass(GenomeInputError, GeneMaskError)


def test_tsv_header_must_be_the_first_line(tmp_path):
    path = tmp_path / "late.tsv"
    path.write_text("\nsequence\tlabel\nACGTACGT\t1\n")
    with pytest.raises(GenomeInputError, match="not a FASTA"):
        open_genome(path)
