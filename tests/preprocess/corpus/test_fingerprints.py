import numpy as np

from genemask_preprocess.corpus.fingerprints import valid_split_mask


def test_valid_split_is_seeded_and_close_to_the_fraction():
    keys = np.random.default_rng(0).integers(0, 2**63, size=50_000, dtype=np.uint64)
    mask = valid_split_mask(keys, 1, 0.1)
    assert abs(mask.mean() - 0.1) < 0.01
    assert np.array_equal(mask, valid_split_mask(keys, 1, 0.1))
    assert not np.array_equal(mask, valid_split_mask(keys, 2, 0.1))
    assert not valid_split_mask(keys, 1, 0.0).any()
