"""Token n-gram counts over a binarized corpus (count --tokens): exact, sharded, mergeable, scored."""

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from genemask_preprocess.corpus.cli import main as preprocess
from genemask_preprocess.formats.fairseq_dictionary import read_dictionary_symbols, write_dictionary
from genemask_preprocess.formats.indexed_dataset import IndexedDatasetWriter, read_indexed_dataset
from genemask_preprocess.formats.ngram_counts_file import load_counts, read_counts_tsv
from genemask_preprocess.formats.pmi_table import read_pmi_table
from genemask_preprocess.pmi.cli import main
from genemask_preprocess.pmi.token_ngrams import count_token_ngrams, open_token_corpus

SPECIALS = 4


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def _error(capsys, *argv):
    code, err = _run(capsys, *argv)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("genemask-pmi: error: "), err
    return lines[0]


def brute_force(data_dir, max_n):
    """Counter of token n-grams (tuples of symbols), one item at a time, never across a special."""
    symbols = read_dictionary_symbols(Path(data_dir) / "dict.txt")
    tokens, sizes = read_indexed_dataset(Path(data_dir) / "train")
    counts = Counter()
    for item in np.split(tokens.astype(int), np.cumsum(sizes)[:-1]):
        runs, run = [], []
        for token in item.tolist():  # a plain loop: the reference the vectorised count must equal
            if token < SPECIALS:
                runs.append(run)
                run = []
            else:
                run.append(symbols[token])
        runs.append(run)
        for run in runs:
            for n in range(1, max_n + 1):
                counts.update(tuple(run[i : i + n]) for i in range(len(run) - n + 1))
    return counts


def as_counter(counts):
    out = Counter()
    for n in counts.lengths:
        for name, value in zip(counts.names(n, counts.codes(n)), counts.counts(n).tolist(), strict=True):
            out[tuple(name.split(" "))] = value
    return out


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """Stride-3 and single-nucleotide corpora of a small genome (with an N gap), and a hand-made one."""
    root = tmp_path_factory.mktemp("token_corpora")
    rng = np.random.default_rng(3)
    records = ["".join(rng.choice(list("ACGT"), size)) for size in (900, 1400, 60, 2000)]
    records[1] = records[1][:600] + "N" * 20 + records[1][600:] + records[0][:200]  # a repeat: real collocations
    (root / "genome.fa").write_text("".join(f">r{i}\n{seq}\n" for i, seq in enumerate(records)))
    out = {}
    for name, flags in {"stride3": ["--k", 3, "--stride", 3], "k1": ["--k", 1]}.items():
        argv = [root / "genome.fa", *flags, "--out", root / name, "--workers", 1, "--quiet", "--valid-fraction", 0.2,
                "--min-chunk-length", 20]
        assert preprocess([str(a) for a in argv]) == 0
        out[name] = root / name
    # Hand-made: <unk> (3) inside an item, an item shorter than max_n, a symbol never used.
    hand = root / "hand"
    hand.mkdir()
    write_dictionary(hand / "dict.txt", ["x", "y", "z", "never"])
    items = [[4, 5, 4, 5, 6, 2], [4, 3, 5, 5, 2], [6, 2], [5, 4, 5, 4, 5, 4, 2]]
    with IndexedDatasetWriter(hand / "train") as writer:
        writer.add_many([np.array(item) for item in items])
    out["hand"] = hand
    return out


@pytest.mark.parametrize("name", ["stride3", "k1", "hand"])
def test_token_ngram_counts_equal_a_brute_force_count(corpora, name):
    max_n = 4
    counts = count_token_ngrams(open_token_corpus(corpora[name]), max_n, piece_tokens=97)  # many pieces
    assert counts.tokens == tuple(read_dictionary_symbols(corpora[name] / "dict.txt")[SPECIALS:])
    assert as_counter(counts) == brute_force(corpora[name], max_n)
    assert counts.lengths == [1, 2, 3, 4]
    again = count_token_ngrams(open_token_corpus(corpora[name]), max_n, workers=2, piece_tokens=1000)
    assert all(np.array_equal(a, b) for n in counts.lengths for a, b in zip(counts.tables[n], again.tables[n], strict=True))


def test_the_hand_made_corpus_counts_as_expected(corpora):
    counts = as_counter(count_token_ngrams(open_token_corpus(corpora["hand"]), 3))
    assert counts[("x", "y")] == 4 and counts[("y", "x")] == 4 and counts[("y", "y")] == 1
    assert ("x", "y") in counts and ("x", "y", "y") not in counts  # <unk> breaks the second item
    assert counts[("z",)] == 2 and ("never",) not in counts


@pytest.mark.parametrize("n_shards", [1, 3, 7])
def test_shards_merge_to_the_whole_byte_for_byte(tmp_path, corpora, capsys, n_shards):
    whole = tmp_path / "whole.npz"
    assert _run(capsys, "count", "--tokens", corpora["stride3"], "--max-n", 4, "--out", whole, "--quiet")[0] == 0
    shards = []
    for index in range(n_shards):
        shards.append(tmp_path / f"s{index}.npz")
        code, err = _run(capsys, "count", "--tokens", corpora["stride3"], "--max-n", 4, "--shard", f"{index}/{n_shards}",
                         "--out", shards[-1], "--quiet")
        assert code == 0, err
    assert "already done" in _run(capsys, "count", "--tokens", corpora["stride3"], "--max-n", 4, "--shard",
                                  f"0/{n_shards}", "--out", shards[0], "--quiet")[1]
    merged = tmp_path / "merged.npz"
    code, err = _run(capsys, "merge", *reversed(shards), "--out", merged)
    assert code == 0 and f"merged {n_shards} shards" in err and "tokens" in err
    with np.load(whole) as a, np.load(merged) as b:
        assert sorted(a.files) == sorted(b.files) and int(a["version"]) == 2
        for key in a.files:
            assert a[key].dtype == b[key].dtype and a[key].tobytes() == b[key].tobytes(), key


def test_merge_refuses_token_shards_of_another_corpus_or_base_shards(tmp_path, corpora, capsys):
    for name in ("stride3", "k1"):
        assert _run(capsys, "count", "--tokens", corpora[name], "--max-n", 2, "--shard", "0/2", "--out",
                    tmp_path / f"{name}.npz", "--quiet")[0] == 0
    assert "different inputs" in _error(capsys, "merge", tmp_path / "stride3.npz", tmp_path / "k1.npz",
                                        "--out", tmp_path / "m.npz")


def test_tsv_round_trips_and_scores_as_the_npz(tmp_path, corpora, capsys):
    npz, tsv = tmp_path / "c.npz", tmp_path / "c.tsv"
    for out, extra in ((npz, []), (tsv, ["--tsv"])):
        assert _run(capsys, "count", "--tokens", corpora["k1"], "--max-n", 3, "--out", out, "--quiet", *extra)[0] == 0
    assert tsv.read_text().startswith("token_ngram\tcount\nA\t")
    from_tsv, from_npz = read_counts_tsv(tsv), load_counts(npz)
    assert from_tsv.tokens == from_npz.tokens == ("A", "C", "G", "T")
    assert as_counter(from_tsv) == as_counter(from_npz)
    tables = []
    for source in (npz, tsv):
        tables.append(tmp_path / f"{source.name}.pmi.tsv")
        assert _run(capsys, "score", source, "--min-count", 1, "--out", tables[-1])[0] == 0
    assert tables[0].read_bytes() == tables[1].read_bytes()


def test_scores_are_levine_pmi_over_tokens(tmp_path, corpora, capsys):
    counts = tmp_path / "c.npz"
    assert _run(capsys, "count", "--tokens", corpora["stride3"], "--max-n", 3, "--out", counts, "--quiet")[0] == 0
    assert _run(capsys, "score", counts, "--min-count", 1, "--variant", "naive", "--out", tmp_path / "t.tsv")[0] == 0
    table = read_pmi_table(tmp_path / "t.tsv")
    reference = brute_force(corpora["stride3"], 3)
    total = {n: sum(v for k, v in reference.items() if len(k) == n) for n in (1, 2)}
    for ngram, count, naive in list(zip(table[2]["ngram"], table[2]["count"], table[2]["naive_pmi"], strict=True))[:20]:
        a, b = ngram.split(" ")
        expected = (math.log(reference[(a, b)] / total[2]) - math.log(reference[(a,)] / total[1])
                    - math.log(reference[(b,)] / total[1]))
        assert count == reference[(a, b)] and naive == pytest.approx(expected, abs=1e-6)
    assert all(len(ngram.split(" ")) == 3 for ngram in table[3]["ngram"])
    assert "token n-grams take levine or naive" in _error(capsys, "score", counts, "--variant", "paper",
                                                          "--out", tmp_path / "p.tsv")


def test_bad_token_requests_are_one_line(tmp_path, corpora, capsys):
    out = tmp_path / "c.npz"
    assert "at most --max-n 10 for this dictionary" in _error(capsys, "count", "--tokens", corpora["stride3"],
                                                              "--max-n", 11, "--out", out)
    assert "--both-strands applies to genomes" in _error(capsys, "count", "--tokens", corpora["k1"], "--both-strands",
                                                         "--out", out)
    assert "not both" in _error(capsys, "count", corpora["k1"] / "dict.txt", "--tokens", corpora["k1"], "--out", out)
    assert "count needs a GENOME (or --tokens DATA_DIR)" in _error(capsys, "count", "--out", out)
    assert "no such directory" in _error(capsys, "count", "--tokens", tmp_path / "none", "--out", out)
    (tmp_path / "empty").mkdir()
    assert "dict.txt" in _error(capsys, "count", "--tokens", tmp_path / "empty", "--out", out)
    broken = tmp_path / "broken"
    broken.mkdir()
    write_dictionary(broken / "dict.txt", ["x"])
    with IndexedDatasetWriter(broken / "train") as writer:
        writer.add_many([np.array([4, 9, 2])])
    assert "has id 9, beyond its dict.txt" in _error(capsys, "count", "--tokens", broken, "--out", out, "--quiet")
    assert not out.exists()
