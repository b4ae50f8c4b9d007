"""What the model sees at the masked positions: BERT's 80/10/10 replacement."""

from __future__ import annotations

import numpy as np


def replace_masked_tokens(
    tokens: np.ndarray,
    masked: np.ndarray,
    rng: np.random.Generator,
    mask_idx: int,
    replacement_ids: np.ndarray,
    leave_unmasked_prob: float = 0.1,
    random_token_prob: float = 0.1,
) -> np.ndarray:
    """The model's input: masked positions become ``<mask>``, a random regular token, or stay.

    ``replacement_ids`` lists the regular vocabulary (never specials, never ``<mask>``);
    random tokens are drawn uniformly from it. One draw per masked position decides its
    fate, then one per randomly replaced position picks its token.
    """
    source = tokens.copy()
    positions = np.flatnonzero(masked)
    draw = rng.random(positions.size)
    random_pos = positions[(draw >= leave_unmasked_prob) & (draw < leave_unmasked_prob + random_token_prob)]
    source[positions[draw >= leave_unmasked_prob + random_token_prob]] = mask_idx
    if random_pos.size:
        source[random_pos] = replacement_ids[rng.integers(len(replacement_ids), size=random_pos.size)]
    return source
