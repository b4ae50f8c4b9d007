"""Tests of preprocess.motif_enrichment: k-mer/PWM matching, the statistics, the readers."""

import itertools
import sys

import numpy as np
import pytest
from scipy.stats import fisher_exact, mannwhitneyu

from preprocess import motif_enrichment as me
from preprocess.kmers import code_of_kmer, kmer_of_code


def _biopython():
    """Bio.motifs and Bio.Seq.Seq, or skip: the PWM tests need the [motifs] extra (CI installs it)."""
    motifs = pytest.importorskip("Bio.motifs", reason="the [motifs] extra (biopython) is needed")
    from Bio.Seq import Seq

    return motifs, Seq


def Seq(text):  # noqa: N802 - stands for Bio.Seq.Seq
    return _biopython()[1](text)


def make_motif(sites, pseudocount=0.25):
    motifs, _ = _biopython()
    motif = motifs.create([Seq(site) for site in sites])
    motif.pseudocounts = pseudocount
    return motif


def relative_biopython(pssm, kmer):
    """Oracle: best relative score of a sequence at least as long as the PSSM, both strands, by Biopython."""
    rc = pssm.reverse_complement()
    best = max(np.max(pssm.calculate(Seq(kmer))), np.max(rc.calculate(Seq(kmer))))
    return (best - pssm.min) / (pssm.max - pssm.min)


CREB_SITES = ["ATGACGT"] * 8 + ["ATGACGA", "TTGACGT"]


@pytest.mark.parametrize("mode", me.FRAGMENT_SCORES)
def test_consensus_matches_and_shuffled_does_not(mode):
    motif = make_motif(CREB_SITES)
    matrix = me.scoring_matrix(motif)
    scores, strands, _ = me.best_relative_scores(matrix, 7, mode=mode)
    consensus, shuffled = "ATGACGT", "GTAGCTA"  # same letters, shuffled
    assert scores[code_of_kmer(consensus)] == pytest.approx(1.0)
    assert scores[code_of_kmer(shuffled)] < me.DEFAULT_THRESHOLD
    # ATGACGT is its own reverse complement; an asymmetric motif checks the strands.
    asym = me.scoring_matrix(make_motif(["TTGACAA"] * 10))
    a_scores, a_strands, _ = me.best_relative_scores(asym, 7, mode=mode)
    assert a_scores[code_of_kmer("TTGTCAA")] == pytest.approx(1.0)
    assert a_strands[code_of_kmer("TTGTCAA")] == -1
    assert a_strands[code_of_kmer("TTGACAA")] == 1


def test_full_length_scores_equal_biopython():
    motif = make_motif(["ACGT", "ACGA", "TCGA", "AGGT", "ACTT"], pseudocount=0.5)
    matrix = me.scoring_matrix(motif)
    for mode in me.FRAGMENT_SCORES:
        scores, _, _ = me.best_relative_scores(matrix, 4, mode=mode, min_window_ic=0.0)
        oracle = [relative_biopython(motif.pssm, kmer_of_code(c, 4)) for c in range(4**4)]
        np.testing.assert_allclose(scores, oracle, atol=1e-6)


def test_kmer_longer_than_motif_slides_motif_like_biopython():
    motif = make_motif(["GAT", "GAT", "GTT", "CAT"], pseudocount=0.5)
    matrix = me.scoring_matrix(motif)
    scores, _, offsets = me.best_relative_scores(matrix, 5, min_window_ic=0.0)
    oracle = [relative_biopython(motif.pssm, kmer_of_code(c, 5)) for c in range(4**5)]
    np.testing.assert_allclose(scores, oracle, atol=1e-6)
    assert offsets[code_of_kmer("CCGAT")] == 2


def test_embedded_score_is_expected_relative_score_over_random_flanks():
    # Oracle: average Biopython's full-length relative score over every flank completion.
    motif = make_motif(["TGACG", "TGACT", "AGACG", "TGCCG", "TTACG"], pseudocount=0.5)
    matrix = me.scoring_matrix(motif)
    k, length = 3, motif.length
    scores, _, _ = me.best_relative_scores(matrix, k, mode="embedded")
    pssm, rc = motif.pssm, motif.pssm.reverse_complement()
    span = pssm.max - pssm.min
    for code in range(4**k):
        kmer = kmer_of_code(code, k)
        best = -np.inf
        for strand in (pssm, rc):
            for start in range(length - k + 1):
                sites = [
                    "".join(left) + kmer + "".join(right)
                    for left in itertools.product("ACGT", repeat=start)
                    for right in itertools.product("ACGT", repeat=length - k - start)
                ]
                mean = np.mean([strand.calculate(Seq(site)) for site in sites])
                best = max(best, (mean - pssm.min) / span)
        assert scores[code] == pytest.approx(best, abs=1e-6), kmer


def test_window_score_is_relative_to_each_window_like_a_sliced_biopython_motif():
    motif = make_motif(["TGACGTCA", "TGACGTAA", "TTACGTCA", "TGACGGCA"], pseudocount=0.5)
    matrix = me.scoring_matrix(motif)
    k = 4
    scores, _, _ = me.best_relative_scores(matrix, k, mode="window", min_window_ic=0.0)
    windows = [motif[j : j + k] for j in range(motif.length - k + 1)]
    for code in range(0, 4**k, 7):
        kmer = kmer_of_code(code, k)
        oracle = max(relative_biopython(w.pssm, kmer) for w in windows)
        assert scores[code] == pytest.approx(oracle, abs=1e-6), kmer


def test_fragment_of_a_longer_motif():
    # Informative core GACGTC between uninformative flanks: its consensus 6-mer is a full match
    # in both modes; the window mode also scores the core's own sub-windows.
    sites = [
        "".join(p) + "GACGTC" + "".join(q)
        for p in itertools.product("ACGT", repeat=1)
        for q in itertools.product("ACGT", repeat=1)
    ]
    matrix = me.scoring_matrix(make_motif(sites))
    for mode in me.FRAGMENT_SCORES:
        scores, _, offsets = me.best_relative_scores(matrix, 6, mode=mode)
        assert scores[code_of_kmer("GACGTC")] == pytest.approx(1.0)
        assert offsets[code_of_kmer("GACGTC")] == 1
        assert scores[code_of_kmer("CGTAGC")] < me.DEFAULT_THRESHOLD  # shuffled core
    # A flat window (flank-only) is skipped by the window mode's information filter.
    flat = me.scoring_matrix(make_motif(["".join(p) for p in itertools.product("ACGT", repeat=3)]))
    scores, _, _ = me.best_relative_scores(flat, 3, mode="window")
    assert np.isneginf(scores).all()


def test_embedded_is_stricter_than_window_for_partial_fragments():
    matrix = me.scoring_matrix(make_motif(CREB_SITES))
    embedded, _, _ = me.best_relative_scores(matrix, 6, mode="embedded")
    window, _, _ = me.best_relative_scores(matrix, 6, mode="window")
    # Embedded is a mediant of the window score and the flanks' expected score (< 0.85 here),
    # so every embedded match is also a window match, but not the other way round.
    assert np.all(window[embedded >= 0.85] >= 0.85)
    assert (window >= 0.85).sum() > (embedded >= 0.85).sum()
    # A perfect 6-mer window of a fully specified 7-bp motif: 1.0 as a window, below 1 embedded.
    assert window[code_of_kmer("ATGACG")] == pytest.approx(1.0)
    assert embedded[code_of_kmer("ATGACG")] < 0.95


def test_score_kmers_against_motifs_stacks_motifs():
    matrices = [
        me.scoring_matrix(make_motif(CREB_SITES)),
        me.scoring_matrix(make_motif(["TTGACAA"] * 4)),
    ]
    result = me.score_kmers_against_motifs(matrices, 7)
    assert result.scores.shape == (2, 4**7)
    match = result.matches(0.85)
    assert match[0, code_of_kmer("ATGACGT")] and not match[1, code_of_kmer("ATGACGT")]
    assert match[1, code_of_kmer("TTGACAA")] and not match[0, code_of_kmer("TTGACAA")]


# --------------------------------------------------------------------------- tables and statistics


def write_table(path, rows):
    path.write_text(
        "ngram\tn\tcount\tnaive_pmi\tpmi\tnpmi\trank\n"
        + "".join(
            f"{g}\t{len(g)}\t{c}\t0.1\t0.1\t{s}\t{r}\n" for r, (g, c, s) in enumerate(rows, start=1)
        )
    )
    return path


@pytest.fixture
def toy_table(tmp_path):
    """All 64 3-mers with a fixed, known order by npmi and counts from 1000 down."""
    kmers = [kmer_of_code(c, 3) for c in range(64)]
    rng = np.random.default_rng(7)
    order = rng.permutation(64)
    rows = [(kmers[j], 1000 - 10 * i, 0.9 - 0.01 * i) for i, j in enumerate(order)]
    rows.append(
        (
            "ACGT",
            5,
            0.99,
        )
    )  # n=4 row: ignored for k=3
    return write_table(tmp_path / "toy.tsv", rows), [kmers[j] for j in order]


def test_read_kmer_table_keeps_n_equal_k_sorted_by_npmi(toy_table):
    path, expected = toy_table
    table = me.read_kmer_table(path, 3)
    assert table.kmers == expected
    assert table.counts[0] == 1000 and np.all(np.diff(table.npmi) < 0)


def test_read_kmer_table_no_rows_for_k(toy_table):
    path, _ = toy_table
    with pytest.raises(
        me.MotifAnalysisError, match=r"no rows with n = 6 \(the table has n = 3, 4\)"
    ):
        me.read_kmer_table(path, 6)


def test_read_kmer_table_malformed(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("kmer\tscore\nAAA\t1\n")
    with pytest.raises(me.MotifAnalysisError, match="not a PMI table"):
        me.read_kmer_table(path, 3)


def test_frequency_matched_sample_nearest_without_replacement():
    targets, candidates = np.array([10, 100, 1000]), np.array([9, 5000, 95, 1100, 50])
    assert list(me.frequency_matched_sample(targets, candidates, seed=0, neighbours=1)) == [0, 2, 3]
    # Two targets, one exact candidate: the second takes the next nearest, never the same one.
    chosen = me.frequency_matched_sample(
        np.array([10, 10]), np.array([1000, 10, 12]), 3, neighbours=1
    )
    assert sorted(chosen) == [1, 2]
    with pytest.raises(me.MotifAnalysisError):
        me.frequency_matched_sample(np.array([1, 2]), np.array([1]), seed=0)


def test_frequency_matched_sample_draws_among_nearest_neighbours():
    candidates = np.arange(1, 1001) * 10
    targets = np.array([5000])
    draws = [
        int(me.frequency_matched_sample(targets, candidates, seed, neighbours=4)[0])
        for seed in range(40)
    ]
    assert set(draws) <= {498, 499, 500, 501}  # counts 4990..5020, the 4 nearest to 5000
    assert len(set(draws)) > 1  # repeated draws differ
    again = [
        int(me.frequency_matched_sample(targets, candidates, seed, neighbours=4)[0])
        for seed in range(40)
    ]
    assert draws == again  # same seed, same draw
    chosen = me.frequency_matched_sample(np.full(50, 5000), candidates, seed=1)
    assert len(set(chosen)) == 50  # without replacement


def test_count_strata_are_equal_size_log_count_bins():
    counts = np.repeat([10, 100, 1000, 10000], 25)
    assert list(np.bincount(me.count_stratum_of_rows(counts, bins=4))) == [25, 25, 25, 25]
    strata = me.count_stratum_of_rows(np.arange(1, 101), bins=10)
    assert np.all(np.diff(strata) >= 0) and strata[0] == 0 and strata[-1] == 9


def test_count_stratified_permutations_keep_the_top_sets_count_profile():
    rng = np.random.default_rng(0)
    counts = rng.integers(101, 5000, size=64)
    table = me.KmerTable(3, np.arange(64), counts, np.linspace(1, 0, 64))
    null = me.count_stratified_permutations(table, 8, draws=50, seed=0, bins=8)
    strata = me.count_stratum_of_rows(table.counts, bins=8)
    assert null.shape == (50, 8)
    expected = np.bincount(strata[:8], minlength=8)
    for row in null:
        assert len(set(row)) == 8
        assert list(np.bincount(strata[row], minlength=8)) == list(expected)
    assert len({tuple(sorted(row)) for row in null}) > 40  # draws differ
    assert (null >= 8).any() and (null < 8).any()  # top rows are part of the permuted pool
    again = me.count_stratified_permutations(table, 8, draws=50, seed=0, bins=8)
    np.testing.assert_array_equal(null, again)
    # When npmi order is count order, the top set is its own strata: nothing to permute.
    by_count = me.KmerTable(3, np.arange(64), np.sort(counts)[::-1], np.linspace(1, 0, 64))
    degenerate = me.count_stratified_permutations(by_count, 8, draws=5, seed=0, bins=8)
    assert all(sorted(row) == list(range(8)) for row in degenerate)


def test_empirical_pvalue():
    comparison = me.NullComparison(0.5, np.array([0.1, 0.2, 0.5, 0.6]))
    assert comparison.pvalue == pytest.approx(1.0)  # 2 * min(3/5, 4/5) capped at 1
    assert me.NullComparison(0.9, np.full(19, 0.1)).pvalue == pytest.approx(2 * 1 / 20)
    assert me.NullComparison(0.0, np.full(19, 0.1)).pvalue == pytest.approx(2 * 1 / 20)


def fake_scores(table, matching_kmers, k=3):
    """MotifScores with motif 0 matching exactly ``matching_kmers`` (score 0.9) and motif 1 nothing."""
    matrices = [
        me.ScoringMatrix(
            f"M{i}", f"TF{i}", np.zeros((k, 4)), np.zeros((k, 4)), np.ones(k), np.full(4, 0.25)
        )
        for i in range(2)
    ]
    scores = np.full((2, 4**k), 0.5, dtype=np.float32)
    scores[0, [code_of_kmer(x) for x in matching_kmers]] = 0.9
    zeros = np.zeros((2, 4**k), dtype=np.int8)
    return me.MotifScores(k, "embedded", matrices, scores, zeros + 1, zeros.astype(np.int16))


def test_analyse_enrichment_statistics_on_a_fixed_toy_table(toy_table):
    path, ordered = toy_table
    table = me.read_kmer_table(path, 3)
    top_n = 8
    # 6 of the top 8 match, 1 of the bottom 8, and 2 of every other 8 in between.
    matching = ordered[:6] + ordered[-1:] + [ordered[i] for i in range(8, 56) if i % 4 == 0]
    scores = fake_scores(table, matching)
    result = me.analyse_enrichment(table, scores, top_n, threshold=0.85, seed=0, null_draws=30)

    assert list(result.groups["top"]) == list(range(8))
    assert list(result.groups["bottom"]) == list(range(56, 64))
    random = result.groups["random"]
    assert len(random) == 8 and not set(random) & set(range(8))
    # count-matched: the top counts are 1000..930; each pick is among the 10 nearest free ones.
    assert random.max() < 8 + 8 + me.MATCH_NEIGHBOURS

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
    table = me.read_kmer_table(toy_table[0], 3)
    with pytest.raises(me.MotifAnalysisError, match="too large"):
        me.select_groups(table, 33)


# --------------------------------------------------------------------------- sequences and packages


def test_read_fewshot_sequences_quoted_kmers_raw_dna_and_labels(tmp_path):
    path = tmp_path / "few.tsv"
    path.write_text('"sequence"\t"label"\n"ACGTAC CGTACG GTACGT"\t"1"\nacgtnnacgt\t0\n')
    assert me.read_fewshot_sequences(path) == ["ACGTACGT", "ACGTNNACGT"]
    assert me.read_fewshot_sequences(path, "1") == ["ACGTACGT"]
    with pytest.raises(me.MotifAnalysisError, match="no sequences with label '2'"):
        me.read_fewshot_sequences(path, "2")


def test_compare_sequence_sets_density_and_tests(toy_table):
    table = me.read_kmer_table(toy_table[0], 3)
    groups = {"top": np.arange(2), "bottom": np.arange(62, 64)}
    a, b = table.kmers[0], table.kmers[1]
    positives = [a + "GGGG", a + b, "TTTT" + "NN" + a]
    background = ["CCCCCC", "ATATAT", b + "TTTTT"]
    member = np.isin(np.array(table.kmers), [a, b])
    member_codes = np.zeros(64, bool)
    member_codes[table.codes[member]] = True
    comparisons, null = me.compare_sequence_sets(positives, background, table, groups)
    assert null is None
    null_sets = np.array([[0, 1], [2, 3]])  # the first is the top set itself
    _, null = me.compare_sequence_sets(positives, background, table, groups, null_sets)
    result = {r.group: r for r in comparisons}
    pos = me.kmer_set_density(positives, 3, member_codes)
    neg = me.kmer_set_density(background, 3, member_codes)
    # Non-ACGT letters split the sequence: TTTT|NN|a gives 2 + 1 k-mers.
    assert pos[2] == pytest.approx(1 / 3)
    assert result["top"].positive_density == pytest.approx(pos.mean())
    assert result["top"].background_density == pytest.approx(neg.mean())
    assert result["top"].mannwhitney_pvalue == pytest.approx(mannwhitneyu(pos, neg).pvalue)
    assert result["top"].presence.table[0][0] == int((pos > 0).sum())
    assert null.observed == pytest.approx(pos.mean() / neg.mean())
    assert null.null[0] == pytest.approx(null.observed) and len(null.null) == 2


def test_missing_pyjaspar_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyjaspar", None)  # makes `import pyjaspar` fail
    with pytest.raises(me.MotifAnalysisError) as err:
        me.load_jaspar_motifs()
    message = str(err.value)
    assert "pyjaspar" in message and "pip install 'genemask-plugin[motifs]'" in message
    assert "\n" not in message


def test_jaspar_core_vertebrates_load_offline():
    pytest.importorskip("pyjaspar", reason="the [motifs] extra is needed")
    with pytest.raises(me.MotifAnalysisError, match="not bundled"):
        me.load_jaspar_motifs("JASPAR1999")
    release, found = me.load_jaspar_motifs()
    assert release.startswith("JASPAR") and len(found) > 500
    assert all(m.collection == "CORE" and "vertebrates" in m.tax_group for m in found[:20])
    matrix = me.scoring_matrix(found[0])
    assert np.isfinite(matrix.forward).all()  # pseudocounts keep the log-odds finite
