"""Tests of genemask_preprocess.motifs.pwm_scoring: k-mer x PWM relative scores against Biopython."""

import itertools

import numpy as np
import pytest

from genemask_preprocess.kmers import codes_of_kmers, kmer_of_code
from genemask_preprocess.motifs import pwm_scoring as ps


def code(kmer: str) -> int:
    return int(codes_of_kmers([kmer], len(kmer))[0])


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


@pytest.mark.parametrize("mode", ps.FRAGMENT_SCORES)
def test_consensus_matches_and_shuffled_does_not(mode):
    motif = make_motif(CREB_SITES)
    matrix = ps.scoring_matrix(motif)
    scores, strands, _ = ps.best_relative_scores(matrix, 7, mode=mode)
    consensus, shuffled = "ATGACGT", "GTAGCTA"  # same letters, shuffled
    assert scores[code(consensus)] == pytest.approx(1.0)
    assert scores[code(shuffled)] < ps.DEFAULT_THRESHOLD
    # ATGACGT is its own reverse complement; an asymmetric motif checks the strands.
    asym = ps.scoring_matrix(make_motif(["TTGACAA"] * 10))
    a_scores, a_strands, _ = ps.best_relative_scores(asym, 7, mode=mode)
    assert a_scores[code("TTGTCAA")] == pytest.approx(1.0)
    assert a_strands[code("TTGTCAA")] == -1
    assert a_strands[code("TTGACAA")] == 1


def test_full_length_scores_equal_biopython():
    motif = make_motif(["ACGT", "ACGA", "TCGA", "AGGT", "ACTT"], pseudocount=0.5)
    matrix = ps.scoring_matrix(motif)
    for mode in ps.FRAGMENT_SCORES:
        scores, _, _ = ps.best_relative_scores(matrix, 4, mode=mode, min_window_ic=0.0)
        oracle = [relative_biopython(motif.pssm, kmer_of_code(c, 4)) for c in range(4**4)]
        np.testing.assert_allclose(scores, oracle, atol=1e-6)


def test_kmer_longer_than_motif_slides_motif_like_biopython():
    motif = make_motif(["GAT", "GAT", "GTT", "CAT"], pseudocount=0.5)
    matrix = ps.scoring_matrix(motif)
    scores, _, offsets = ps.best_relative_scores(matrix, 5, min_window_ic=0.0)
    oracle = [relative_biopython(motif.pssm, kmer_of_code(c, 5)) for c in range(4**5)]
    np.testing.assert_allclose(scores, oracle, atol=1e-6)
    assert offsets[code("CCGAT")] == 2


def test_embedded_score_is_expected_relative_score_over_random_flanks():
    # Oracle: average Biopython's full-length relative score over every flank completion.
    motif = make_motif(["TGACG", "TGACT", "AGACG", "TGCCG", "TTACG"], pseudocount=0.5)
    matrix = ps.scoring_matrix(motif)
    k, length = 3, motif.length
    scores, _, _ = ps.best_relative_scores(matrix, k, mode="embedded")
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
    matrix = ps.scoring_matrix(motif)
    k = 4
    scores, _, _ = ps.best_relative_scores(matrix, k, mode="window", min_window_ic=0.0)
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
    matrix = ps.scoring_matrix(make_motif(sites))
    for mode in ps.FRAGMENT_SCORES:
        scores, _, offsets = ps.best_relative_scores(matrix, 6, mode=mode)
        assert scores[code("GACGTC")] == pytest.approx(1.0)
        assert offsets[code("GACGTC")] == 1
        assert scores[code("CGTAGC")] < ps.DEFAULT_THRESHOLD  # shuffled core
    # A flat window (flank-only) is skipped by the window mode's information filter.
    flat = ps.scoring_matrix(make_motif(["".join(p) for p in itertools.product("ACGT", repeat=3)]))
    scores, _, _ = ps.best_relative_scores(flat, 3, mode="window")
    assert np.isneginf(scores).all()


def test_embedded_is_stricter_than_window_for_partial_fragments():
    matrix = ps.scoring_matrix(make_motif(CREB_SITES))
    embedded, _, _ = ps.best_relative_scores(matrix, 6, mode="embedded")
    window, _, _ = ps.best_relative_scores(matrix, 6, mode="window")
    # Embedded is a mediant of the window score and the flanks' expected score (< 0.85 here),
    # so every embedded match is also a window match, but not the other way round.
    assert np.all(window[embedded >= 0.85] >= 0.85)
    assert (window >= 0.85).sum() > (embedded >= 0.85).sum()
    # A perfect 6-mer window of a fully specified 7-bp motif: 1.0 as a window, below 1 embedded.
    assert window[code("ATGACG")] == pytest.approx(1.0)
    assert embedded[code("ATGACG")] < 0.95


def test_score_kmers_against_motifs_stacks_motifs():
    matrices = [
        ps.scoring_matrix(make_motif(CREB_SITES)),
        ps.scoring_matrix(make_motif(["TTGACAA"] * 4)),
    ]
    result = ps.score_kmers_against_motifs(matrices, 7)
    assert result.scores.shape == (2, 4**7)
    match = result.matches(0.85)
    assert match[0, code("ATGACGT")] and not match[1, code("ATGACGT")]
    assert match[1, code("TTGACAA")] and not match[0, code("TTGACAA")]


def test_kmer_onehot_is_the_codes_bases():
    onehot = ps.kmer_onehot(3)
    assert onehot.shape == (64, 3, 4) and onehot.dtype == np.float64
    assert np.all(onehot.sum(axis=2) == 1)
    for code in (0, 27, 63):
        assert "".join("ACGT"[i] for i in onehot[code].argmax(axis=1)) == kmer_of_code(code, 3)
    with pytest.raises(ValueError):
        ps.kmer_onehot(0)


def test_best_relative_scores_rejects_an_unknown_mode():
    matrix = ps.scoring_matrix(make_motif(CREB_SITES))
    with pytest.raises(ValueError, match="mode must be one of"):
        ps.best_relative_scores(matrix, 4, mode="fuzzy")


def test_is_match_tolerates_rounding_at_the_threshold():
    scores = np.array([0.85, 0.85 - 1e-10, 0.8499, -np.inf])
    assert list(ps.is_match(scores, 0.85)) == [True, True, False, False]
