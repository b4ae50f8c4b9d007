"""One block per corpus item (chunk), splitting only items longer than a block."""

from __future__ import annotations

import numpy as np
import torch
from fairseq.data import FairseqDataset


class ItemBlockDataset(FairseqDataset):
    """Blocks of at most ``block_size`` tokens, one per item, each ending with ``</s>``.

    Items (a chunk's k-mer ids followed by ``</s>``, as ``genemask-preprocess`` and
    ``fairseq-preprocess`` write them) that fit are passed through unchanged, so a
    block never mixes two chunks. A longer item is split into consecutive blocks, each
    closed with ``</s>``. This replaces ``TokenBlockDataset --sample-break-mode eos``,
    which fails on numpy 2. The block table is built vectorised from ``sizes``.
    """

    def __init__(self, dataset, sizes, block_size: int, eos: int):
        super().__init__()
        if block_size < 2:
            raise ValueError(f"block size must be >= 2 (a token and </s>), got {block_size}")
        self.dataset = dataset
        self.eos = eos
        sizes = np.asarray(sizes, dtype=np.int64)
        content = np.maximum(sizes - 1, 0)  # tokens before the item's own </s>
        per_block = block_size - 1
        n_blocks = np.maximum(1, -(-content // per_block))
        self._item = np.repeat(np.arange(len(sizes), dtype=np.int64), n_blocks)
        block_in_item = np.arange(len(self._item), dtype=np.int64) - np.repeat(
            np.cumsum(n_blocks) - n_blocks, n_blocks
        )
        self._last = block_in_item == n_blocks[self._item] - 1
        self._start = block_in_item * per_block
        # The last block keeps the item's own </s>; the others get one appended.
        self._stop = np.where(self._last, sizes[self._item], self._start + per_block)
        self._sizes = self._stop - self._start + (~self._last)
        self.num_split_items = int(np.count_nonzero(n_blocks > 1))

    def __getitem__(self, index):
        tokens = self.dataset[int(self._item[index])][self._start[index] : self._stop[index]]
        if not self._last[index]:
            tokens = torch.cat([tokens, tokens.new([self.eos])])
        return tokens

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
