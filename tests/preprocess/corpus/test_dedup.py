import numpy as np

from genemask_preprocess.corpus.dedup import FingerprintSet


def test_fingerprint_set_keeps_only_first_occurrences():
    rng = np.random.default_rng(0)
    pool = rng.integers(0, 2**64 - 1, size=3000, dtype=np.uint64, endpoint=True)
    seen, reference = FingerprintSet(), set()
    for _ in range(60):
        keys = rng.choice(pool, size=int(rng.integers(0, 200)))
        expected = []
        for key in keys.tolist():
            expected.append(key not in reference)
            reference.add(key)
        assert seen.first_seen(keys).tolist() == expected
    assert len(seen) == len(reference)
    assert len(seen._levels) <= 12  # merged into geometrically growing sorted arrays
