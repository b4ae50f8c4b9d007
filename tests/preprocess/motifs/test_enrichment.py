"""Tests of genemask_preprocess.motifs.enrichment: the k-mer table, the sets and the statistics."""

import numpy as np
import pytest
from scipy.stats import fisher_exact

from genemask_preprocess.errors import InputError
from genemask_preprocess.kmers import codes_of_kmers
from genemask_preprocess.motifs import MotifAnalysisError
from genemask_preprocess.motifs import enrichment as en
from genemask_preprocess.motifs import pwm_scoring as ps


def test_read_kmer_table_keeps_n_equal_k_sorted_by_npmi(toy_table):
    path, expected = toy_table
    table = en.read_kmer_table(path, 3)
    assert table.kmers == expected
    assert table.counts[0] == 1000 and np.all(np.diff(table.npmi) < 0)


def test_read_kmer_table_no_rows_for_k(toy_table):
    path, _ = toy_table
    with pytest.raises(MotifAnalysisError, match=r"no rows with n = 6 \(the table has n = 3, 4\)"):
        en.read_kmer_table(path, 6)


def test_read_kmer_table_malformed(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("kmer\tscore\nAAA\t1\n")
    with pytest.raises(InputError, match="not a PMI table"):
        en.read_kmer_table(path, 3)
    with pytest.raises(InputError, match="no such"):
        en.read_kmer_table(tmp_path / "missing.tsv", 3)


def test_read_kmer_table_breaks_npmi_ties_by_kmer_and_rejects_duplicates(tmp_path, pmi_table_file):
    path = pmi_table_file(
        tmp_path / "ties.tsv", [("TTT", 5, 0.5), ("AAA", 9, 0.5), ("CCC", 7, 0.7)]
    )
    table = en.read_kmer_table(path, 3)
    assert table.kmers == ["CCC", "AAA", "TTT"]
    assert list(table.counts) == [7, 9, 5] and list(table.codes) == [21, 0, 63]
    dup = pmi_table_file(tmp_path / "dup.tsv", [("ACG", 5, 0.5), ("ACG", 9, 0.4), ("CCC", 7, 0.7)])
    with pytest.raises(MotifAnalysisError, match="duplicate 3-mers"):
        en.read_kmer_table(dup, 3)


@pytest.mark.parametrize("k", [0, 8, 2.5])
def test_read_kmer_table_unsupported_k_is_an_input_error(toy_table, k):
    with pytest.raises(MotifAnalysisError, match="k must be an integer from 1 to 7"):
        en.read_kmer_table(toy_table[0], k)


def test_frequency_matched_sample_nearest_without_replacement():
    targets, candidates = np.array([10, 100, 1000]), np.array([9, 5000, 95, 1100, 50])
    assert list(en.frequency_matched_sample(targets, candidates, seed=0, neighbours=1)) == [0, 2, 3]
    # Two targets, one exact candidate: the second takes the next nearest, never the same one.
    chosen = en.frequency_matched_sample(
        np.array([10, 10]), np.array([1000, 10, 12]), 3, neighbours=1
    )
    assert sorted(chosen) == [1, 2]
    with pytest.raises(MotifAnalysisError):
        en.frequency_matched_sample(np.array([1, 2]), np.array([1]), seed=0)


def test_frequency_matched_sample_draws_among_nearest_neighbours():
    candidates = np.arange(1, 1001) * 10
    targets = np.array([5000])
    draws = [
        int(en.frequency_matched_sample(targets, candidates, seed, neighbours=4)[0])
        for seed in range(40)
    ]
    assert set(draws) <= {498, 499, 500, 501}  # counts 4990..5020, the 4 nearest to 5000
    assert len(set(draws)) > 1  # repeated draws differ
    again = [
        int(en.frequency_matched_sample(targets, candidates, seed, neighbours=4)[0])
        for seed in range(40)
    ]
    assert draws == again  # same seed, same draw
    chosen = en.frequency_matched_sample(np.full(50, 5000), candidates, seed=1)
    assert len(set(chosen)) == 50  # without replacement


def test_count_strata_are_equal_size_log_count_bins():
    counts = np.repeat([10, 100, 1000, 10000], 25)
    assert list(np.bincount(en.count_stratum_of_rows(counts, bins=4))) == [25, 25, 25, 25]
    strata = en.count_stratum_of_rows(np.arange(1, 101), bins=10)
    assert np.all(np.diff(strata) >= 0) and strata[0] == 0 and strata[-1] == 9


def test_count_stratified_permutations_keep_the_top_sets_count_profile():
    rng = np.random.default_rng(0)
    counts = rng.integers(101, 5000, size=64)
    table = en.KmerTable(3, np.arange(64), counts, np.linspace(1, 0, 64))
    null = en.count_stratified_permutations(table, 8, draws=50, seed=0, bins=8)
    strata = en.count_stratum_of_rows(table.counts, bins=8)
    assert null.shape == (50, 8)
    expected = np.bincount(strata[:8], minlength=8)
    for row in null:
        assert len(set(row)) == 8
        assert list(np.bincount(strata[row], minlength=8)) == list(expected)
    assert len({tuple(sorted(row)) for row in null}) > 40  # draws differ
    assert (null >= 8).any() and (null < 8).any()  # top rows are part of the permuted pool
    again = en.count_stratified_permutations(table, 8, draws=50, seed=0, bins=8)
    np.testing.assert_array_equal(null, again)
    # When npmi order is count order, the top set is its own strata: nothing to permute.
    by_count = en.KmerTable(3, np.arange(64), np.sort(counts)[::-1], np.linspace(1, 0, 64))
    degenerate = en.count_stratified_permutations(by_count, 8, draws=5, seed=0, bins=8)
    assert all(sorted(row) == list(range(8)) for row in degenerate)


def test_empirical_pvalue():
    comparison = en.NullComparison(0.5, np.array([0.1, 0.2, 0.5, 0.6]))
    assert comparison.pvalue == pytest.approx(1.0)  # 2 * min(3/5, 4/5) capped at 1
    assert en.NullComparison(0.9, np.full(19, 0.1)).pvalue == pytest.approx(2 * 1 / 20)
    assert en.NullComparison(0.0, np.full(19, 0.1)).pvalue == pytest.approx(2 * 1 / 20)


def fake_scores(table, matching_kmers, k=3):
    """MotifScores with motif 0 matching exactly ``matching_kmers`` (score 0.9) and motif 1 nothing."""
    matrices = [
        ps.ScoringMatrix(
            f"M{i}", f"TF{i}", np.zeros((k, 4)), np.zeros((k, 4)), np.ones(k), np.full(4, 0.25)
        )
        for i in range(2)
    ]
    scores = np.full((2, 4**k), 0.5, dtype=np.float32)
    scores[0, codes_of_kmers(list(matching_kmers), k)] = 0.9
    zeros = np.zeros((2, 4**k), dtype=np.int8)
    return ps.MotifScores(k, "embedded", matrices, scores, zeros + 1, zeros.astype(np.int16))


def test_analyse_enrichment_statistics_on_a_fixed_toy_table(toy_table):
    path, ordered = toy_table
    table = en.read_kmer_table(path, 3)
    top_n = 8
    # 6 of the top 8 match, 1 of the bottom 8, and 2 of every other 8 in between.
    matching = ordered[:6] + ordered[-1:] + [ordered[i] for i in range(8, 56) if i % 4 == 0]
    scores = fake_scores(table, matching)
    result = en.analyse_enrichment(table, scores, top_n, threshold=0.85, seed=0, null_draws=30)

    assert list(result.groups["top"]) == list(range(8))
    assert list(result.groups["bottom"]) == list(range(56, 64))
    random = result.groups["random"]
    assert len(random) == 8 and not set(random) & set(range(8))
    # count-matched: the top counts are 1000..930; each pick is among the 10 nearest free ones.
    assert random.max() < 8 + 8 + en.MATCH_NEIGHBOURS

    fractions = result.sweep[0.85]["fractions"]
    assert fractions["top"] == 6 / 8 and fractions["bottom"] == 1 / 8
    matched = np.isin(np.array(table.kmers), matching)
    n_random = int(matched[random].sum())
    assert fractions["random"] == n_random / 8
    vs_bottom = result.tests["top vs bottom"]
    assert vs_bottom.table == ((6, 2), (1, 7))
    expected = fisher_exact([[6, 2], [1, 7]])
    assert vs_bottom.pvalue == pytest.approx(expected.pvalue)
    assert vs_bottom.odds_ratio == pytest.approx(6 * 7 / (2 * 1))
    assert vs_bottom.ci_low < vs_bottom.odds_ratio < vs_bottom.ci_high
    vs_random = result.tests["top vs random"]
    assert vs_random.table == ((6, 2), (n_random, 8 - n_random))
    assert vs_random.pvalue == pytest.approx(
        fisher_exact([[6, 2], [n_random, 8 - n_random]]).pvalue
    )
    # The null: 30 further count-matched sets, each scored like the top set.
    assert result.null_sets.shape == (30, 8)
    np.testing.assert_allclose(result.null_match.null, matched[result.null_sets].mean(axis=1))
    assert result.null_match.observed == 6 / 8
    # Above every score, nothing matches; deciles are the match fraction per tenth of the ranking.
    assert result.sweep[0.95]["fractions"] == {"top": 0.0, "bottom": 0.0, "random": 0.0}
    expected_deciles = [part.mean() for part in np.array_split(matched, 10)]
    np.testing.assert_allclose(result.deciles[0.85], expected_deciles)
    assert result.deciles[0.85][0] == pytest.approx(6 / 7)
    # Motif 0 is the only one matched by top k-mers: 6 of them, background 15/64.
    assert [(h.matrix_id, h.top_matches) for h in result.top_motifs] == [("M0", 6)]
    assert result.top_motifs[0].background_fraction == pytest.approx(len(matching) / 64)


def test_select_groups_rejects_too_large_n(toy_table):
    table = en.read_kmer_table(toy_table[0], 3)
    with pytest.raises(MotifAnalysisError, match="too large"):
        en.select_groups(table, 33)
