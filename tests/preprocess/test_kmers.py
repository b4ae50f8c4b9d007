import numpy as np
import pytest

from genemask_preprocess import kmers
from genemask_preprocess.kmers import (
    INVALID,
    KmerTokenization,
    acgt_runs,
    all_kmers,
    base_digits,
    check_k,
    codes_of_kmers,
    decode_bases,
    dna_to_kmer_string,
    dna_to_kmers,
    encode_bases,
    is_acgt,
    kmer_codes,
    kmer_of_code,
    kmer_size_of_embedding_rows,
    kmer_size_of_symbols,
    kmers_of_codes,
    kmers_to_dna,
    reverse_complement_codes,
    reverse_complement_dna,
    tokenization_of_embedding_rows,
    tokenization_of_symbols,
)


def test_encode_bases_maps_case_and_non_acgt():
    codes = encode_bases("ACGTacgtNRy-")
    assert codes.tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 4, 4, 4, 4]
    assert encode_bases(b"GATTACA").tolist() == [2, 0, 3, 3, 0, 1, 0]
    assert decode_bases(encode_bases("acgtNx")) == "ACGTNN"


def test_acgt_runs_split_at_every_non_acgt_letter():
    runs = acgt_runs(encode_bases("NNACGTNNAAYCCCCN"))
    assert runs.tolist() == [[2, 6], [8, 10], [11, 15]]
    assert acgt_runs(encode_bases("NNACGTNNAAYCCCCN"), min_length=3).tolist() == [[2, 6], [11, 15]]
    assert acgt_runs(encode_bases("NNNN")).shape == (0, 2)
    assert acgt_runs(encode_bases("ACGT")).tolist() == [[0, 4]]


@pytest.mark.parametrize("k", [1, 3, 6, 7])
def test_kmer_codes_match_base4_reading_of_each_kmer(k):
    rng = np.random.default_rng(k)
    dna = "".join(rng.choice(list("ACGT"), size=200))
    codes = kmer_codes(encode_bases(dna), k)
    expected = [int("".join(str("ACGT".index(b)) for b in dna[i : i + k]), 4) for i in range(len(dna) - k + 1)]
    assert codes.tolist() == expected


def test_kmer_codes_of_a_too_short_run_is_empty():
    assert kmer_codes(encode_bases("ACG"), 4).size == 0


def test_vocabulary_order_and_code_roundtrip():
    vocab = all_kmers(3)
    assert len(vocab) == 64 and vocab[:3] == ["AAA", "AAC", "AAG"] and vocab[-1] == "TTT"
    assert vocab == sorted(vocab)
    assert codes_of_kmers(vocab, 3).tolist() == list(range(64))
    for code, kmer in enumerate(vocab):
        assert kmer_of_code(code, 3) == kmer
    with pytest.raises(ValueError, match="not an A/C/G/T k-mer: 'ACN'"):
        codes_of_kmers(["ACG", "ACN"], 3)


def test_is_acgt_accepts_only_upper_case_acgt_words():
    assert is_acgt("ACGT") and is_acgt("T")
    assert not any(map(is_acgt, ["", "acgt", "ACGN", "AC GT", "ACGT\n", "<s>"]))


def test_k_of_a_models_embedding_rows():
    assert [kmer_size_of_embedding_rows(4 + 4**k + 1) for k in (1, 6, kmers.MAX_K)] == [1, 6, kmers.MAX_K]
    assert kmer_size_of_embedding_rows(4 + 4**6) is None  # no <mask> row: not our vocabulary
    assert kmer_size_of_embedding_rows(4 + 4**8 + 1) is None  # beyond MAX_K


@pytest.mark.parametrize("bad", [0, 8, -1, 2.0, "6"])
def test_check_k_rejects_unsupported_sizes(bad):
    with pytest.raises(ValueError, match="k must be"):
        check_k(bad)
    assert check_k(kmers.MAX_K) == 7


def test_kmer_size_of_symbols_rejects_other_vocabularies():
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    assert kmer_size_of_symbols(specials + all_kmers(2)) == 2
    assert kmer_size_of_symbols(specials + all_kmers(2)[::-1]) is None
    assert kmer_size_of_symbols(specials + ["AC", "GT"]) is None
    assert kmer_size_of_symbols(all_kmers(2)) is None
    assert kmer_size_of_symbols(specials) is None


def test_kmers_to_dna_roundtrip_and_errors():
    dna = "GATTACAGATTACA"
    assert kmers_to_dna(" ".join(dna_to_kmers(dna, 6))) == dna
    with pytest.raises(ValueError, match="ragged"):
        kmers_to_dna("ACG ACGT")
    with pytest.raises(ValueError, match="overlap"):
        kmers_to_dna("ACG GGG")
    with pytest.raises(ValueError, match="empty"):
        kmers_to_dna("  ")


def test_invalid_code_marks_every_non_acgt_letter_and_nothing_else():
    letters = np.arange(256, dtype=np.uint8)
    invalid = encode_bases(letters) == INVALID
    assert sorted(chr(c) for c in np.flatnonzero(~invalid)) == sorted("ACGTacgt")
    assert INVALID not in range(4)


@pytest.mark.parametrize("k", [1, 3, 6, 7])
def test_codes_and_strings_round_trip_in_code_order(k):
    every = all_kmers(k)
    codes = codes_of_kmers(every, k)
    assert codes.tolist() == list(range(4**k))
    assert kmers_of_codes(codes, k) == every
    assert base_digits(codes[-1:], k).tolist() == [[3] * k]


def test_codes_of_kmers_refuses_other_letters_and_lengths():
    with pytest.raises(ValueError, match="ANGT"):
        codes_of_kmers(["ACGT", "ANGT"], 4)
    with pytest.raises(ValueError, match="length 4"):
        codes_of_kmers(["ACGT", "ACG"], 4)
    assert codes_of_kmers([], 4).size == 0


def test_reverse_complement_of_codes_matches_strings():
    rng = np.random.default_rng(0)
    k = 7
    codes = rng.integers(0, 4**k, 500)
    expected = [reverse_complement_dna(s) for s in kmers_of_codes(codes, k)]
    assert kmers_of_codes(reverse_complement_codes(codes, k), k) == expected
    assert reverse_complement_dna("AACGTn") == "NACGTT"
    assert reverse_complement_dna("acgg") == "CCGT"


def test_dna_to_kmer_string_is_dnabert_input():
    text = dna_to_kmer_string("acgtacg", k=6)
    assert text == "ACGTAC CGTACG"
    assert kmers_to_dna(text) == "ACGTACG"
    with pytest.raises(ValueError, match="no 6-mers"):
        dna_to_kmer_string("ACGT", 6)


def test_codes_of_digits_inverts_base_digits():
    from genemask_preprocess.kmers import codes_of_digits

    codes = np.random.default_rng(1).integers(0, 4**9, 300)
    assert codes_of_digits(base_digits(codes, 9)).tolist() == codes.tolist()


def test_non_overlapping_tokens_follow_the_nucleotide_transformer_remainder_rule():
    # NT's own example (NucleotidesKmersTokenizer.tokenize, k=5): ATCGAATGGCGATGCAC -> ATCGA ATGGC GATGC A C
    tokenization = KmerTokenization(5, 5)
    ids = tokenization.token_ids(encode_bases("ATCGAATGGCGATGCAC"))
    symbols = [*kmers.FAIRSEQ_SPECIALS, *tokenization.symbols]
    assert [symbols[i] for i in ids] == ["ATCGA", "ATGGC", "GATGC", "A", "C"]
    assert tokenization.num_tokens(17) == 5 and tokenization.dna_of_symbols(["ATCGA", "A", "C"]) == "ATCGAAC"
    assert tokenization.symbols[-4:] == ["A", "C", "G", "T"] and len(tokenization.symbols) == 4**5 + 4
    overlapping = KmerTokenization(5)
    assert overlapping.token_ids(encode_bases("ATCGAATG")).tolist() == (kmer_codes(encode_bases("ATCGAATG"), 5) + 4).tolist()
    assert overlapping.num_tokens(17) == 13 and overlapping.symbols == all_kmers(5)


@pytest.mark.parametrize("tokenization", [KmerTokenization(6), KmerTokenization(6, 6), KmerTokenization(1), KmerTokenization(3, 3)])
def test_max_bases_is_the_longest_run_within_the_token_limit(tokenization):
    for tokens in (1, 2, 7, 510):
        longest = tokenization.max_bases(tokens)
        assert tokenization.num_tokens(longest) == tokens
        assert all(tokenization.num_tokens(n) > tokens for n in range(longest + 1, longest + 2 * tokenization.k + 2))


def test_single_nucleotides_are_both_strides_and_strides_other_than_1_or_k_are_refused():
    assert KmerTokenization(1, 1).symbols == list("ACGT") and not KmerTokenization(1).overlapping
    assert KmerTokenization(1).describe() == "single nucleotides"
    assert KmerTokenization(6, 6).describe() == "non-overlapping 6-mers"
    with pytest.raises(ValueError, match="stride must be 1 .* or k = 6"):
        KmerTokenization(6, 3)


def test_a_stride_k_dictionary_is_never_taken_for_an_overlapping_one():
    specials = list(kmers.FAIRSEQ_SPECIALS)
    stride = specials + KmerTokenization(3, 3).symbols + ["<mask>"]
    assert tokenization_of_symbols(stride) == KmerTokenization(3, 3)
    assert kmer_size_of_symbols(stride) is None
    assert tokenization_of_symbols(specials + all_kmers(3) + ["<mask>"]) == KmerTokenization(3)
    assert tokenization_of_symbols(specials + list("ACGT") + ["<mask>"]) == KmerTokenization(1)
    assert kmer_size_of_symbols(specials + list("ACGT")) == 1
    assert tokenization_of_symbols(specials + ["AC", "GT"]) is None
    rows = {t: 4 + len(t.symbols) + 1 for t in (KmerTokenization(6), KmerTokenization(6, 6), KmerTokenization(1))}
    assert {tokenization_of_embedding_rows(r): t for t, r in rows.items()} == {t: t for t in rows}
    assert kmer_size_of_embedding_rows(rows[KmerTokenization(6, 6)]) is None
    assert tokenization_of_embedding_rows(4 + 4**6) is None
