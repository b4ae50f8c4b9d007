"""Tests of the score lookups: by token, and the reference implementation's lookup by position."""

import pickle

import numpy as np

from genemask_plugin.masking.config import MaskingConfig
from genemask_plugin.masking.score_lookup import (
    DNABERT_FIRST_KMER_ID,
    ScoresByPosition,
    ScoresByToken,
    position_as_token_scores,
)
from genemask_plugin.masking.strategies import select_mask_spans
from genemask_preprocess.kmers import NUM_SPECIALS, all_kmers

MASK = NUM_SPECIALS + 4**6


def test_position_ablation_decodes_positions_as_dnabert_ids():
    token_scores = np.full(MASK + 1, -np.inf, dtype=np.float32)
    token_scores[NUM_SPECIALS:MASK] = np.arange(4**6, dtype=np.float32)
    by_position = position_as_token_scores(token_scores, 512)
    assert np.isneginf(by_position[:DNABERT_FIRST_KMER_ID]).all()
    assert by_position[DNABERT_FIRST_KMER_ID] == token_scores[NUM_SPECIALS]  # position 5 -> AAAAAA
    assert all_kmers(6)[0] == "AAAAAA"
    np.testing.assert_array_equal(by_position[5:], np.arange(507))


def test_lookups_give_one_score_per_position():
    token_scores = np.random.default_rng(1).standard_normal(MASK + 1).astype(np.float32)
    tokens = np.array([0, 17, 4, 4099, 2])
    np.testing.assert_array_equal(ScoresByToken(token_scores, NUM_SPECIALS, 512)(tokens), token_scores[tokens])
    by_position = ScoresByPosition(token_scores, NUM_SPECIALS, 512)
    np.testing.assert_array_equal(by_position(tokens), position_as_token_scores(token_scores, 5))
    # Plain objects, so a dataset holding them pickles into data-loader workers.
    assert np.array_equal(pickle.loads(pickle.dumps(by_position))(tokens), by_position(tokens))


def test_position_ablation_ignores_the_sequence_and_genemask_does_not():
    rng = np.random.default_rng(0)
    token_scores = rng.standard_normal(MASK + 1).astype(np.float32)
    token_scores[:NUM_SPECIALS] = token_scores[MASK] = -np.inf
    by_position, by_token = ScoresByPosition(token_scores, NUM_SPECIALS, 512), ScoresByToken(token_scores, NUM_SPECIALS, 512)
    maskable = np.ones(512, dtype=bool)
    maskable[[0, -1]] = False
    seq_a, seq_b = (rng.integers(NUM_SPECIALS, MASK, 512) for _ in range(2))
    same_for_position, same_for_genemask = [], []
    for item in range(20):
        ablation = [
            select_mask_spans(maskable, np.random.default_rng(item), MaskingConfig("genemask_position"), by_position(seq)).masked
            for seq in (seq_a, seq_b)
        ]
        genemask = [
            select_mask_spans(maskable, np.random.default_rng(item), MaskingConfig(), by_token(seq)).masked
            for seq in (seq_a, seq_b)
        ]
        same_for_position.append(np.array_equal(*ablation))
        same_for_genemask.append(np.array_equal(*genemask))
    assert all(same_for_position)
    assert not all(same_for_genemask)
