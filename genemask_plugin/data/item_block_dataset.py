"""Corpus items (chunks) into blocks: one item per block, or whole consecutive items packed together.

The block table is a pure numpy function of the items' sizes (:func:`block_table`), built
vectorised, so a genome-scale index (10^7 items) is laid out in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from fairseq.data import FairseqDataset

BREAK_MODES = ("eos", "complete")
"""``--sample-break-mode``: ``eos``, one item per block; ``complete``, whole consecutive items per block."""


@dataclass(frozen=True)
class BlockTable:
    """Blocks as runs of *pieces*: an item that fits a block is one piece, a longer one is cut into several.

    Piece ``p`` is tokens ``start[p]:stop[p]`` of item ``item[p]``, then ``</s>`` appended unless
    ``closed[p]`` (it ends with the item's own ``</s>``). Block ``b`` is pieces
    ``first_piece[b]:first_piece[b + 1]``, concatenated; ``sizes[b]`` its length in tokens.
    """

    item: np.ndarray
    start: np.ndarray
    stop: np.ndarray
    closed: np.ndarray
    first_piece: np.ndarray
    sizes: np.ndarray
    num_split_items: int
    """Items longer than a block, cut into several pieces."""


def _pieces(sizes: np.ndarray, block_size: int) -> tuple[np.ndarray, ...]:
    """``(item, start, stop, closed)`` per piece, and how many items were cut: every item cut into pieces of at most ``block_size`` tokens,
    each ending with ``</s>`` (the item's own for the last piece, an appended one for the others)."""
    content = np.maximum(sizes - 1, 0)  # tokens before the item's own </s>
    per_piece = block_size - 1
    n_pieces = np.maximum(1, -(-content // per_piece))
    item = np.repeat(np.arange(len(sizes), dtype=np.int64), n_pieces)
    piece_in_item = np.arange(len(item), dtype=np.int64) - np.repeat(np.cumsum(n_pieces) - n_pieces, n_pieces)
    closed = piece_in_item == n_pieces[item] - 1
    start = piece_in_item * per_piece
    stop = np.where(closed, sizes[item], start + per_piece)
    return item, start, stop, closed, int(np.count_nonzero(n_pieces > 1))


def greedy_block_starts(piece_sizes: np.ndarray, block_size: int) -> np.ndarray:
    """The first piece of each block when pieces (each at most ``block_size``) are packed greedily in order:
    a block takes the next piece while it fits, as fairseq's ``--sample-break-mode complete`` does.

    Greedy packing is a chain: the block starting at piece i ends before ``end(i)``, the first piece
    that no longer fits, and the starts are 0, end(0), end(end(0)), ... ``end`` is one
    ``searchsorted`` for every i at once; the chain is then followed by pointer doubling (the
    first 2^j starts, mapped through ``end`` applied 2^j times, are the next 2^j), so the work is
    O(n log(blocks)) numpy operations and no Python loop over pieces or blocks.
    """
    n = len(piece_sizes)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if int(piece_sizes.max()) > block_size:
        raise ValueError(f"a piece of {int(piece_sizes.max())} tokens does not fit a block of {block_size}")
    ends = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(piece_sizes, out=ends[1:])
    # end(i) = the last j with ends[j] - ends[i] <= block_size; >= i + 1, since every piece fits.
    jump = np.searchsorted(ends, ends[:-1] + block_size, side="right") - 1
    jump = np.append(jump, n)  # n (past the last piece) maps to itself
    starts = np.zeros(1, dtype=np.int64)
    while starts[-1] < n:
        starts = np.concatenate([starts, jump[starts]])
        jump = jump[jump]
    return starts[: np.searchsorted(starts, n)]


def block_table(sizes, block_size: int, break_mode: str = "eos") -> BlockTable:
    """The blocks of items of ``sizes`` (each item's tokens end with its ``</s>``), at most ``block_size`` tokens.

    ``eos``: one item per block. ``complete``: whole consecutive items per block, packed greedily in
    corpus order, each keeping its ``</s>``. In both modes an item longer than a block is cut into
    consecutive pieces of ``block_size`` tokens, each closed with an appended ``</s>`` (nothing is
    dropped); under ``complete`` its last piece is packed with the items that follow.
    """
    if break_mode not in BREAK_MODES:
        raise ValueError(f"sample break mode must be one of {', '.join(BREAK_MODES)}, got {break_mode!r}")
    if block_size < 2:
        raise ValueError(f"block size must be >= 2 (a token and </s>), got {block_size}")
    sizes = np.asarray(sizes, dtype=np.int64)
    item, start, stop, closed, num_split_items = _pieces(sizes, block_size)
    piece_sizes = stop - start + (~closed)
    if break_mode == "eos":
        first_piece = np.arange(len(item) + 1, dtype=np.int64)
        block_sizes = piece_sizes
    else:
        first_piece = np.append(greedy_block_starts(piece_sizes, block_size), len(item))
        ends = np.concatenate([[0], np.cumsum(piece_sizes)])
        block_sizes = ends[first_piece[1:]] - ends[first_piece[:-1]]
    return BlockTable(item, start, stop, closed, first_piece, block_sizes, num_split_items)


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
