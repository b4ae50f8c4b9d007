import numpy as np
import pytest
from chunk_helpers import chunk as _chunk
from chunk_helpers import random_dna as _random_dna

from genemask_preprocess.corpus import encoding
from genemask_preprocess.corpus.chunking import Chunks
from genemask_preprocess.corpus.encoding import chunk_fingerprints, encode_chunks
from genemask_preprocess.kmers import (
    EOS_ID,
    NUM_SPECIALS,
    KmerTokenization,
    decode_bases,
    encode_bases,
    kmer_codes,
    reverse_complement_dna,
)


def kmer_ids(codes, k):
    """Token ids of the fixed vocabulary, from the plain codec: 4 + each k-mer's code."""
    return (kmer_codes(codes, k) + NUM_SPECIALS).tolist()


@pytest.mark.parametrize("k", [1, 3, 6, 7])
def test_tokens_are_the_kmer_ids_of_each_chunk_plus_eos(k, monkeypatch):
    monkeypatch.setattr(encoding, "_WINDOW_BASES", 3000)  # exercise several windows
    dna = _random_dna(20_000, seed=k) + "NNNN" + _random_dna(5000, seed=99).lower() + "Y" + _random_dna(700)
    codes, chunks = _chunk(dna, min_bases=k)
    _, _, both, both_sizes = encode_chunks(codes, chunks, k, reverse_complement=True)
    tokens, rc_tokens = both[: both.size // 2], both[both.size // 2 :]
    sizes, rc_sizes = both_sizes[: len(chunks)], both_sizes[len(chunks) :]
    assert tokens.dtype == np.uint16 and sizes.dtype == np.int32
    assert sizes.tolist() == (chunks.lengths - k + 2).tolist() == rc_sizes.tolist()
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    for i in range(len(chunks)):
        piece = codes[chunks.starts[i] : chunks.starts[i] + chunks.lengths[i]]
        item = tokens[bounds[i] : bounds[i + 1]]
        assert item[-1] == EOS_ID
        assert item[:-1].tolist() == kmer_ids(piece, k)
        rc_piece = encode_bases(reverse_complement_dna(decode_bases(piece)))
        assert rc_tokens[bounds[i] : bounds[i + 1] - 1].tolist() == kmer_ids(rc_piece, k)
    _, _, no_rc, no_rc_sizes = encode_chunks(codes, chunks, k)
    assert np.array_equal(no_rc, tokens) and np.array_equal(no_rc_sizes, sizes)


@pytest.mark.parametrize("k", [2, 3, 6, 7])
def test_non_overlapping_tokens_are_the_codec_s_of_each_chunk_and_its_reverse_complement(k, monkeypatch):
    monkeypatch.setattr(encoding, "_WINDOW_BASES", 3000)  # exercise several windows
    dna = _random_dna(20_000, seed=k) + "NNNN" + _random_dna(5000, seed=99).lower() + "Y" + _random_dna(700)
    codes, chunks = _chunk(dna, min_bases=k)
    tokenization = KmerTokenization(k, k)
    _, _, both, both_sizes = encode_chunks(codes, chunks, k, reverse_complement=True, stride=k)
    tokens, rc_tokens = both[: both.size // 2], both[both.size // 2 :]
    sizes = both_sizes[: len(chunks)]
    assert sizes.tolist() == [tokenization.num_tokens(n) + 1 for n in chunks.lengths.tolist()]
    assert sizes.tolist() == both_sizes[len(chunks) :].tolist()
    assert len(set((chunks.lengths % k).tolist())) == k  # every remainder length occurs
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    for i in range(len(chunks)):
        piece = codes[chunks.starts[i] : chunks.starts[i] + chunks.lengths[i]]
        item = tokens[bounds[i] : bounds[i + 1]]
        assert item[-1] == EOS_ID and rc_tokens[bounds[i + 1] - 1] == EOS_ID
        assert item[:-1].tolist() == tokenization.token_ids(piece).tolist()
        rc_piece = encode_bases(reverse_complement_dna(decode_bases(piece)))
        assert rc_tokens[bounds[i] : bounds[i + 1] - 1].tolist() == tokenization.token_ids(rc_piece).tolist()
    _, _, no_rc, _ = encode_chunks(codes, chunks, k, stride=k)
    assert np.array_equal(no_rc, tokens)


def test_chunks_shorter_than_k_are_refused():
    codes = encode_bases("ACGTACGT")
    with pytest.raises(ValueError):
        encode_chunks(codes, Chunks(np.array([0]), np.array([3])), 6)


def test_fingerprints_identify_equal_sequences_and_reverse_complements(monkeypatch):
    monkeypatch.setattr(encoding, "_WINDOW_BASES", 100)
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
