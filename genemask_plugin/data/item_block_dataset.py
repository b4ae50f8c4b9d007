"""Corpus items (chunks) into blocks as a fairseq dataset: the layout is :mod:`.block_table`'s."""

from __future__ import annotations

import numpy as np
import torch
from fairseq.data import FairseqDataset

from .block_table import block_table


class ItemBlockDataset(FairseqDataset):
    """Blocks of at most ``block_size`` tokens from the items of ``dataset`` (:func:`block_table`).

    Items (a chunk's k-mer ids followed by ``</s>``, as ``genemask-preprocess`` and
    ``fairseq-preprocess`` write them) keep their ``</s>``. ``eos`` (the default) passes each item
    that fits through unchanged, so a block never mixes two chunks; ``complete`` packs whole
    consecutive items, as fairseq's ``masked_lm --sample-break-mode complete``. This replaces
    ``TokenBlockDataset``, whose ``eos`` mode fails on numpy 2.
    """

    def __init__(self, dataset, sizes, block_size: int, eos: int, break_mode: str = "eos"):
        super().__init__()
        self.dataset = dataset
        self.eos = eos
        self.break_mode = break_mode
        table = block_table(sizes, block_size, break_mode)
        self._item, self._start, self._stop, self._closed = table.item, table.start, table.stop, table.closed
        self._first_piece = table.first_piece
        self._sizes = table.sizes
        self.num_split_items = table.num_split_items

    def _piece(self, piece: int) -> torch.Tensor:
        tokens = self.dataset[int(self._item[piece])][self._start[piece] : self._stop[piece]]
        if not self._closed[piece]:
            tokens = torch.cat([tokens, tokens.new([self.eos])])
        return tokens

    def __getitem__(self, index):
        first, last = self._first_piece[index], self._first_piece[index + 1]
        if last - first == 1:
            return self._piece(first)
        return torch.cat([self._piece(p) for p in range(first, last)])

    def __len__(self):
        return len(self._sizes)

    @property
    def sizes(self):
        return self._sizes

    def num_tokens(self, index):
        return int(self._sizes[index])

    def size(self, index):
        return int(self._sizes[index])

    @property
    def supports_prefetch(self):
        return False
