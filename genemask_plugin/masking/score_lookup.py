"""How a strategy's PMI scores reach its selector: the ``scores`` argument for one item.

A strategy's entry names one of these classes (:attr:`MaskStrategy.score_lookup
<genemask_plugin.masking.strategies.MaskStrategy.score_lookup>`). The masking dataset builds it
once, from the PMI table the task loaded, the dictionary's special count and the longest
item, and then calls it on each item's tokens. What it returns is passed through untouched to
the strategy's selector, so a strategy that needs a different view of the table (a score per
token n-gram, say) brings its own lookup and selector and nothing in between changes.
They are plain classes, not closures, so the dataset pickles into data-loader workers.

A lookup also says what it reads from ``--pmi-table``: ``table_view`` names the reader in
:data:`genemask_preprocess.formats.pmi_table.PMI_TABLE_VIEWS` (here ``token_scores``, one score
per token; ``pmi_span``'s ``collocations``, :mod:`~genemask_plugin.masking.collocations`), and
``view_options(config)`` gives that reader its settings. The task reads the table through them,
so this package stays numpy-only.
"""

from __future__ import annotations

import numpy as np

DNABERT_FIRST_KMER_ID = 5
"""Vocabulary id of the first k-mer (AAAAAA) in DNABERT's vocabulary, after its 5 specials.

The reference implementation decodes position p as DNABERT vocabulary id p, so
position 5 scores as AAAAAA, position 6 as AAAAAC, and so on.
"""


class ScoresByToken:
    """Each position scores as its token: ``token_scores[tokens]``.

    Args:
        token_scores: float32 (V,), the PMI score of every dictionary symbol (``-inf`` = unscored).
        num_specials: the dictionary's special count (unused here).
        max_length: the longest item (unused here).
    """

    table_view = "token_scores"
    """One score per symbol, from the TABLE's n == k rows (an overlapping k-mer dictionary)."""

    def __init__(self, token_scores: np.ndarray, num_specials: int, max_length: int):
        self.token_scores = token_scores

    @staticmethod
    def view_options(config) -> dict:
        return {}

    def __call__(self, tokens: np.ndarray) -> np.ndarray:
        return self.token_scores[tokens]


class ScoresByPosition:
    """The reference implementation's defect: each position scores as its *position* decoded as a token.

    The scores are a fixed function of the position, blind to the sequence
    (:func:`position_as_token_scores`), so they are computed once, up to ``max_length``.
    """

    def __init__(self, token_scores: np.ndarray, num_specials: int, max_length: int):
        self.position_scores = position_as_token_scores(token_scores, max_length, num_specials)

    table_view = ScoresByToken.table_view
    view_options = staticmethod(ScoresByToken.view_options)

    def __call__(self, tokens: np.ndarray) -> np.ndarray:
        return self.position_scores[: len(tokens)]


def position_as_token_scores(token_scores: np.ndarray, length: int, num_specials: int = 4) -> np.ndarray:
    """Scores by item position, as the reference implementation's lookup defect produces them.

    Position ``p`` (0 = ``<s>``) is decoded as DNABERT vocabulary id ``p``, i.e. as
    our token id ``p - DNABERT_FIRST_KMER_ID + num_specials``. Positions that decode
    to a DNABERT special or past the vocabulary score ``-inf``.
    """
    ids = np.arange(length, dtype=np.int64) - DNABERT_FIRST_KMER_ID + num_specials
    valid = (ids >= num_specials) & (ids < len(token_scores))
    out = np.full(length, -np.inf, dtype=np.float32)
    out[valid] = token_scores[ids[valid]]
    return out
