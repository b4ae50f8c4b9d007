"""Unit tests of the selection cores on hand-built tokens and PMI arrays."""

from pathlib import Path

import numpy as np
import pysam
import pytest

from genemask_plugin.masking.config import MaskingConfig
from genemask_plugin.masking.score_lookup import position_as_token_scores
from genemask_plugin.masking.spans import (
    MaskSelection,
    base_span_offsets,
    centre_first_offsets,
    select_global_pmi_spans,
    select_kmer_spans,
    select_local_pmi_spans,
    select_random_tokens,
    select_variable_spans,
)
from genemask_plugin.masking.strategies import select_mask_spans
from genemask_preprocess.formats.pmi_table import load_token_scores
from genemask_preprocess.kmers import NUM_SPECIALS, all_kmers, encode_bases, kmer_codes

REPO = Path(__file__).resolve().parents[3]
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
    """``(masked, wide)`` of ``config``'s strategy with centres at ``centres``."""
    maskable = np.ones(n, dtype=bool) if maskable is None else maskable
    selection = select_mask_spans(maskable, FixedCentres(centres), config, scores)
    assert isinstance(selection, MaskSelection) and selection.centres == int(maskable[centres].sum())
    return selection.masked, selection.wide


def positions(mask):
    return np.flatnonzero(mask).tolist()


@pytest.mark.parametrize(
    "k, expected",
    [(6, [-2, -1, 0, 1, 2, 3]), (5, [-2, -1, 0, 1, 2]), (4, [-1, 0, 1, 2]), (3, [-1, 0, 1]), (1, [0]), (None, [0])],
)
def test_base_span_offsets_follow_dnabert(k, expected):
    assert base_span_offsets(k).tolist() == expected


def test_centre_first_offsets_break_ties_by_distance_then_left():
    assert centre_first_offsets(6).tolist() == [0, -1, 1, -2, 2, 3]
    assert centre_first_offsets(None).tolist() == [0]


SELECTORS = [select_kmer_spans, select_random_tokens, select_local_pmi_spans, select_global_pmi_spans,
             select_variable_spans]


@pytest.mark.parametrize("select", SELECTORS)
def test_every_selector_draws_only_the_centres_from_the_generator(select):
    """The replacement draws that follow start at the same place whatever the strategy (the golden masks rely on it)."""
    n = 300
    maskable = np.ones(n, dtype=bool)
    maskable[[0, -1]] = False
    scores = np.random.default_rng(9).standard_normal(n).astype(np.float32)
    for centre_prob in (0.05, 1e-9):  # some centres, and none
        rng, reference = np.random.default_rng(4), np.random.default_rng(4)
        selection = select(maskable, rng, MaskingConfig(centre_prob=centre_prob), scores)
        expected_centres = int(((reference.random(n) < centre_prob) & maskable).sum())
        assert selection.centres == expected_centres
        assert rng.random() == reference.random()
        assert selection.masked.dtype == selection.wide.dtype == bool
        assert not (selection.wide & ~selection.masked).any() and not selection.masked[[0, -1]].any()
    assert expected_centres == 0 and not selection.masked.any()


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
    config = MaskingConfig(k=None, wide_half_width=1, all_wide_below=0)
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
    config = MaskingConfig(wide_half_width=1, all_wide_below=0)
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


@pytest.mark.parametrize(("m", "wide_spans"), [(1, 1), (2, 2), (8, 8), (9, 5), (10, 5), (12, 6)])
def test_by_default_items_with_2_to_8_centres_widen_every_centre(m, wide_spans):
    """The authors' rule (segment_cnt = ceil(m/2) < 5: all), on by default: from 9 centres the best half."""
    centres = list(range(10, 10 + 40 * m, 40))
    scores = np.zeros(50 * m, dtype=np.float32)
    scores[centres] = np.arange(m, dtype=np.float32)
    _, wide = spans(centres, 50 * m, MaskingConfig(wide_half_width=1), scores)
    assert len(positions(wide)) == 3 * wide_spans
    assert positions(wide)[-3:] == [centres[-1] - 1, centres[-1], centres[-1] + 1]  # the best is always wide


def test_wide_spans_truncate_at_the_ends():
    config = MaskingConfig(high_fraction=1.0)
    scores = np.zeros(30, dtype=np.float32)
    scores[[0, 29]] = 1.0
    masked, wide = spans([1, 28], 30, config, scores)
    assert positions(wide) == list(range(0, 6)) + list(range(24, 30))
    assert positions(masked) == positions(wide)


def _yeast_windows(n_items: int, n_tokens: int, k: int = 6) -> np.ndarray:
    """Real DNA: consecutive windows of chromosome VI of S288C, as k-mer token ids."""
    with pysam.FastaFile(str(YEAST)) as fasta:
        dna = fasta.fetch("chr06", 50_000, 50_000 + n_items * (n_tokens + k - 1))
    assert len(dna) == n_items * (n_tokens + k - 1)
    codes = encode_bases(dna)
    step = n_tokens + k - 1
    return np.stack([kmer_codes(codes[i * step : (i + 1) * step], k) + NUM_SPECIALS for i in range(n_items)])


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
        selection = select_mask_spans(maskable, np.random.default_rng([1, 1, index]), config, scores)
        masked, wide = selection.masked, selection.wide
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
        masked = select_mask_spans(maskable, np.random.default_rng(seed), config, scores).masked
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
        select_mask_spans(maskable, np.random.default_rng([1, 1, index]), config, token_scores[item]).masked.mean()
        for index, item in enumerate(items)
    ]
    assert 0.10 <= np.mean(fractions) <= 0.18, np.mean(fractions)
    # The spans follow the sequence: two different items get different masks from the same generator seed.
    a, b = (select_mask_spans(maskable, np.random.default_rng(0), config, token_scores[item]).masked for item in items[:2])
    assert not np.array_equal(a, b)


# ---------------------------------------------------------------- variable_span (one RandomMask stage)


class GivenDraws:
    """A stand-in generator whose first ``random(n)`` is the given draws."""

    def __init__(self, draws):
        self.draws = np.asarray(draws, dtype=float)

    def random(self, n):
        assert n == len(self.draws)
        return self.draws.copy()


def test_variable_span_with_the_base_boundary_is_kmer_span():
    n = 400
    maskable = np.ones(n, dtype=bool)
    maskable[[0, 200, -1]] = False
    for seed in range(20):
        a, b = np.random.default_rng(seed), np.random.default_rng(seed)
        plain = select_kmer_spans(maskable, a, MaskingConfig("kmer_span"))
        stage = select_variable_spans(maskable, b, MaskingConfig("variable_span", centre_prob=0.025, mask_boundary=6))
        assert np.array_equal(plain.masked, stage.masked) and plain.centres == stage.centres
        assert a.random() == b.random()  # and the replacement draws that follow are the same


def test_variable_span_length_comes_from_the_centres_own_draw():
    config = MaskingConfig("variable_span", centre_prob=0.1, mask_boundary=12)  # lengths 6..12: 7 choices
    n = 100
    draws = np.ones(n)
    # A centre's draw below p, divided by p, picks its length: [0, 1/7) -> 6, ..., [6/7, 1) -> 12.
    draws[[10, 40, 70]] = [0.0, 0.1 * 3.5 / 7, 0.1 * 6.99 / 7]
    selection = select_variable_spans(np.ones(n, dtype=bool), GivenDraws(draws), config)
    # Lengths 6, 9, 12 around centres 10, 40, 70: offsets -2..3, -4..4, -5..6.
    assert positions(selection.masked) == [*range(8, 14), *range(36, 45), *range(65, 77)]
    assert selection.centres == 3 and not selection.wide.any()
    # Truncated at the ends and never on a special.
    maskable = np.ones(n, dtype=bool)
    maskable[[0, 99]] = False
    draws = np.ones(n)
    draws[[1, 97]] = 0.1 * 6.99 / 7
    edge = select_variable_spans(maskable, GivenDraws(draws), config)
    assert positions(edge.masked) == [*range(1, 8), *range(92, 99)]


def test_variable_span_lengths_are_uniform_and_contain_the_k_span():
    n, centre_prob = 200_000, 0.002  # sparse centres: most spans stand alone
    maskable = np.ones(n, dtype=bool)
    config = MaskingConfig("variable_span", centre_prob=centre_prob, mask_boundary=12)
    selection = select_variable_spans(maskable, np.random.default_rng(0), config)
    kspans = select_kmer_spans(maskable, np.random.default_rng(0), MaskingConfig("kmer_span", centre_prob=centre_prob))
    assert not (kspans.masked & ~selection.masked).any()  # every span holds its centre's k-span
    starts = np.flatnonzero(np.diff(np.concatenate([[0], selection.masked.astype(int)])) == 1)
    ends = np.flatnonzero(np.diff(np.concatenate([selection.masked.astype(int), [0]])) == -1)
    lengths = (ends - starts + 1)[ends - starts + 1 <= 12]  # the isolated spans
    counts = np.bincount(lengths, minlength=13)[6:]
    assert counts.sum() > 300 and (counts > 0).all() and counts[:7].min() > 0.6 * counts.mean()
    assert np.bincount(lengths, minlength=13)[:6].sum() == 0
# ---------------------------------------------------------------- pmi_span: whole units up to the budget


def _units(lengths):
    from genemask_plugin.masking.collocations import Units

    lengths = np.asarray(lengths, dtype=np.int64)
    return Units(np.cumsum(lengths) - lengths, lengths)


def test_pmi_units_mask_whole_units_only_and_exactly_the_budget():
    from genemask_plugin.masking.spans import select_pmi_units

    rng = np.random.default_rng(0)
    config = MaskingConfig("pmi_span", centre_prob=0.15)
    rates, wide_share = [], []
    for seed in range(300):
        lengths = [1, *rng.integers(1, 6, 120).tolist(), 1]  # <s>, units of 1..5 tokens, </s>
        units = _units(lengths)
        maskable = np.ones(sum(lengths), dtype=bool)
        maskable[[0, -1]] = False
        selection = select_pmi_units(maskable, np.random.default_rng([seed, 1, 2]), config, units)
        per_unit = np.add.reduceat(selection.masked.astype(int), units.starts)
        assert set(per_unit.tolist()) <= {0} | set(lengths) and np.all((per_unit == 0) | (per_unit == units.lengths))
        assert not selection.masked[[0, -1]].any()
        regular = int(maskable.sum())
        assert int(selection.masked.sum()) in (int(0.15 * regular), int(0.15 * regular) + 1)  # the budget, exactly
        assert np.array_equal(selection.wide, selection.masked & np.repeat(units.lengths >= 2, units.lengths))
        assert selection.centres == int((per_unit > 0).sum())
        rates.append(selection.masked.sum() / regular)
        wide_share.append(selection.wide.sum() / max(selection.masked.sum(), 1))
    assert abs(np.mean(rates) - 0.15) < 0.02 and 0.5 < np.mean(wide_share) < 1.0


def test_a_unit_that_overshoots_is_skipped_and_later_units_that_fit_are_taken():
    """BERT's whole-word rule: with a budget of 3, a 5-token unit drawn first is passed over."""
    from genemask_plugin.masking.spans import select_pmi_units

    units = _units([5, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1])  # 21 tokens
    config = MaskingConfig("pmi_span", centre_prob=3 / 21)
    for seed in range(40):
        selection = select_pmi_units(np.ones(21, dtype=bool), np.random.default_rng(seed), config, units)
        assert selection.masked.sum() == 3 and not selection.masked[:5].any() and not selection.wide.any()


def test_pmi_units_are_a_pure_function_of_the_generator():
    from genemask_plugin.masking.spans import select_pmi_units

    units = _units([1, 3, 2, 1, 4, 1, 1, 2, 1])
    config = MaskingConfig("pmi_span", centre_prob=0.4)
    maskable = np.ones(16, dtype=bool)
    masks = [select_pmi_units(maskable, np.random.default_rng([7, e, 3]), config, units).masked for e in (1, 1, 2, 3)]
    assert np.array_equal(masks[0], masks[1]) and not all(np.array_equal(masks[0], m) for m in masks[2:])
