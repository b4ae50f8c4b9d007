"""Initialising a RoBERTa's learned position embeddings to a scaled sinusoid (``--position-init sinusoidal``).

With 512-token samples and randomly initialised *learned* positions, a small model must learn from
scratch which positions neighbour each other before it can read a masked k-mer off its neighbours;
the CPU-scale models never got there (docs/genemask_mlm.md, *Position initialisation*). Starting
the table from the Transformer's sin/cos encoding, scaled down, gives them that from the first
update; the table is then trained as usual, and the model stays a plain RoBERTa.
"""

from __future__ import annotations

import math

import torch
from fairseq.modules import LearnedPositionalEmbedding

POSITION_INIT_RANDOM = "random"
POSITION_INIT_SINUSOIDAL = "sinusoidal"
DEFAULT_POSITION_INIT_SCALE = 0.3
"""The pilot runs (docs/genemask_mlm.md): 0.3 broke through where 0.1, 1.0 and 0.03 did not."""


def sinusoid_table(num_positions: int, dim: int) -> torch.Tensor:
    """The Transformer's encoding (Vaswani et al. 2017, §3.5), float32 ``(num_positions, dim)``:
    ``sin(t / 10000^(2i/dim))`` in column 2i and ``cos`` of the same in column 2i + 1."""
    position = torch.arange(num_positions, dtype=torch.float64)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float64) * (-math.log(10000.0) / dim))
    table = torch.zeros(num_positions, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)[:, : dim // 2]
    return table.float()


def init_positions_sinusoidal(model, scale: float = DEFAULT_POSITION_INIT_SCALE) -> None:
    """Overwrite the learned position table of fairseq RoBERTa ``model`` with ``scale`` x :func:`sinusoid_table`.

    fairseq numbers positions from ``padding_idx + 1`` (the sample's first token, ``<s>``, is row
    ``padding_idx + 1``), so sample position t gets row ``padding_idx + 1 + t``; the rows up to
    ``padding_idx`` (never looked up for a token) stay as fairseq left them. No random numbers
    are drawn: every other weight is what the seed alone gives.
    """
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"the position initialisation scale must be > 0, got {scale}")
    positions = getattr(getattr(getattr(model, "encoder", None), "sentence_encoder", None), "embed_positions", None)
    if not isinstance(positions, LearnedPositionalEmbedding):
        raise ValueError("--position-init sinusoidal needs a RoBERTa with learned position embeddings")
    first = positions.padding_idx + 1
    rows, dim = positions.weight.shape
    with torch.no_grad():
        table = sinusoid_table(rows - first, dim).to(positions.weight)
        positions.weight[first:] = scale * table
