"""Unit tests of the pure masking core on hand-built tokens and PMI arrays."""

from pathlib import Path

import numpy as np
import pysam
import pytest

from genemask_plugin.masking import (
    DNABERT_FIRST_KMER_ID,
    PAPER_CENTRE_PROB,
    MaskingConfig,
    base_span_offsets,
    position_as_token_scores,
    replace_masked_tokens,
    select_mask_spans,
)
from genemask_preprocess.formats.pmi_table import load_token_scores
from genemask_preprocess.kmers import NUM_SPECIALS, all_kmers, encode_bases, kmer_token_ids

REPO = Path(__file__).resolve().parents[2]
YEAST = REPO / "data" / "genomes" / "S288C_chr01_chr06.fa.gz"  # bundled: chromosomes I and VI
MASK = NUM_SPECIALS + 4**6


class FixedCentres:
    """A stand-in generator whose first ``random(n)`` puts the centres where a test wants them."""

    def __init__(self, centres):
        self.centres = list(centres)

    def random(self, n):
        draw = np.ones(n)
        draw[self.centres] = 0.0
        return draw


def spans(centres, n, config, scores=None, maskable=None):
    maskable = np.ones(n, dtype=bool) if maskable is None else maskable
    return select_mask_spans(maskable, FixedCentres(centres), config, scores)


def positions(mask):
    return np.flatnonzero(mask).tolist()


@pytest.mark.parametrize(
    "k, expected",
    [(6, [-2, -1, 0, 1, 2, 3]), (5, [-2, -1, 0, 1, 2]), (4, [-1, 0, 1, 2]), (3, [-1, 0, 1]), (1, [0]), (None, [0])],
)
def test_base_span_offsets_follow_dnabert(k, expected):
    assert base_span_offsets(k).tolist() == expected


def test_paper_defaults():
    assert MaskingConfig().centre_prob == 0.0176
    assert MaskingConfig(strategy="kmer_span").centre_prob == 0.025
    assert MaskingConfig(strategy="random").centre_prob == 0.15
    assert MaskingConfig(centre_prob=0.03).centre_prob == 0.03
    config = MaskingConfig()
    assert (config.wide_half_width, config.high_fraction, config.all_wide_below) == (5, 0.5, 0)
    assert (config.leave_unmasked_prob, config.random_token_prob) == (0.1, 0.1)
    assert set(PAPER_CENTRE_PROB) == {"genemask", "kmer_span", "random", "genemask_position", "global_pmi"}
    assert MaskingConfig(strategy="global_pmi").centre_prob == pytest.approx(0.0136, abs=1e-4)
    assert MaskingConfig(strategy="global_pmi").uses_pmi


@pytest.mark.parametrize(
    "kwargs",
    [
        {"strategy": "pmi"},
        {"centre_prob": 0.0},
        {"centre_prob": 1.5},
        {"wide_half_width": -1},
        {"high_fraction": 1.2},
        {"leave_unmasked_prob": 0.6, "random_token_prob": 0.6},
    ],
)
def test_bad_config_is_rejected(kwargs):
    with pytest.raises(ValueError):
        MaskingConfig(**kwargs)


def test_kmer_span_offsets_truncation_and_union():
    config = MaskingConfig(strategy="kmer_span")
    masked, wide = spans([0, 10, 12, 23], 24, config)
    # 0 -> -2..3 truncated to 0..3; 10 -> 8..13 and 12 -> 10..15 unite; 23 -> 21..26 truncated to 21..23.
    assert positions(masked) == [0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 21, 22, 23]
    assert not wide.any()


def test_specials_are_never_centres_or_masked():
    config = MaskingConfig(strategy="kmer_span")
    maskable = np.ones(12, dtype=bool)
    maskable[[0, 6, 11]] = False  # <s>, an <unk>, </s>
    masked, _ = spans([0, 1, 6, 10], 12, config, maskable=maskable)
    # The centres on <s> and <unk> are dropped; <s> and </s> inside spans stay unmasked.
    assert positions(masked) == [1, 2, 3, 4, 8, 9, 10]


def test_random_strategy_masks_single_tokens():
    masked, _ = spans([3, 4, 9], 12, MaskingConfig(strategy="random"))
    assert positions(masked) == [3, 4, 9]


def test_sentencepiece_base_span_is_one_token():
    config = MaskingConfig(k=None, wide_half_width=1)
    scores = np.zeros(20, dtype=np.float32)
    masked, wide = spans([5, 15], 20, config, scores)
    # One high centre (ceil(2/2)) gets the wide span 4..6; the other masks itself.
    assert positions(masked) == [4, 5, 6, 15]
    assert positions(wide) == [4, 5, 6]


def test_best_pmi_token_inside_base_span_gets_the_wide_span():
    config = MaskingConfig(high_fraction=1.0)
    scores = np.zeros(40, dtype=np.float32)
    scores[13] = 5.0  # inside the base span 8..13 of centre 10
    scores[7] = 9.0  # just outside 10's base span: must not be chosen
    masked, wide = spans([10], 40, config, scores)
    assert positions(wide) == list(range(8, 19))  # 13 +- 5
    assert positions(masked) == list(range(8, 19))


def test_best_pmi_ties_go_to_the_centre_then_the_nearest_left():
    config = MaskingConfig(high_fraction=1.0, wide_half_width=1)
    scores = np.zeros(40, dtype=np.float32)
    scores[[10, 12]] = 3.0
    assert positions(spans([10], 40, config, scores)[1]) == [9, 10, 11]
    scores[:] = 0.0
    scores[[9, 11]] = 3.0
    assert positions(spans([10], 40, config, scores)[1]) == [8, 9, 10]
    scores[:] = -np.inf  # all unscored: the centre
    assert positions(spans([10], 40, config, scores)[1]) == [9, 10, 11]


def test_high_set_is_the_best_half_by_score_not_the_first():
    config = MaskingConfig(wide_half_width=1)
    centres = [10, 50, 90, 130, 170]
    scores = np.zeros(200, dtype=np.float32)
    scores[centres] = [1.0, 2.0, 3.0, 5.0, 4.0]
    _, wide = spans(centres, 200, config, scores)
    # ceil(5 / 2) = 3 best: 130, 170, 90. The first three in order (the old defect) would be 10, 50, 90.
    assert positions(wide) == [89, 90, 91, 129, 130, 131, 169, 170, 171]


def test_all_wide_rule_applies_below_its_threshold_only():
    centres = [10, 50, 90, 130, 170]
    scores = np.zeros(200, dtype=np.float32)
    scores[centres] = [1.0, 2.0, 3.0, 5.0, 4.0]
    _, wide = spans(centres, 200, MaskingConfig(wide_half_width=1, all_wide_below=5), scores)
    assert positions(wide) == [c + d for c in centres for d in (-1, 0, 1)]
    _, wide = spans(centres, 200, MaskingConfig(wide_half_width=1, all_wide_below=3), scores)
    assert len(positions(wide)) == 9


def test_wide_spans_truncate_at_the_ends():
    config = MaskingConfig(high_fraction=1.0)
    scores = np.zeros(30, dtype=np.float32)
    scores[[0, 29]] = 1.0
    masked, wide = spans([1, 28], 30, config, scores)
    assert positions(wide) == list(range(0, 6)) + list(range(24, 30))
    assert positions(masked) == positions(wide)


def test_position_ablation_decodes_positions_as_dnabert_ids():
    token_scores = np.full(MASK + 1, -np.inf, dtype=np.float32)
    token_scores[NUM_SPECIALS:MASK] = np.arange(4**6, dtype=np.float32)
    by_position = position_as_token_scores(token_scores, 512)
    assert np.isneginf(by_position[:DNABERT_FIRST_KMER_ID]).all()
    assert by_position[DNABERT_FIRST_KMER_ID] == token_scores[NUM_SPECIALS]  # position 5 -> AAAAAA
    assert all_kmers(6)[0] == "AAAAAA"
    np.testing.assert_array_equal(by_position[5:], np.arange(507))


def test_position_ablation_ignores_the_sequence_and_genemask_does_not():
    rng = np.random.default_rng(0)
    token_scores = rng.standard_normal(MASK + 1).astype(np.float32)
    token_scores[:NUM_SPECIALS] = token_scores[MASK] = -np.inf
    by_position = position_as_token_scores(token_scores, 512)
    maskable = np.ones(512, dtype=bool)
    maskable[[0, -1]] = False
    seq_a, seq_b = (rng.integers(NUM_SPECIALS, MASK, 512) for _ in range(2))
    same_for_position, same_for_genemask = [], []
    for item in range(20):
        ablation = [
            select_mask_spans(maskable, np.random.default_rng(item), MaskingConfig("genemask_position"), by_position)[0]
            for _ in (seq_a, seq_b)
        ]
        genemask = [
            select_mask_spans(maskable, np.random.default_rng(item), MaskingConfig(), token_scores[seq])[0]
            for seq in (seq_a, seq_b)
        ]
        same_for_position.append(np.array_equal(*ablation))
        same_for_genemask.append(np.array_equal(*genemask))
    assert all(same_for_position)
    assert not all(same_for_genemask)


def _yeast_windows(n_items: int, n_tokens: int, k: int = 6) -> np.ndarray:
    """Real DNA: consecutive windows of chromosome VI of S288C, as k-mer token ids."""
    with pysam.FastaFile(str(YEAST)) as fasta:
        dna = fasta.fetch("chr06", 50_000, 50_000 + n_items * (n_tokens + k - 1))
    assert len(dna) == n_items * (n_tokens + k - 1)
    codes = encode_bases(dna)
    step = n_tokens + k - 1
    return np.stack([kmer_token_ids(codes[i * step : (i + 1) * step], k).astype(np.int64) for i in range(n_items)])


@pytest.mark.parametrize("strategy", ["genemask", "kmer_span", "genemask_position", "random"])
def test_masked_fraction_of_510_token_items_is_about_15_percent(strategy):
    token_scores = load_token_scores(
        REPO / "data" / "pmi" / "human_fragments.pmi.tsv", ["<s>", "<pad>", "</s>", "<unk>", *all_kmers(6), "<mask>"]
    )
    items = _yeast_windows(400, 510)
    config = MaskingConfig(strategy=strategy)
    by_position = position_as_token_scores(token_scores, 512)[1:511]
    maskable = np.ones(510, dtype=bool)
    fractions, wide_shares = [], []
    for index, item in enumerate(items):
        scores = by_position if strategy == "genemask_position" else token_scores[item]
        masked, wide = select_mask_spans(maskable, np.random.default_rng([1, 1, index]), config, scores)
        fractions.append(masked.mean())
        wide_shares.append(wide.sum() / max(masked.sum(), 1))
    assert 0.13 <= np.mean(fractions) <= 0.17, np.mean(fractions)
    if config.uses_pmi:
        assert 0.4 < np.mean(wide_shares) < 0.9
    else:
        assert np.mean(wide_shares) == 0.0


# ---------------------------------------------------------------- global_pmi (CM-GEMS)


def test_global_pmi_spans_sit_on_the_top_scoring_tokens():
    """Three centres drawn anywhere: the spans go around the three best tokens of the whole item."""
    scores = np.zeros(60, dtype=np.float32)
    scores[[7, 30, 52, 45]] = [0.9, 0.7, 0.8, 0.1]
    masked, wide = spans([1, 2, 3], 60, MaskingConfig("global_pmi"), scores)
    assert positions(masked) == [*range(2, 13), *range(25, 36), *range(47, 58)]
    assert np.array_equal(wide, masked)
    # The centres' own positions only set m: one centre masks around the single best token.
    assert positions(spans([59], 60, MaskingConfig("global_pmi"), scores)[0]) == list(range(2, 13))


def test_global_pmi_ties_go_to_the_lower_position_and_spans_truncate():
    scores = np.full(40, 0.5, dtype=np.float32)
    scores[[3, 20, 38]] = 2.0
    config = MaskingConfig("global_pmi", wide_half_width=2)
    assert positions(spans([10, 11], 40, config, scores)[0]) == [1, 2, 3, 4, 5, 18, 19, 20, 21, 22]
    # Four centres, three best tokens: the fourth span goes to the lowest of the tied rest (position 0).
    assert positions(spans([10, 11, 12, 13], 40, config, scores)[0]) == [0, 1, 2, 3, 4, 5, 18, 19, 20, 21, 22, 36, 37, 38, 39]


def test_global_pmi_matches_its_definition_by_stable_sort():
    """The partition-based selection equals 'sort maskable positions by score, ties to the lower, take m'."""
    for seed in range(60):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(20, 600))
        scores = rng.integers(0, 5, n).astype(np.float32)  # many ties
        scores[rng.random(n) < 0.1] = -np.inf
        maskable = rng.random(n) < 0.9
        config = MaskingConfig("global_pmi", wide_half_width=int(rng.integers(0, 4)), centre_prob=float(rng.uniform(0.01, 0.5)))
        masked, _ = select_mask_spans(maskable, np.random.default_rng(seed), config, scores)
        m = int(((np.random.default_rng(seed).random(n) < config.centre_prob) & maskable).sum())
        candidates = np.flatnonzero(maskable)
        expected = np.zeros(n, dtype=bool)
        for top in candidates[np.argsort(-scores[candidates], kind="stable")[:m]]:
            expected[max(0, top - config.wide_half_width) : top + config.wide_half_width + 1] = True
        assert np.array_equal(masked, expected & maskable), seed


def test_global_pmi_never_picks_or_masks_specials():
    scores = np.arange(30, dtype=np.float32)[::-1].copy()  # position 0 scores best
    maskable = np.ones(30, dtype=bool)
    maskable[[0, 1, 29]] = False
    masked, _ = spans([5, 6], 30, MaskingConfig("global_pmi", wide_half_width=1), scores, maskable)
    assert positions(masked) == [2, 3, 4]  # the best maskable tokens are 2 and 3
    with pytest.raises(ValueError, match="one score per position"):
        spans([5], 30, MaskingConfig("global_pmi"), None)


def test_global_pmi_masked_fraction_of_510_token_items_is_10_to_18_percent():
    token_scores = load_token_scores(
        REPO / "data" / "pmi" / "human_fragments.pmi.tsv", ["<s>", "<pad>", "</s>", "<unk>", *all_kmers(6), "<mask>"]
    )
    items = _yeast_windows(400, 510)
    maskable = np.ones(510, dtype=bool)
    config = MaskingConfig("global_pmi")
    fractions = [
        select_mask_spans(maskable, np.random.default_rng([1, 1, index]), config, token_scores[item])[0].mean()
        for index, item in enumerate(items)
    ]
    assert 0.10 <= np.mean(fractions) <= 0.18, np.mean(fractions)
    # The spans follow the sequence: two different items get different masks from the same generator seed.
    a, b = (select_mask_spans(maskable, np.random.default_rng(0), config, token_scores[item])[0] for item in items[:2])
    assert not np.array_equal(a, b)


def test_replacement_proportions_and_only_regular_tokens():
    rng = np.random.default_rng(0)
    n = 200_000
    tokens = np.full(n, 7, dtype=np.int64)
    masked = rng.random(n) < 0.5
    replacement_ids = np.arange(NUM_SPECIALS, 10)
    source = replace_masked_tokens(tokens, masked, rng, 10, replacement_ids, 0.1, 0.1)
    assert np.array_equal(source[~masked], tokens[~masked])
    m = source[masked]
    n_masked = masked.sum()
    as_mask = np.mean(m == 10)
    unchanged = np.mean(m == 7)
    # Random tokens equal the original 1 time in 6 here: expected unchanged = 0.1 + 0.1 / 6.
    sd = np.sqrt(0.25 / n_masked)
    assert abs(as_mask - 0.8) < 5 * sd
    assert abs(unchanged - (0.1 + 0.1 / 6)) < 5 * sd
    drawn = m[(m != 10)]
    assert set(np.unique(drawn)) == set(replacement_ids.tolist())  # uniform over regular ids only
    counts = np.bincount(m[(m != 10) & (m != 7)], minlength=10)[NUM_SPECIALS:]
    counts = np.delete(counts, 7 - NUM_SPECIALS)
    assert counts.min() > 0.8 * counts.mean()


@pytest.mark.parametrize("leave, rand, expected", [(0.0, 0.0, (1.0, 0.0)), (1.0, 0.0, (0.0, 1.0))])
def test_replacement_extremes(leave, rand, expected):
    rng = np.random.default_rng(1)
    tokens = np.arange(NUM_SPECIALS, 1004)
    masked = np.ones(1000, dtype=bool)
    source = replace_masked_tokens(tokens, masked, rng, 5000, np.arange(NUM_SPECIALS, 4100), leave, rand)
    assert (np.mean(source == 5000), np.mean(source == tokens)) == expected
