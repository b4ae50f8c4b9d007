"""Tests of genemask_preprocess.motifs.sequence_sets: the few-shot reader and the positives-vs-background tests."""

import gzip

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from genemask_preprocess.errors import InputError
from genemask_preprocess.motifs import MotifAnalysisError
from genemask_preprocess.motifs import enrichment as en
from genemask_preprocess.motifs import sequence_sets as ss


def test_read_fewshot_sequences_quoted_kmers_raw_dna_and_labels(tmp_path):
    path = tmp_path / "few.tsv"
    path.write_text('"sequence"\t"label"\n"ACGTAC CGTACG GTACGT"\t"1"\nacgtnnacgt\t0\n')
    assert ss.read_fewshot_sequences(path) == ["ACGTACGT", "ACGTNNACGT"]
    assert ss.read_fewshot_sequences(path, "1") == ["ACGTACGT"]
    with pytest.raises(MotifAnalysisError, match="no sequences with label '2'"):
        ss.read_fewshot_sequences(path, "2")


def test_compare_sequence_sets_density_and_tests(toy_table):
    table = en.read_kmer_table(toy_table[0], 3)
    groups = {"top": np.arange(2), "bottom": np.arange(62, 64)}
    a, b = table.kmers[0], table.kmers[1]
    positives = [a + "GGGG", a + b, "TTTT" + "NN" + a]
    background = ["CCCCCC", "ATATAT", b + "TTTTT"]
    member = np.isin(np.array(table.kmers), [a, b])
    member_codes = np.zeros(64, bool)
    member_codes[table.codes[member]] = True
    comparisons, null = ss.compare_sequence_sets(positives, background, table, groups)
    assert null is None
    null_sets = np.array([[0, 1], [2, 3]])  # the first is the top set itself
    _, null = ss.compare_sequence_sets(positives, background, table, groups, null_sets)
    result = {r.group: r for r in comparisons}
    pos = ss.SequenceKmers(positives, 3).density(member_codes)
    neg = ss.SequenceKmers(background, 3).density(member_codes)
    # Non-ACGT letters split the sequence: TTTT|NN|a gives 2 + 1 k-mers.
    assert pos[2] == pytest.approx(1 / 3)
    assert result["top"].positive_density == pytest.approx(pos.mean())
    assert result["top"].background_density == pytest.approx(neg.mean())
    assert result["top"].mannwhitney_pvalue == pytest.approx(mannwhitneyu(pos, neg).pvalue)
    assert result["top"].presence.table[0][0] == int((pos > 0).sum())
    assert null.observed == pytest.approx(pos.mean() / neg.mean())
    assert null.null[0] == pytest.approx(null.observed) and len(null.null) == 2


def test_read_fewshot_sequences_errors_name_file_and_line(tmp_path):
    ragged = tmp_path / "ragged.tsv"
    ragged.write_text("sequence\tlabel\nACGTAC CGTACG\t1\nACGTAC GGGGGG\t0\n")
    with pytest.raises(
        MotifAnalysisError, match=r"ragged.tsv line 3: k-mer 2 'GGGGGG' does not overlap"
    ):
        ss.read_fewshot_sequences(ragged)
    no_header = tmp_path / "no_header.tsv"
    no_header.write_text("ACGT\t1\n")
    with pytest.raises(InputError, match="expected a header"):
        ss.read_fewshot_sequences(no_header)
    with pytest.raises(InputError, match="no such file"):
        ss.read_fewshot_sequences(tmp_path / "missing.tsv")


def test_read_fewshot_sequences_reads_gzip(tmp_path):
    path = tmp_path / "few.tsv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("sequence\tlabel\nACGTAC CGTACG\t1\n")
    assert ss.read_fewshot_sequences(path) == ["ACGTACG"]


def test_sequence_kmer_codes_split_at_other_letters():
    codes = ss.sequence_kmer_codes("ACGTNACGTA", 3)
    assert list(codes) == [6, 27, 6, 27, 44]  # ACG CGT | ACG CGT GTA
    assert len(ss.sequence_kmer_codes("ACNNGT", 3)) == 0
    with pytest.raises(MotifAnalysisError, match="no sequence of at least k=3"):
        ss.SequenceKmers(["AC", "NNNN"], 3)
