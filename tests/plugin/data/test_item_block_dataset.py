"""The block table (``--sample-break-mode eos|complete``) and the block dataset built on it."""

import time

import numpy as np
import pytest
import torch
from fairseq.data import ListDataset

from genemask_plugin.data.block_table import block_table, greedy_block_starts
from genemask_plugin.data.item_block_dataset import ItemBlockDataset

EOS = 2


def greedy_reference(piece_sizes, block_size):
    """fairseq's complete mode, written as the plain loop it is."""
    starts, filled = [], 0
    for i, size in enumerate(piece_sizes):
        if i == 0 or filled + size > block_size:
            starts.append(i)
            filled = 0
        filled += size
    return starts


def items_of(sizes, seed=0):
    """Items of the given sizes (regular ids >= 4, then </s>); each item's ids are distinct from the others'."""
    rng = np.random.default_rng(seed)
    items = [torch.from_numpy(np.append(rng.integers(4, 4000, size - 1), EOS)) for size in sizes]
    return ListDataset(items, np.array(sizes))


@pytest.mark.parametrize("seed", range(6))
def test_greedy_starts_match_the_sequential_loop(seed):
    rng = np.random.default_rng(seed)
    for _ in range(50):
        block = int(rng.integers(2, 80))
        sizes = rng.integers(0, block + 1, int(rng.integers(0, 400)))
        assert greedy_block_starts(sizes, block).tolist() == greedy_reference(sizes, block)


def test_a_piece_larger_than_a_block_is_refused():
    with pytest.raises(ValueError, match="does not fit"):
        greedy_block_starts(np.array([3, 9]), 8)


def test_complete_packs_whole_items_and_cuts_only_long_ones():
    sizes = [5, 3, 8, 2, 20, 1, 4]
    blocks = ItemBlockDataset(items_of(sizes), sizes, block_size=8, eos=EOS, break_mode="complete")
    items = items_of(sizes)
    got = [blocks[i].tolist() for i in range(len(blocks))]
    t = [items[i].tolist() for i in range(len(sizes))]
    assert got == [
        t[0] + t[1],  # 5 + 3 fill a block
        t[2],
        t[3],  # 2 + the first 8-token piece of the 20-token item would overflow
        t[4][:7] + [EOS],  # the long item: 7 tokens + an appended </s>, twice, then its last 6 tokens
        t[4][7:14] + [EOS],
        t[4][14:] + t[5],  # its last piece (with its own </s>) packs with the next item
        t[6],
    ]
    assert blocks.sizes.tolist() == [len(b) for b in got] and max(blocks.sizes) <= 8
    assert blocks.num_split_items == 1


@pytest.mark.parametrize("block_size", [16, 64, 511])
def test_complete_keeps_every_token_and_every_eos(block_size):
    rng = np.random.default_rng(block_size)
    sizes = rng.integers(1, 2 * block_size, 300).tolist()
    items = items_of(sizes, seed=1)
    blocks = ItemBlockDataset(items, sizes, block_size=block_size, eos=EOS, break_mode="complete")
    eos_blocks = ItemBlockDataset(items, sizes, block_size=block_size, eos=EOS, break_mode="eos")
    packed = torch.cat([blocks[i] for i in range(len(blocks))])
    # The same tokens, in corpus order, as one block per item: packing only removes block boundaries.
    assert torch.equal(packed, torch.cat([eos_blocks[i] for i in range(len(eos_blocks))]))
    content = torch.cat([items[i][:-1] for i in range(len(sizes))])
    assert torch.equal(packed[packed != EOS], content)
    long_items = [s for s in sizes if s > block_size]
    extra_eos = sum(-(-(s - 1) // (block_size - 1)) - 1 for s in long_items)
    assert int((packed == EOS).sum()) == len(sizes) + extra_eos  # every item's </s>, and one per cut
    assert blocks.num_split_items == len(long_items)
    assert all(1 <= blocks.sizes[i] <= block_size for i in range(len(blocks)))
    assert blocks.sizes.tolist() == [len(blocks[i]) for i in range(len(blocks))]
    # Greedy: a block ends only where the next piece would not fit.
    table = block_table(sizes, block_size, "complete")
    piece_sizes = table.stop - table.start + ~table.closed
    assert all(table.sizes[b] + piece_sizes[table.first_piece[b + 1]] > block_size for b in range(len(table.sizes) - 1))
    assert len(blocks) < len(eos_blocks)


def test_eos_mode_is_one_block_per_piece():
    sizes = [5, 3, 8, 2, 20, 1]
    table = block_table(sizes, 8, "eos")
    assert table.first_piece.tolist() == list(range(len(table.item) + 1))
    assert table.item.tolist() == [0, 1, 2, 3, 4, 4, 4, 5]


def test_unknown_break_mode_is_refused():
    with pytest.raises(ValueError, match="eos, complete"):
        block_table([3, 4], 8, "none")


def test_ten_million_items_are_laid_out_in_seconds():
    """A genome-scale index (10^7 items, ~3 s here) is laid out in seconds, not minutes.

    Measured in CPU time of this process, so a loaded machine does not fail it.
    """
    sizes = np.random.default_rng(0).integers(2, 120, 10**7)
    start = time.process_time()
    table = block_table(sizes, 511, "complete")
    seconds = time.process_time() - start
    assert seconds < 15, seconds
    assert table.sizes.max() <= 511 and table.sizes.sum() == sizes.sum()
    assert 7 < len(sizes) / len(table.sizes) < 8.5  # ~61 tokens per item, ~470 per block
