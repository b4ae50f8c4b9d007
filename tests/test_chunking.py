import numpy as np
import pytest

from preprocess import chunking
from preprocess.chunking import (
    EOS,
    ChunkingOptions,
    Chunks,
    chunk_fingerprints,
    chunk_kmer_tokens,
    chunk_record,
    chunk_records,
    record_key,
    reverse_complement_dna,
    valid_split_mask,
)
from preprocess.kmers import decode_bases, encode_bases, kmer_token_ids

PAPER = ChunkingOptions()


def _random_dna(n, seed=0):
    return "".join(np.random.default_rng(seed).choice(list("ACGT"), size=n))


def _chunk(dna, seed=1, name="chr", options=PAPER, min_bases=1):
    codes = encode_bases(dna)
    return codes, chunk_record(codes, record_key(seed, name), options, min_bases=min_bases)


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


@pytest.mark.parametrize("k", [1, 3, 6, 7])
def test_tokens_are_the_kmer_ids_of_each_chunk_plus_eos(k, monkeypatch):
    monkeypatch.setattr(chunking, "_WINDOW_BASES", 3000)  # exercise several windows
    dna = _random_dna(20_000, seed=k) + "NNNN" + _random_dna(5000, seed=99).lower() + "Y" + _random_dna(700)
    codes, chunks = _chunk(dna, min_bases=k)
    both, both_sizes = chunk_kmer_tokens(codes, chunks, k, reverse_complement=True)
    tokens, rc_tokens = both[: both.size // 2], both[both.size // 2 :]
    sizes, rc_sizes = both_sizes[: len(chunks)], both_sizes[len(chunks) :]
    assert tokens.dtype == np.uint16 and sizes.dtype == np.int32
    assert sizes.tolist() == (chunks.lengths - k + 2).tolist() == rc_sizes.tolist()
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    for i in range(len(chunks)):
        piece = codes[chunks.starts[i] : chunks.starts[i] + chunks.lengths[i]]
        item = tokens[bounds[i] : bounds[i + 1]]
        assert item[-1] == EOS
        assert item[:-1].tolist() == kmer_token_ids(piece, k).tolist()
        rc_piece = encode_bases(reverse_complement_dna(decode_bases(piece)))
        assert rc_tokens[bounds[i] : bounds[i + 1] - 1].tolist() == kmer_token_ids(rc_piece, k).tolist()
    no_rc = chunk_kmer_tokens(codes, chunks, k)
    assert np.array_equal(no_rc[0], tokens) and np.array_equal(no_rc[1], sizes)


def test_chunks_shorter_than_k_are_refused():
    codes = encode_bases("ACGTACGT")
    with pytest.raises(ValueError):
        chunk_kmer_tokens(codes, Chunks(np.array([0]), np.array([3])), 6)


def test_fingerprints_identify_equal_sequences_and_reverse_complements(monkeypatch):
    monkeypatch.setattr(chunking, "_WINDOW_BASES", 100)
    a = _random_dna(300, seed=1)
    b = _random_dna(300, seed=2)
    dna = a + "N" + b + "N" + a + "N" + reverse_complement_dna(a) + "N" + a[:-1] + "C"
    codes = encode_bases(dna)
    starts = np.array([0, 301, 602, 903, 1204])
    chunks = Chunks(starts, np.full(5, 300))
    forward, reverse = chunk_fingerprints(codes, chunks)
    assert forward[0] == forward[2]
    assert len({forward[0], forward[1], forward[4]}) == 3
    assert reverse[0] == forward[3] and reverse[3] == forward[0]
    assert min(forward[0], reverse[0]) == min(forward[3], reverse[3])
    # Same bases, different length: different fingerprints.
    shorter = chunk_fingerprints(codes, Chunks(np.array([0]), np.array([299])))[0]
    assert shorter[0] != forward[0]


def test_valid_split_is_seeded_and_close_to_the_fraction():
    keys = np.random.default_rng(0).integers(0, 2**63, size=50_000, dtype=np.uint64)
    mask = valid_split_mask(keys, 1, 0.1)
    assert abs(mask.mean() - 0.1) < 0.01
    assert np.array_equal(mask, valid_split_mask(keys, 1, 0.1))
    assert not np.array_equal(mask, valid_split_mask(keys, 2, 0.1))
    assert not valid_split_mask(keys, 1, 0.0).any()


def test_fingerprints_of_all_lengths_match_copies_and_reverse_complements():
    rng = np.random.default_rng(11)
    pieces = [_random_dna(int(n), seed=i) for i, n in enumerate(rng.integers(1, 60, size=200))]
    pieces += ["A", "C", "AAAAAAA", "AAAAAAAA", "AAAAAAAAA"]
    # Layout: every piece, then every piece again, then every reverse complement, N-separated.
    layout = pieces + pieces + [reverse_complement_dna(p) for p in pieces]
    dna = "N".join(layout)
    starts = np.cumsum([0] + [len(p) + 1 for p in layout[:-1]])
    chunks = Chunks(starts.astype(np.int64), np.array([len(p) for p in layout], dtype=np.int64))
    forward, reverse = chunk_fingerprints(encode_bases(dna), chunks)
    n = len(pieces)
    assert np.array_equal(forward[:n], forward[n : 2 * n])
    assert np.array_equal(reverse[:n], forward[2 * n :])
    assert np.array_equal(forward[:n], reverse[2 * n :])
    distinct = {p: f for p, f in zip(pieces, forward[:n].tolist(), strict=True)}
    assert len(set(distinct.values())) == len(distinct)
