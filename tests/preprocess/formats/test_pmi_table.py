from pathlib import Path

import numpy as np
import pytest

from genemask_preprocess.formats.pmi_table import (
    TABLE_COLUMNS,
    PMITableError,
    load_token_scores,
    read_pmi_table,
    write_pmi_table,
)
from genemask_preprocess.kmers import FAIRSEQ_SPECIALS, NUM_SPECIALS, all_kmers
from genemask_preprocess.pmi.ngram_counts import count_ngrams
from genemask_preprocess.pmi.scores import score_pmi

BUNDLED = Path(__file__).resolve().parents[3] / "data" / "pmi" / "human_fragments.pmi.tsv"
HEADER = "\t".join(TABLE_COLUMNS) + "\n"


def _symbols(k, extra=("<mask>",)):
    return list(FAIRSEQ_SPECIALS) + all_kmers(k) + list(extra)


@pytest.fixture(scope="module")
def scores(tmp_path_factory):
    rng = np.random.default_rng(1)
    path = tmp_path_factory.mktemp("table") / "g.fa"
    path.write_text(">g\n" + "".join(rng.choice(list("ACGT"), size=20_000)) + "\n")
    return score_pmi(count_ngrams(path, 4), min_count=5)


def test_write_read_round_trip(tmp_path, scores):
    path = tmp_path / "t.tsv"
    write_pmi_table(scores, path)
    assert path.read_text().splitlines()[0].split("\t") == list(TABLE_COLUMNS)
    back = read_pmi_table(path)
    assert sorted(back) == [2, 3, 4]
    for n, table in back.items():
        s = scores[n]
        order = np.argsort(s.rank)
        assert table["ngram"] == [s.ngrams[i] for i in order]
        assert table["rank"].tolist() == list(range(1, len(s) + 1))
        np.testing.assert_allclose(table["npmi"], s.npmi[order], atol=1e-6)
        np.testing.assert_array_equal(table["count"], s.count[order])
    assert list(read_pmi_table(path, n=3)) == [3]


def test_load_token_scores_aligns_to_dictionary(tmp_path, scores):
    path = tmp_path / "t.tsv"
    write_pmi_table(scores, path)
    symbols = _symbols(3, extra=("<mask>", "madeupword0000"))
    got = load_token_scores(path, symbols)
    assert got.dtype == np.float32 and len(got) == len(symbols)
    assert np.isneginf(got[:NUM_SPECIALS]).all() and np.isneginf(got[-2:]).all()
    s = scores[3]
    for ngram, value in zip(s.ngrams, s.npmi, strict=True):
        assert got[symbols.index(ngram)] == pytest.approx(value, abs=1e-6)
    best = symbols[int(np.argmax(got))]
    assert best == s.ngrams[int(np.argmin(s.rank))]
    by_rank = load_token_scores(path, symbols, column="rank")
    assert symbols[int(np.argmax(by_rank))] == best
    naive = load_token_scores(path, symbols, column="naive_pmi")
    assert naive[symbols.index(s.ngrams[0])] == pytest.approx(s.naive_pmi[0], abs=1e-6)


def test_unscored_kmers_rank_last(tmp_path):
    rows = [f"{g}\t2\t100\t0.5\t{0.1 * i:.3f}\t{0.05 * i:.3f}\t{16 - i}\n" for i, g in enumerate(all_kmers(2)[:10])]
    path = tmp_path / "t.tsv"
    path.write_text(HEADER + "".join(rows))
    got = load_token_scores(path, _symbols(2))
    assert np.isneginf(got[NUM_SPECIALS + 10 : NUM_SPECIALS + 16]).all()
    assert np.isfinite(got[NUM_SPECIALS : NUM_SPECIALS + 10]).all()
    with pytest.raises(PMITableError, match=r"38% of the 16 2-mers have no score \(more than the allowed 30%\)"):
        load_token_scores(path, _symbols(2), max_missing_fraction=0.3)


def test_bundled_table_loads_for_every_k():
    for k in (3, 4, 5, 6):
        got = load_token_scores(BUNDLED, _symbols(k))
        assert np.isfinite(got[NUM_SPECIALS : NUM_SPECIALS + 4**k]).mean() > 0.9


@pytest.mark.parametrize(
    "body,message",
    [
        ("ngram\tn\tcount\n", "missing column 'naive_pmi'"),
        (HEADER + "AC\t2\t5\t0.1\t0.1\t0.1\n", "row 2: expected 7 columns, got 6"),
        (HEADER + "AN\t2\t5\t0.1\t0.1\t0.1\t1\n", "row 2: 'AN' is not an A/C/G/T n-gram"),
        (HEADER + "ACG\t2\t5\t0.1\t0.1\t0.1\t1\n", "row 2: n-gram 'ACG' has length 3, but n is 2"),
        (HEADER + "AC\t2\t5\t0.1\tx\t0.1\t1\n", "row 2: pmi 'x' is not a number"),
        (HEADER + "AC\t2\t5\t0.1\t0.1\t0.1\t1\nAC\t2\t5\t0.1\t0.1\t0.1\t2\n", "duplicate row for 2-mer 'AC'"),
        (HEADER + "ACG\t3\t5\t0.1\t0.1\t0.1\t1\n", r"no rows with n = 2 for this 2-mer dictionary \(the table has n = 3\)"),
    ],
)
def test_malformed_tables(tmp_path, body, message):
    path = tmp_path / "bad.tsv"
    path.write_text(body)
    with pytest.raises(PMITableError, match=message):
        load_token_scores(path, _symbols(2), max_missing_fraction=1.0)


def test_loader_errors(tmp_path):
    with pytest.raises(PMITableError, match="no such PMI table"):
        load_token_scores(tmp_path / "missing.tsv", _symbols(2))
    with pytest.raises(PMITableError, match="not the fixed k-mer vocabulary"):
        load_token_scores(BUNDLED, list(FAIRSEQ_SPECIALS) + ["▁A", "▁C"])
    with pytest.raises(PMITableError, match="unknown PMI table column"):
        load_token_scores(BUNDLED, _symbols(3), column="score")
    (tmp_path / "bin.tsv").write_bytes(b"\x89PNG\r\n\x1a\n\xff")
    with pytest.raises(PMITableError, match="not a text PMI table"):
        load_token_scores(tmp_path / "bin.tsv", _symbols(2))


# ---------------------------------------------------------------- token n-grams and pmi_span's collocations


def _token_table(tmp_path, rows, name="tokens.tsv"):
    """A TABLE of token n-grams: (ngram, n, npmi) rows, ranked within n in the given order."""
    ranks: dict[int, int] = {}
    lines = [HEADER]
    for ngram, n, npmi in rows:
        ranks[n] = ranks.get(n, 0) + 1
        lines.append(f"{ngram}\t{n}\t500\t{npmi}\t{npmi}\t{npmi}\t{ranks[n]}\n")
    path = tmp_path / name
    path.write_text("".join(lines))
    return path


def _stride_symbols(k):
    return list(FAIRSEQ_SPECIALS) + all_kmers(k) + list("ACGT") + ["<mask>"]


def test_token_rows_read_and_write_back(tmp_path):
    path = _token_table(tmp_path, [("AC GT", 2, 0.5), ("A C G", 3, 0.2)])
    table = read_pmi_table(path)
    assert table[2]["ngram"] == ["AC GT"] and table[3]["ngram"] == ["A C G"]
    bad = _token_table(tmp_path, [("AC GT TT", 2, 0.5)], "bad.tsv")
    with pytest.raises(PMITableError, match="n-gram 'AC GT TT' has 3 tokens, but n is 2"):
        read_pmi_table(bad)


def test_collocations_are_the_best_positive_ngrams_of_each_length_in_levines_shares(tmp_path):
    from genemask_preprocess.formats.pmi_table import collocation_shares, load_collocations

    assert collocation_shares(5) == {2: 0.5, 3: 0.25, 4: 0.125, 5: 0.125} and collocation_shares(2) == {2: 1.0}
    symbols = _stride_symbols(2)
    index = {s: i for i, s in enumerate(symbols)}
    bigrams = [(f"{a} {b}", 2, 1.0 - 0.1 * i) for i, (a, b) in enumerate([("AC", "GT"), ("TT", "A"), ("CC", "GG"),
                                                                           ("GA", "C"), ("AA", "AA")])]
    rows = [*bigrams, ("AC GT A", 3, 0.9), ("C C C", 3, -0.5), ("GG GG GG", 3, 0.4)]
    path = _token_table(tmp_path, rows)
    collocations = load_collocations(path, symbols, max_n=3, size=8)  # 4 bigrams, 2 trigrams
    base = len(symbols)

    def code(ngram):
        ids = [index[s] for s in ngram.split(" ")]
        return sum(i * base ** (len(ids) - 1 - j) for j, i in enumerate(ids))

    assert collocations.codes[2].tolist() == sorted(code(g) for g, _, _ in bigrams[:4])
    assert collocations.codes[3].tolist() == sorted([code("AC GT A"), code("GG GG GG")])  # not the negative one
    assert str(collocations) == f"collocations from {path}: 4 2-grams, 2 3-grams" and collocations.base == base
    by_rank = load_collocations(path, symbols, column="rank", max_n=2, size=1)
    assert by_rank.codes[2].tolist() == [code("AC GT")]


def test_collocations_refuse_what_is_not_theirs(tmp_path):
    from genemask_preprocess.formats.pmi_table import load_collocations

    tokens = _token_table(tmp_path, [("AC GT", 2, 0.5)])
    with pytest.raises(PMITableError, match="pmi_span masks collocations of non-overlapping tokens; this dictionary "
                                            "holds overlapping 2-mers"):
        load_collocations(tokens, _symbols(2))
    with pytest.raises(PMITableError, match="its [0-9]+-grams are bases, not tokens"):
        load_collocations(BUNDLED, _stride_symbols(2), max_n=6)
    with pytest.raises(PMITableError, match="token 'AC' of its 2-grams is not in the dictionary"):
        load_collocations(tokens, list(FAIRSEQ_SPECIALS) + list("ACGT") + ["<mask>"])
    negative = _token_table(tmp_path, [("AC GT", 2, -0.5)], "negative.tsv")
    with pytest.raises(PMITableError, match="no n-gram with n = 2..5 and a positive npmi"):
        load_collocations(negative, _stride_symbols(2))


def test_single_nucleotides_take_a_genome_table_of_bases_too(tmp_path):
    """A base n-gram ``ACG`` is the single-nucleotide token n-gram ``A C G``: both spellings give one vocabulary."""
    from genemask_preprocess.formats.pmi_table import load_collocations

    symbols = list(FAIRSEQ_SPECIALS) + list("ACGT") + ["<mask>"]
    table = read_pmi_table(BUNDLED)
    spelled = [(" ".join(ngram), n, npmi) for n in (3, 4) for ngram, npmi in zip(table[n]["ngram"], table[n]["npmi"],
                                                                                  strict=True)]
    from_bases = load_collocations(BUNDLED, symbols, max_n=4, size=1000)
    from_tokens = load_collocations(_token_table(tmp_path, spelled), symbols, max_n=4, size=1000)
    assert all(np.array_equal(from_bases.codes[n], from_tokens.codes[n]) for n in (2, 3, 4))
    for n in (3, 4):  # quotas of 500 and 500: every positive-npmi n-gram, no other
        assert len(from_bases.codes[n]) == np.count_nonzero(table[n]["npmi"] > 0) > 0
    assert len(from_bases.codes[2]) == 0  # the table has no 2-grams


def test_per_token_scores_are_refused_for_tokens_that_do_not_overlap(tmp_path):
    for symbols, what in ((_stride_symbols(6), "non-overlapping 6-mers"),
                          (list(FAIRSEQ_SPECIALS) + list("ACGT"), "single nucleotides")):
        with pytest.raises(PMITableError, match=f"the dictionary holds {what}: .*--mask-strategy pmi_span"):
            load_token_scores(BUNDLED, symbols)
    tokens = _token_table(tmp_path, [("AC GT", 2, 0.5)])
    with pytest.raises(PMITableError, match="its 2-grams are token n-grams .*, not 2-mers"):
        load_token_scores(tokens, _symbols(2), max_missing_fraction=1.0)
