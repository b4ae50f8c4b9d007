"""genemask-fewshot prepare: TSV -> sentence_prediction layout, label mapping, bad rows, overlap."""

import json
from pathlib import Path

import numpy as np
import pytest

from genemask_plugin.fewshot.cli import main
from genemask_plugin.fewshot.prepare import (
    FewshotDataError,
    PreparedData,
    prepare_fewshot_data,
    sorted_labels,
)
from genemask_preprocess.errors import OutputError
from genemask_preprocess.formats.fairseq_dictionary import (
    DictionaryError,
    load_kmer_vocabulary,
    write_kmer_dictionary,
)
from genemask_preprocess.formats.indexed_dataset import read_indexed_dataset
from genemask_preprocess.kmers import KmerTokenization, all_kmers

BUNDLED_FEWSHOT = Path(__file__).resolve().parents[3] / "data" / "fewshot"
K = 3
RNG = np.random.default_rng(7)


def random_dna(n):
    return "".join(RNG.choice(list("ACGT"), size=n))


def kmer_string(dna, k=K):
    return " ".join(dna[i : i + k] for i in range(len(dna) - k + 1))


def write_tsv(path, rows, header=("sequence", "label"), quote=False):
    def field(text):
        return f'"{text}"' if quote else text

    lines = ["\t".join(field(h) for h in header)]
    lines += ["\t".join(field(x) for x in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def expected_ids(dna, k=K):
    """Token ids in the fixed vocabulary, computed independently of the codec: 4 + rank of the k-mer."""
    rank = {kmer: i for i, kmer in enumerate(all_kmers(k))}
    return [4 + rank[dna[i : i + k]] for i in range(len(dna) - k + 1)] + [2]


def items(prefix):
    tokens, sizes = read_indexed_dataset(prefix)
    return [list(map(int, t)) for t in np.split(tokens, np.cumsum(sizes)[:-1])]


@pytest.fixture
def vocab_dict(tmp_path):
    path = tmp_path / "dict.txt"
    write_kmer_dictionary(path, K)
    return path


@pytest.fixture
def train_rows():
    return [(random_dna(12), str(i % 2)) for i in range(8)]


def test_layout_ids_and_labels_match_fairseq_conventions(tmp_path, vocab_dict, train_rows):
    dnas = [dna for dna, _ in train_rows]
    rows = [(kmer_string(dna) if i % 2 else dna.lower(), label) for i, (dna, label) in enumerate(train_rows)]
    train = write_tsv(tmp_path / "train.tsv", rows, quote=True)  # quoted, like the published few-shot files
    test = write_tsv(tmp_path / "test.tsv", [(dnas[0], "1"), (kmer_string(dnas[3]), "0")])
    out = tmp_path / "out"
    prepared = prepare_fewshot_data(train, vocab_dict, out, test=test)

    assert (out / "input0" / "dict.txt").read_bytes() == vocab_dict.read_bytes()
    assert items(out / "input0" / "train") == [expected_ids(d) for d in dnas]
    assert items(out / "input0" / "test") == [expected_ids(dnas[0]), expected_ids(dnas[3])]
    assert (out / "label" / "dict.txt").read_text() == "0 4\n1 4\n"
    assert items(out / "label" / "train") == [[4 + int(label), 2] for _, label in train_rows]
    assert items(out / "label" / "test") == [[5, 2], [4, 2]]
    assert read_indexed_dataset(out / "input0" / "train")[0].dtype == np.uint16
    meta = json.loads((out / "fewshot.json").read_text())
    assert meta["k"] == K and meta["labels"] == ["0", "1"]
    assert meta["splits"]["train"]["rows"] == 8 and meta["splits"]["test"]["per_class"] == {"0": 1, "1": 1}
    assert PreparedData.load(out).num_classes == prepared.num_classes == 2


def test_input_ids_equal_fairseq_dictionary_encoding(tmp_path, vocab_dict, train_rows):
    from fairseq.data import Dictionary

    train = write_tsv(tmp_path / "train.tsv", train_rows)
    prepare_fewshot_data(train, vocab_dict, tmp_path / "out")
    dictionary = Dictionary.load(str(vocab_dict))
    expected = [dictionary.encode_line(kmer_string(d), add_if_not_exist=False).tolist() for d, _ in train_rows]
    assert items(tmp_path / "out" / "input0" / "train") == expected


def test_sentence_prediction_reads_label_zero_as_class_zero(tmp_path, vocab_dict):
    """Through fairseq's own task: label "0" -> target 0, "2" -> 2, "10" -> 3 (numeric order)."""
    from fairseq.tasks.sentence_prediction import SentencePredictionConfig, SentencePredictionTask

    labels = ["2", "10", "0", "1", "2", "10", "1", "0"]
    rows = [(random_dna(10), label) for label in labels]
    prepare_fewshot_data(write_tsv(tmp_path / "train.tsv", rows), vocab_dict, tmp_path / "out")
    cfg = SentencePredictionConfig(data=str(tmp_path / "out"), num_classes=4, regression_target=False,
                                   classification_head_name="head", seed=1, no_shuffle=True)
    task = SentencePredictionTask.setup_task(cfg)
    assert len(task.source_dictionary) == 4 + 4**K + 1  # specials, k-mers, <mask>
    dataset = task.load_dataset("train")
    targets = [int(dataset[i]["target"]) for i in range(len(dataset))]
    assert targets == [{"0": 0, "1": 1, "2": 2, "10": 3}[label] for label in labels]
    assert dataset[0]["net_input.src_tokens"].tolist() == expected_ids(rows[0][0])


def test_label_order():
    assert sorted_labels(["1", "0", "10", "9", "-1"]) == ["-1", "0", "1", "9", "10"]
    assert sorted_labels(["promoter", "enhancer", "enhancer"]) == ["enhancer", "promoter"]
    assert sorted_labels(["1", "a"]) == ["1", "a"]


def test_non_integer_labels_and_valid_split(tmp_path, vocab_dict):
    rows = [(random_dna(9), label) for label in ["pos", "neg", "pos", "neg"]]
    train = write_tsv(tmp_path / "train.tsv", rows)
    valid = write_tsv(tmp_path / "valid.tsv", [(random_dna(9), "pos")])
    prepared = prepare_fewshot_data(train, vocab_dict, tmp_path / "out", valid=valid)
    assert prepared.labels == ["neg", "pos"]
    assert items(tmp_path / "out" / "label" / "train") == [[5, 2], [4, 2], [5, 2], [4, 2]]
    assert items(tmp_path / "out" / "label" / "valid") == [[5, 2]]


def test_frequency_ordered_dictionary_maps_by_symbol(tmp_path, train_rows):
    """A dict.txt that is not our fixed order (e.g. built by fairseq-preprocess) is looked up by symbol."""
    symbols = all_kmers(K)[::-1]
    path = tmp_path / "dict.txt"
    path.write_text("".join(f"{s} {100 - i}\n" for i, s in enumerate(symbols)) + "madeupword0000 0\n")
    vocab = load_kmer_vocabulary(path)
    assert vocab.k == K
    prepare_fewshot_data(write_tsv(tmp_path / "train.tsv", train_rows), path, tmp_path / "out")
    rank = {s: 4 + i for i, s in enumerate(symbols)}
    dna = train_rows[0][0]
    assert items(tmp_path / "out" / "input0" / "train")[0] == [rank[dna[i : i + K]] for i in range(len(dna) - K + 1)] + [2]


def test_kmer_missing_from_a_partial_dictionary(tmp_path):
    path = tmp_path / "dict.txt"
    path.write_text("AAA 1\nAAC 1\n")
    train = write_tsv(tmp_path / "train.tsv", [("AAAC", "0"), ("AACG", "1")])
    with pytest.raises(FewshotDataError, match=r"train.tsv line 3: k-mer 2 'ACG' is not in the dictionary"):
        prepare_fewshot_data(train, path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("sequence", "label", "message"),
    [
        ("ACG CGT GTAC", "1", r"line 3: ragged k-mers: k-mer 3 'GTAC' has length 4"),
        ("ACGT CGTA", "1", r"line 3: k-mer 1 'ACGT' is not in the dictionary, which holds 3-mers"),
        ("ACG CGN GNT", "1", r"line 3: k-mer 2 'CGN' is not in the dictionary"),
        ("ACG CGT TTT", "1", r"line 3: k-mer 3 'TTT' does not overlap k-mer 2 'CGT'"),
        ("ACGTNACGT", "1", r"line 3: non-ACGT letter 'N' at base 5"),
        ("ACGTRY", "1", r"line 3: non-ACGT letter 'R' at base 5"),
        ("AC", "1", r"line 3: sequence of 2 bases is shorter than k=3"),
        ("", "1", r"line 3: empty sequence"),
        ("ACGTACGT", "", r"line 3: missing label"),
        ("ACGTACGT", None, r"line 3: missing label"),
        ("ACGTACGT", "a b", r"line 3: label 'a b' contains whitespace"),
    ],
)
def test_bad_train_row_is_named_and_nothing_is_written(tmp_path, vocab_dict, sequence, label, message):
    rows = [("ACGTACGT", "0"), (sequence,) if label is None else (sequence, label), ("TTTTGGG", "1")]
    train = write_tsv(tmp_path / "train.tsv", rows)
    with pytest.raises(FewshotDataError, match=message) as info:
        prepare_fewshot_data(train, vocab_dict, tmp_path / "out")
    assert str(train) in str(info.value) and "\n" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dict.txt", "train.tsv"]  # no output, no temp


def test_test_label_never_seen_in_train(tmp_path, vocab_dict, train_rows):
    train = write_tsv(tmp_path / "train.tsv", train_rows)
    test = write_tsv(tmp_path / "test.tsv", [("ACGTA", "0"), ("ACGTA", "0"), ("CCCGT", "2")])
    with pytest.raises(FewshotDataError, match=r"test.tsv line 4: label '2' never occurs in the training file"):
        prepare_fewshot_data(train, vocab_dict, tmp_path / "out", test=test)
    assert not (tmp_path / "out").exists()


def test_bad_test_row_keeps_previous_output(tmp_path, vocab_dict, train_rows):
    train = write_tsv(tmp_path / "train.tsv", train_rows)
    out = tmp_path / "out"
    prepare_fewshot_data(train, vocab_dict, out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    test = write_tsv(tmp_path / "test.tsv", [("ACGNA", "0")])
    with pytest.raises(FewshotDataError, match="test.tsv line 2"):
        prepare_fewshot_data(train, vocab_dict, out, test=test)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dict.txt", "out", "test.tsv", "train.tsv"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("seq\tlabel\nACGT\t0\n", r"expected a header 'sequence<TAB>label'"),
        ("", r"expected a header"),
        ("sequence\tlabel\n", r"no data rows"),
        ('sequence\tlabel\n"ACGT\t0\n', r"line"),
    ],
)
def test_bad_file(tmp_path, vocab_dict, content, message):
    train = tmp_path / "train.tsv"
    train.write_text(content)
    with pytest.raises(FewshotDataError, match=message):
        prepare_fewshot_data(train, vocab_dict, tmp_path / "out")


def test_windows_line_ends_and_byte_order_mark(tmp_path, vocab_dict, train_rows):
    train = tmp_path / "train.tsv"
    train.write_bytes(("\ufeffsequence\tlabel\r\n" + "".join(f"{s}\t{label}\r\n" for s, label in train_rows))
                      .encode("utf-8"))
    prepared = prepare_fewshot_data(train, vocab_dict, tmp_path / "out")
    assert prepared.labels == ["0", "1"]
    assert items(tmp_path / "out" / "input0" / "train")[0] == expected_ids(train_rows[0][0])


def test_single_class_training_file(tmp_path, vocab_dict):
    train = write_tsv(tmp_path / "train.tsv", [("ACGTA", "1"), ("CCGTA", "1")])
    with pytest.raises(FewshotDataError, match="at least 2 classes"):
        prepare_fewshot_data(train, vocab_dict, tmp_path / "out")


def test_not_a_kmer_dictionary(tmp_path, train_rows):
    path = tmp_path / "dict.txt"
    path.write_text("AC 1\nACG 1\n▁hello 3\n")
    with pytest.raises(DictionaryError, match="not a k-mer dictionary"):
        prepare_fewshot_data(write_tsv(tmp_path / "train.tsv", train_rows), path, tmp_path / "out")


def test_refuses_to_replace_a_foreign_directory(tmp_path, vocab_dict, train_rows):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(OutputError, match="already holds files; pass --force"):
        prepare_fewshot_data(write_tsv(tmp_path / "train.tsv", train_rows), vocab_dict, out)
    assert sorted(p.name for p in out.iterdir()) == ["precious.txt"]
    prepare_fewshot_data(tmp_path / "train.tsv", vocab_dict, out, force=True)  # replaces only its own names
    assert (out / "precious.txt").read_text() == "keep me" and (out / "fewshot.json").is_file()


def test_exclude_overlap_removes_train_sequences_from_test(tmp_path, vocab_dict, train_rows):
    train = write_tsv(tmp_path / "train.tsv", train_rows)
    fresh = [(random_dna(12), str(i % 2)) for i in range(5)]
    # the same sequences as in train, written as k-mers or in lower case, must still match
    pool = [fresh[0], (kmer_string(train_rows[2][0]), "0"), fresh[1], (train_rows[5][0].lower(), "1"), *fresh[2:]]
    test = write_tsv(tmp_path / "test.tsv", pool)
    kept = prepare_fewshot_data(train, vocab_dict, tmp_path / "a", test=test, exclude_overlap=True)
    assert kept.splits["test"].rows == 5 and kept.splits["test"].excluded_overlap == 2
    assert items(tmp_path / "a" / "input0" / "test") == [expected_ids(d) for d, _ in fresh]
    everything = prepare_fewshot_data(train, vocab_dict, tmp_path / "b", test=test)
    assert everything.splits["test"].rows == 7 and everything.splits["test"].excluded_overlap == 0


def test_overlap_removal_on_the_bundled_files(tmp_path):
    """The Prom-300 / Cohn-enh protocol on real files: a bigger shot file minus the training sequences,
    checked against a plain set difference (the bundled Prom-core 50-shot file scored after 10-shot)."""
    import csv

    root = BUNDLED_FEWSHOT / "Prom-core"
    dictionary = tmp_path / "dict.txt"
    write_kmer_dictionary(dictionary, 6)
    prepared = prepare_fewshot_data(root / "10" / "train.tsv", dictionary, tmp_path / "out",
                                    test=root / "50" / "train.tsv", exclude_overlap=True)

    def sequences(path):
        with open(path, newline="") as handle:
            return [row[0] for row in list(csv.reader(handle, delimiter="\t"))[1:]]

    train = set(sequences(root / "10" / "train.tsv"))
    bigger = sequences(root / "50" / "train.tsv")
    pool = [s for s in bigger if s not in train]
    assert 0 < len(pool) <= len(bigger)
    assert prepared.splits["test"].rows == len(pool)
    assert prepared.splits["test"].excluded_overlap == len(bigger) - len(pool)
    kmers = pool[0].split()
    assert items(tmp_path / "out" / "input0" / "test")[0] == expected_ids(kmers[0] + "".join(k[-1] for k in kmers[1:]), 6)
    assert prepared.splits["train"].max_tokens == max(len(s.split()) for s in train) + 1  # k-mers + </s>


def test_cli_prepare_ok_and_one_line_error(tmp_path, vocab_dict, train_rows, capsys):
    train = write_tsv(tmp_path / "train.tsv", train_rows)
    assert main(["prepare", str(train), "--dict", str(vocab_dict), "--out", str(tmp_path / "out")]) == 0
    assert "train: 8 sequences (0: 4, 1: 4)" in capsys.readouterr().out
    bad = write_tsv(tmp_path / "bad.tsv", [*train_rows, ("ACGTNN", "0")])
    assert main(["prepare", str(bad), "--dict", str(vocab_dict), "--out", str(tmp_path / "o2")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.tsv line 10: non-ACGT letter 'N'" in err and "Traceback" not in err


@pytest.mark.parametrize(("k", "stride"), [(3, 3), (1, 1)])
def test_stride_k_and_single_nucleotide_dictionaries_tokenize_as_the_corpus(tmp_path, train_rows, k, stride):
    """Raw DNA and DNABERT-style k-mer strings alike become the corpus' tokens: non-overlapping k-mers
    from the start, the remainder as single bases (ids computed here from the symbols, not the codec)."""
    write_kmer_dictionary(tmp_path / "dict.txt", k, stride)
    symbols = KmerTokenization(k, stride).symbols
    dnas = [dna + "ACG"[: i % 3] for i, (dna, _) in enumerate(train_rows)]  # remainders of 0, 1 and 2 bases
    labels = [label for _, label in train_rows]
    rows = [(kmer_string(dna, k) if i % 2 else dna, labels[i]) for i, dna in enumerate(dnas)]
    out = tmp_path / "out"
    prepared = prepare_fewshot_data(write_tsv(tmp_path / "train.tsv", rows), tmp_path / "dict.txt", out)

    def expected(dna):
        whole = len(dna) // k * k
        pieces = [dna[i : i + k] for i in range(0, whole, k)] + list(dna[whole:])
        return [4 + symbols.index(piece) for piece in pieces] + [2]

    assert items(out / "input0" / "train") == [expected(dna) for dna in dnas]
    assert (prepared.k, prepared.stride) == (k, stride) == (PreparedData.load(out).k, PreparedData.load(out).stride)


def test_truncation_to_max_positions_counts_stride_k_tokens(tmp_path, train_rows):
    write_kmer_dictionary(tmp_path / "dict.txt", 3, 3)
    long = write_tsv(tmp_path / "train.tsv", [(random_dna(40), label) for _, label in train_rows])
    with pytest.raises(FewshotDataError, match="40 bases give 16 tokens with <s> and </s>, over --max-positions 8 "
                                               r"\(at most 18 bases\)"):
        prepare_fewshot_data(long, tmp_path / "dict.txt", tmp_path / "out", max_positions=8)
    prepare_fewshot_data(long, tmp_path / "dict.txt", tmp_path / "out", max_positions=8, truncate="start")
    assert {len(item) for item in items(tmp_path / "out" / "input0" / "train")} == {6 + 1}  # </s>; <s> comes later


@pytest.mark.parametrize("k, stride", [(1, 1), (3, 3)])
def test_a_non_overlapping_dictionary_reads_dnabert_kmer_rows_as_their_dna(tmp_path, k, stride):
    """The benchmarks ship as overlapping 6-mers: a model of single nucleotides or stride-k k-mers gets
    each row's DNA, tokenized its own way, exactly as if the row were raw DNA."""
    dictionary = tmp_path / "dict.txt"
    write_kmer_dictionary(dictionary, k, stride)
    dna = [random_dna(14) for _ in range(4)]
    as_kmers = write_tsv(tmp_path / "kmers.tsv", [(kmer_string(d, 6), str(i % 2)) for i, d in enumerate(dna)])
    as_dna = write_tsv(tmp_path / "dna.tsv", [(d, str(i % 2)) for i, d in enumerate(dna)])
    prepare_fewshot_data(as_kmers, dictionary, tmp_path / "from_kmers")
    prepare_fewshot_data(as_dna, dictionary, tmp_path / "from_dna")
    from_kmers = items(tmp_path / "from_kmers" / "input0" / "train")
    assert from_kmers == items(tmp_path / "from_dna" / "input0" / "train")
    assert [len(t) for t in from_kmers] == [14 // k + 14 % k + 1] * 4  # k-mers, remainder bases, </s>


def test_an_overlapping_dictionary_still_refuses_kmers_of_another_k(tmp_path, vocab_dict):
    rows = write_tsv(tmp_path / "train.tsv", [(kmer_string(random_dna(12), K + 1), "0"), (random_dna(12), "1")])
    with pytest.raises(FewshotDataError, match=f"which holds {K}-mers"):
        prepare_fewshot_data(rows, vocab_dict, tmp_path / "out")
