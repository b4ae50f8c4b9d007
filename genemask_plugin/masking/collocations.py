"""``pmi_span``'s view of an item: its segmentation into collocation units and single tokens.

The collocation vocabulary (:class:`~genemask_preprocess.formats.pmi_table.Collocations`, read by
the task as the ``collocations`` table view: the top token n-grams by PMI for each n = 2..N) is
looked up by one rolling code per length over the item's token ids. The item is then cut **greedily, longest match first, left to right**:
from the first token, take the longest collocation starting there (a single token if none),
continue after it. So a collocation that contains another wins over it, as in Levine et al.'s
procedure (AI21Labs/pmi-masking, README section 2); where two collocations overlap without
nesting, the left one wins where Levine et al. pick one at random. The left-to-right walk is a
chain of jumps ``i -> i + longest[i]``; the positions it visits are found by pointer doubling
(about log2 T array steps), not by a loop over tokens. Special tokens are never part of a
collocation (no collocation holds their ids), so each is a unit of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Units:
    """An item's segmentation: unit i covers positions ``starts[i] .. starts[i] + lengths[i] - 1``."""

    starts: np.ndarray
    lengths: np.ndarray


def longest_collocations(tokens: np.ndarray, collocations) -> np.ndarray:
    """Length (int64, 1 when none) of the longest collocation starting at each position.

    ``collocations``: a ``Collocations`` (``codes[n]``: sorted codes of the n-grams, ``base``, ``max_n``).
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    longest = np.ones(len(tokens), dtype=np.int64)
    codes = tokens
    for n in range(2, collocations.max_n + 1):
        codes = codes[:-1] * collocations.base + tokens[n - 1 :]
        table = collocations.codes[n]
        if not len(codes) or not len(table):
            continue
        found = table[np.minimum(np.searchsorted(table, codes), len(table) - 1)] == codes
        longest[: len(codes)][found] = n  # lengths rise with n: the longest match is written last
    return longest


def segment_collocations(tokens: np.ndarray, collocations) -> Units:
    """Greedy longest-match segmentation of one item, left to right (see module docstring)."""
    longest = longest_collocations(tokens, collocations)
    size = len(longest)
    jump = np.append(np.arange(size) + longest, size)  # jump[size] = size: the walk's end stays put
    visited = np.zeros(size + 1, dtype=bool)
    visited[0] = True
    reach = 1  # visited holds every position within reach - 1 steps of 0
    while reach <= size:
        visited[jump[visited]] = True
        jump = jump[jump]
        reach *= 2
    starts = np.flatnonzero(visited[:size])
    return Units(starts, longest[starts])


class CollocationUnits:
    """The score lookup of ``pmi_span`` (:data:`~genemask_plugin.masking.strategies.ScoreLookup`):
    tokens -> their :class:`Units`.

    Args:
        collocations: the ``collocations`` view of ``--pmi-table``.
        num_specials: the dictionary's special count (unused: specials never match).
        max_length: the longest item (unused).
    """

    table_view = "collocations"

    def __init__(self, collocations, num_specials: int, max_length: int):
        self.collocations = collocations

    @staticmethod
    def view_options(config) -> dict:
        """The vocabulary's settings: ``--pmi-span-max-n``, ``--pmi-span-collocations``."""
        return {"max_n": config.pmi_span_max_n, "size": config.pmi_span_collocations}

    def __call__(self, tokens: np.ndarray) -> Units:
        return segment_collocations(tokens, self.collocations)
