"""fairseq dict.txt: the one reader and writer, the k-mer vocabulary lookup, the token dtype."""

import numpy as np
import pytest

from genemask_preprocess.errors import InputError
from genemask_preprocess.formats.fairseq_dictionary import (
    DictionaryError,
    fairseq_int_dtype,
    load_kmer_vocabulary,
    read_dictionary_symbols,
    write_dictionary,
    write_kmer_dictionary,
)
from genemask_preprocess.kmers import (
    FAIRSEQ_SPECIALS,
    KmerTokenization,
    all_kmers,
    codes_of_kmers,
    encode_bases,
)


def test_kmer_dictionary_bytes_are_the_fixed_vocabulary(tmp_path):
    write_kmer_dictionary(tmp_path / "dict.txt", 2)
    assert (tmp_path / "dict.txt").read_bytes() == b"".join(f"{kmer} 1\n".encode() for kmer in all_kmers(2))
    assert read_dictionary_symbols(tmp_path / "dict.txt") == [*FAIRSEQ_SPECIALS, *all_kmers(2)]


def test_fairseq_loads_what_we_write_with_the_same_ids(tmp_path):
    from fairseq.data import Dictionary

    write_kmer_dictionary(tmp_path / "dict.txt", 4)
    dictionary = Dictionary.load(str(tmp_path / "dict.txt"))
    assert dictionary.symbols == read_dictionary_symbols(tmp_path / "dict.txt")
    assert dictionary.index("AAAA") == 4 and dictionary.index("TTTT") == 4 + 255
    assert dictionary.index("ACGT") == 4 + int(codes_of_kmers(["ACGT"], 4)[0])

    write_dictionary(tmp_path / "labels.txt", ["neg", "pos"], [3, 5])
    assert (tmp_path / "labels.txt").read_text() == "neg 3\npos 5\n"
    labels = Dictionary.load(str(tmp_path / "labels.txt"))
    assert labels.index("pos") == 5 and labels.count[labels.index("pos")] == 5


def test_reader_takes_fairseq_flags_and_blank_lines(tmp_path):
    path = tmp_path / "dict.txt"
    path.write_text("AC 7\n\nGT 2 #fairseq:overwrite\nmadeupword0000 0\n")
    assert read_dictionary_symbols(path)[4:] == ["AC", "GT", "madeupword0000"]


@pytest.mark.parametrize("text", ["AC\n", "AC x\n", "AC 1.5\n"])
def test_malformed_lines_name_the_line(tmp_path, text):
    path = tmp_path / "dict.txt"
    path.write_text("AA 1\n" + text)
    with pytest.raises(DictionaryError, match=r"dict.txt line 2: expected 'symbol count'"):
        read_dictionary_symbols(path)


def test_unreadable_files_are_one_line_input_errors(tmp_path):
    with pytest.raises(InputError, match="cannot read dictionary"):
        read_dictionary_symbols(tmp_path / "missing.txt")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(DictionaryError, match="cannot read dictionary"):
        read_dictionary_symbols(tmp_path / "binary.txt")


def test_writer_refuses_what_would_not_read_back(tmp_path):
    for bad in (["a b"], ["ok", ""], ["x\n"]):
        with pytest.raises(ValueError, match="without whitespace"):
            write_dictionary(tmp_path / "dict.txt", bad)
    with pytest.raises(ValueError, match="2 symbols but 1 counts"):
        write_dictionary(tmp_path / "dict.txt", ["a", "b"], [1])
    assert not (tmp_path / "dict.txt").exists()


def test_fixed_vocabulary_lookup_is_the_codec(tmp_path):
    write_kmer_dictionary(tmp_path / "dict.txt", 3)
    vocab = load_kmer_vocabulary(tmp_path / "dict.txt")
    assert vocab.k == 3 and vocab.dtype == np.uint16
    assert vocab.id_of_code.tolist() == [4 + code for code in range(64)]


def test_a_vocabulary_in_another_order_is_read_by_symbol(tmp_path):
    path = tmp_path / "dict.txt"
    kmers = all_kmers(2)[::-1][:10]  # partial, reversed: as fairseq-preprocess might order it
    write_dictionary(path, kmers, list(range(10, 0, -1)))
    vocab = load_kmer_vocabulary(path)
    assert vocab.k == 2
    codes = codes_of_kmers(kmers, 2)
    assert vocab.id_of_code[codes].tolist() == list(range(4, 14))
    assert (vocab.id_of_code >= 0).sum() == 10


@pytest.mark.parametrize(("symbols", "found"), [
    (["<cls>", "x"], "no A/C/G/T k-mers"),
    (["AC", "ACG", "T"], r"k-mers of lengths \[1, 2, 3\]"),  # SentencePiece pieces
])
def test_other_dictionaries_are_refused(tmp_path, symbols, found):
    write_dictionary(tmp_path / "dict.txt", symbols)
    with pytest.raises(DictionaryError, match=f"is not a k-mer dictionary: it has {found} .*SentencePiece"):
        load_kmer_vocabulary(tmp_path / "dict.txt")


def test_token_dtype_follows_fairseq_preprocess():
    from fairseq.data.indexed_dataset import best_fitting_int_dtype

    for size in (5, 4**7 + 5, 65499, 65500, 70000):
        assert fairseq_int_dtype(size) == best_fitting_int_dtype(size)


def test_a_stride_k_dictionary_carries_its_remainder_bases_and_tokenizes_like_the_codec(tmp_path):
    write_kmer_dictionary(tmp_path / "dict.txt", 3, stride=3)
    assert (tmp_path / "dict.txt").read_text().splitlines()[-5:] == ["TTT 1", "A 1", "C 1", "G 1", "T 1"]
    vocab = load_kmer_vocabulary(tmp_path / "dict.txt")
    assert (vocab.k, vocab.stride) == (3, 3) and vocab.id_of_base.tolist() == [68, 69, 70, 71]
    codes = encode_bases("ACGTTGCA")
    assert vocab.token_ids(codes).tolist() == KmerTokenization(3, 3).token_ids(codes).tolist()
    assert vocab.token_ids(codes).tolist() == [4 + 6, 4 + 62, 68 + 1, 68 + 0]  # ACG TTG C A


def test_a_reordered_stride_k_dictionary_is_read_by_symbol(tmp_path):
    symbols = KmerTokenization(2, 2).symbols[::-1]
    write_dictionary(tmp_path / "dict.txt", symbols)
    vocab = load_kmer_vocabulary(tmp_path / "dict.txt")
    assert (vocab.k, vocab.stride) == (2, 2)
    ids = vocab.token_ids(encode_bases("ACGTA"))
    assert [vocab.symbols[i] for i in ids] == ["AC", "GT", "A"]
    with pytest.raises(DictionaryError, match="lengths \\[1, 2\\]"):  # not all 16 2-mers: pieces, not a stride-2 vocabulary
        write_dictionary(tmp_path / "pieces.txt", ["A", "C", "G", "T", "AC", "GT"])
        load_kmer_vocabulary(tmp_path / "pieces.txt")
