import numpy as np
import pytest
from chunk_helpers import PAPER
from chunk_helpers import chunk as _chunk
from chunk_helpers import random_dna as _random_dna

from genemask_preprocess.corpus.chunking import (
    ChunkingOptions,
    chunk_record,
    chunk_records,
    record_key,
)
from genemask_preprocess.kmers import encode_bases


def test_paper_length_distribution_and_tiling_of_an_n_free_record():
    dna = _random_dna(400_000)
    _, chunks = _chunk(dna)
    starts, lengths = chunks.starts, chunks.lengths
    assert 0 <= starts[0] < 1000
    # Non-overlapping and contiguous from the offset: no base is skipped between chunks.
    assert np.array_equal(starts[1:], starts[:-1] + lengths[:-1])
    assert starts[-1] + lengths[-1] <= len(dna)
    body = lengths[:-1]  # the last chunk is cut at the record end
    assert body.min() >= 6 and body.max() == 511
    full = np.mean(body == 511)
    assert 0.45 < full < 0.55
    short = body[body < 511]
    assert short.min() < 20 and short.max() > 495  # uniform over 6..510
    assert abs(short.mean() - 258) < 15


def test_offset_is_random_below_1000_and_depends_on_seed_and_name():
    dna = _random_dna(5000)
    offsets = {int(_chunk(dna, seed=s)[1].starts[0]) for s in range(40)}
    assert len(offsets) > 30 and max(offsets) < 1000
    a = _chunk(dna, seed=3, name="chrA")[1]
    b = _chunk(dna, seed=3, name="chrA")[1]
    c = _chunk(dna, seed=3, name="chrB")[1]
    assert np.array_equal(a.starts, b.starts) and np.array_equal(a.lengths, b.lengths)
    assert not np.array_equal(a.lengths, c.lengths)


def test_short_record_is_not_lost_to_the_offset():
    _, chunks = _chunk(_random_dna(70))
    assert chunks.starts[0] == 0
    assert chunks.lengths.sum() >= 64  # only a final piece shorter than 6 may be dropped


def test_chunks_split_at_non_acgt_runs_and_never_fuse():
    rng = np.random.default_rng(5)
    parts = [_random_dna(int(rng.integers(20, 3000)), seed=i) for i in range(30)]
    gaps = ["N" * int(rng.integers(1, 50)) if i % 3 else "R" for i in range(29)]
    dna = parts[0] + "".join(g + p for g, p in zip(gaps, parts[1:], strict=True))
    codes, chunks = _chunk(dna, min_bases=6)
    for s, n in zip(chunks.starts, chunks.lengths, strict=True):
        assert (codes[s : s + n] < 4).all()
        assert n >= 6
    # Every A/C/G/T base after the offset is in a chunk, except pieces shorter than 6 that a cut
    # left between a chunk boundary and a gap (or the record end).
    covered = np.zeros(len(dna), dtype=bool)
    for s, n in zip(chunks.starts, chunks.lengths, strict=True):
        assert not covered[s : s + n].any()
        covered[s : s + n] = True
    lost = (codes < 4) & ~covered
    lost[: chunks.starts[0]] = False
    edges = np.flatnonzero(np.diff(np.concatenate([[0], lost.astype(np.int8), [0]])))
    for a, b in edges.reshape(-1, 2):
        assert b - a < 6
        assert b == len(dna) or codes[b] == 4 or a == 0 or codes[a - 1] == 4
    assert lost.sum() < 6 * 2 * 30


def test_all_n_and_too_short_runs_give_no_chunk():
    assert len(_chunk("N" * 500)[1]) == 0
    assert len(_chunk("ACGTNACGTNACGTN", min_bases=6)[1]) == 0
    assert len(_chunk("ACGTNACGTNACGTN", options=ChunkingOptions(min_length=3))[1]) == 3


def test_other_lengths():
    options = ChunkingOptions(length=100, min_length=100, full_length_probability=0.0, max_start_offset=0)
    _, chunks = _chunk(_random_dna(1050), options=options)
    assert chunks.starts.tolist() == list(range(0, 1000, 100))
    assert set(chunks.lengths.tolist()) == {100}
    with pytest.raises(ValueError):
        ChunkingOptions(length=5, min_length=6)
    with pytest.raises(ValueError):
        ChunkingOptions(full_length_probability=1.5)


def test_batched_chunking_equals_chunking_each_record_alone():
    rng = np.random.default_rng(3)
    records = [_random_dna(int(n), seed=i) for i, n in enumerate(rng.integers(1, 3000, size=40))]
    records[5] = "N" * 40
    records[9] = records[9][:500] + "NNN" + records[9][500:]
    records += [_random_dna(200_000, seed=77), "ACG", ""]
    names = [f"r{i}" for i in range(len(records))]
    keys = np.array([record_key(7, n) for n in names], dtype=np.uint64)
    lengths = np.array([len(r) for r in records])
    codes = encode_bases("".join(records))
    chunks, owner = chunk_records(codes, np.cumsum(lengths) - lengths, keys, PAPER, min_bases=4)
    for i, record in enumerate(records):
        alone = chunk_record(encode_bases(record), int(keys[i]), PAPER, min_bases=4)
        mine = owner == i
        assert np.array_equal(chunks.starts[mine] - (lengths[:i].sum()), alone.starts)
        assert np.array_equal(chunks.lengths[mine], alone.lengths)
    assert not (owner == 5).any() and not (owner == len(records) - 2).any()
