"""Tests of the 80/10/10 replacement of masked tokens."""

import numpy as np
import pytest

from genemask_plugin.masking.replacement import replace_masked_tokens
from genemask_preprocess.kmers import NUM_SPECIALS


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
