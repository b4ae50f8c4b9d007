"""Exact-duplicate removal: the set of fingerprints already written, kept compactly in the main process."""

from __future__ import annotations

import numpy as np


class FingerprintSet:
    """A set of uint64 fingerprints as a few sorted arrays of geometrically growing size (8 bytes each)."""

    def __init__(self):
        self._levels: list[np.ndarray] = []

    def __len__(self) -> int:
        return sum(len(level) for level in self._levels)

    def first_seen(self, keys: np.ndarray) -> np.ndarray:
        """Mask of the keys not seen before (only the first of equal keys in ``keys``); adds them."""
        unique, first = np.unique(keys, return_index=True)
        fresh = np.ones(len(unique), dtype=bool)
        for level in self._levels:
            at = np.searchsorted(level, unique)
            fresh &= level[np.minimum(at, len(level) - 1)] != unique
        keep = np.zeros(len(keys), dtype=bool)
        keep[first[fresh]] = True
        self._insert(unique[fresh])
        return keep

    def _insert(self, sorted_keys: np.ndarray) -> None:
        if not len(sorted_keys):
            return
        self._levels.append(sorted_keys)
        while len(self._levels) > 1 and len(self._levels[-2]) <= 2 * len(self._levels[-1]):
            top = self._levels.pop()
            # Two sorted runs: the stable sort (timsort) merges them in linear time.
            self._levels[-1] = np.sort(np.concatenate([self._levels[-1], top]), kind="stable")
