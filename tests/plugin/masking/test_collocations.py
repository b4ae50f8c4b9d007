"""pmi_span's segmentation: greedy longest match, left to right, equal to a plain loop on random items."""

import numpy as np
import pytest

from genemask_plugin.masking.collocations import (
    CollocationUnits,
    longest_collocations,
    segment_collocations,
)
from genemask_preprocess.formats.pmi_table import Collocations

BASE = 12  # ids 0..3 specials, 4..11 regular tokens


def collocations(*ngrams, max_n=4):
    codes = {n: [] for n in range(2, max_n + 1)}
    for ngram in ngrams:
        codes[len(ngram)].append(sum(t * BASE ** (len(ngram) - 1 - j) for j, t in enumerate(ngram)))
    return Collocations({n: np.unique(np.array(c, dtype=np.int64)) for n, c in codes.items()}, BASE, "test")


def greedy_reference(tokens, ngrams):
    """The rule in plain Python: at each position the longest collocation starting there, else one token."""
    vocabulary = {tuple(g) for g in ngrams}
    units, i = [], 0
    while i < len(tokens):
        length = max([n for n in range(2, 5) if i + n <= len(tokens) and tuple(tokens[i : i + n]) in vocabulary],
                     default=1)
        units.append((i, length))
        i += length
    return units


def test_the_longest_collocation_at_a_position_wins_and_the_walk_continues_after_it():
    vocab = collocations((5, 6), (5, 6, 7), (6, 7, 8, 9), (7, 8))
    tokens = np.array([0, 5, 6, 7, 8, 9, 4, 6, 7, 8, 9, 2])
    assert longest_collocations(tokens, vocab).tolist() == [1, 3, 4, 2, 1, 1, 1, 4, 2, 1, 1, 1]
    units = segment_collocations(tokens, vocab)
    # <s> | 5 6 7 (contains 5 6) | 8 | 9 | 4 | 6 7 8 9 | </s>: the left match 5 6 7 beats the overlapping 6 7 8 9
    assert list(zip(units.starts.tolist(), units.lengths.tolist(), strict=True)) == [
        (0, 1), (1, 3), (4, 1), (5, 1), (6, 1), (7, 4), (11, 1)]


def test_specials_are_units_of_their_own_and_never_inside_a_collocation():
    vocab = collocations((5, 2), (2, 5), (5, 5))  # codes with a special's id cannot come from a table; even so
    tokens = np.array([0, 5, 5, 2, 5, 5, 2])
    units = segment_collocations(tokens, vocab)
    assert sum(units.lengths.tolist()) == len(tokens) and units.starts[0] == 0
    assert np.array_equal(CollocationUnits(vocab, 4, 7)(tokens).starts, units.starts)


@pytest.mark.parametrize("seed", range(6))
def test_segmentation_equals_the_plain_greedy_loop_on_random_items(seed):
    rng = np.random.default_rng(seed)
    ngrams = {tuple(rng.integers(4, 8, n).tolist()) for n in rng.integers(2, 5, 25)}
    vocab = collocations(*ngrams)
    for length in (1, 2, 3, 17, 64, 513):
        tokens = rng.integers(4, 8, length)
        units = segment_collocations(tokens, vocab)
        assert list(zip(units.starts.tolist(), units.lengths.tolist(), strict=True)) == greedy_reference(
            tokens.tolist(), ngrams)
    assert len(segment_collocations(np.zeros(0, dtype=np.int64), vocab).starts) == 0


def test_view_options_carry_the_vocabulary_settings():
    from genemask_plugin.masking.config import MaskingConfig

    config = MaskingConfig("pmi_span", pmi_span_max_n=3, pmi_span_collocations=7)
    assert CollocationUnits.view_options(config) == {"max_n": 3, "size": 7}
    assert CollocationUnits.table_view == "collocations"
