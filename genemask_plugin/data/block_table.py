"""The block table: corpus items (chunks) laid out into blocks, one item per block or packed.

A pure numpy function of the items' sizes (:func:`block_table`), built vectorised, so a
genome-scale index (10^7 items) is laid out in seconds; :class:`~.item_block_dataset.ItemBlockDataset`
is its fairseq dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
