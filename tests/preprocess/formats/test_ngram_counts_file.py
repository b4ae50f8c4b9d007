import numpy as np
import pytest

from genemask_preprocess.formats.ngram_counts_file import (
    DENSE_MAX_N,
    CountsError,
    NgramCounts,
    load_counts,
    read_counts_tsv,
    save_counts,
    write_counts_tsv,
)
from genemask_preprocess.kmers import codes_of_kmers, kmers_of_codes


def _random_counts(lengths, seed=0, both_strands=False):
    """Counts as a genome gives them (each n-gram at least as frequent as its prefix and suffix):
    the n-grams of three random sequences, weighted 1, 7 and 300 so the counts span dtypes."""
    rng = np.random.default_rng(seed)
    found: dict[int, dict[int, int]] = {n: {} for n in lengths}
    for weight in (1, 7, 300):
        sequence = "".join(rng.choice(list("ACGT"), size=400))
        for n in lengths:
            for i in range(len(sequence) - n + 1):
                code = int(codes_of_kmers([sequence[i : i + n]], n)[0])
                found[n][code] = found[n].get(code, 0) + weight
    tables = {}
    for n, table in found.items():
        codes = np.array(sorted(table), dtype=np.int64)
        tables[n] = (codes, np.array([table[c] for c in codes.tolist()], dtype=np.int64))
    return NgramCounts(tables, both_strands=both_strands)


def _as_dict(counts: NgramCounts):
    out = {}
    for n in counts.lengths:
        out.update(zip(kmers_of_codes(counts.codes(n), n), counts.counts(n).tolist(), strict=True))
    return out


@pytest.mark.parametrize("max_n", [5, DENSE_MAX_N + 1])
def test_binary_and_tsv_round_trip(tmp_path, max_n):
    counts = _random_counts(range(1, max_n + 1), seed=max_n, both_strands=True)
    save_counts(counts, tmp_path / "c.npz")
    write_counts_tsv(counts, tmp_path / "c.tsv")
    for path in (tmp_path / "c.npz", tmp_path / "c.tsv"):
        back = load_counts(path)
        assert back.lengths == list(range(1, max_n + 1))
        assert _as_dict(back) == _as_dict(counts)
    assert load_counts(tmp_path / "c.npz").both_strands
    lines = (tmp_path / "c.tsv").read_text().splitlines()
    assert lines[0] == "ngram\tcount"
    assert len(lines) - 1 == sum(len(counts.codes(n)) for n in counts.lengths)


def test_npz_layout_is_the_documented_one(tmp_path):
    counts = _random_counts([1, 2, DENSE_MAX_N + 1], seed=3)
    counts.tables[1] = (np.arange(4), np.array([70_000, 1, 2, 3]))
    save_counts(counts, tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz") as data:
        assert str(data["format"]) == "genemask-ngram-counts" and int(data["version"]) == 1
        assert int(data["max_n"]) == DENSE_MAX_N + 1 and not bool(data["both_strands"])
        # every single base: dense; 300 of 4^13: sparse, uint32 codes
        assert data["dense_1"].dtype == np.uint32 and len(data["dense_1"]) == 4
        sparse = f"codes_{DENSE_MAX_N + 1}"
        assert data[sparse].dtype == np.uint32 and (np.diff(data[sparse].astype(np.int64)) > 0).all()
        assert data[f"counts_{DENSE_MAX_N + 1}"].dtype == np.uint16


def test_count_of_and_lookup():
    counts = NgramCounts({2: (np.array([1, 6], np.int64), np.array([5, 7], np.int64))})  # AC, CG
    assert counts.count_of("AC") == 5 and counts.count_of("cg") == 7 and counts.count_of("AA") == 0
    assert counts.count_of("AN") == 0  # a window with a non-ACGT letter is never counted
    np.testing.assert_array_equal(counts.lookup(2, np.array([6, 0, 15, 1])), [7, 0, 0, 5])
    assert counts.total(2) == 12 and counts.dense(2)[6] == 7


def test_writers_leave_nothing_behind_on_failure(tmp_path):
    counts = _random_counts([1, 2])
    (tmp_path / "dir.npz").mkdir()
    with pytest.raises(Exception, match="is a directory"):
        save_counts(counts, tmp_path / "dir.npz")
    write_counts_tsv(counts, tmp_path / "new" / "c.tsv")  # a missing folder is created
    assert (tmp_path / "new" / "c.tsv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.npz", "new"]
    assert [p.name for p in (tmp_path / "new").iterdir()] == ["c.tsv"]


@pytest.mark.parametrize(
    "body,message",
    [
        ("ngram\tcount\nAC\t3\nAN\t2\n", "row 3: 'AN' is not an A/C/G/T n-gram"),
        ("ngram\tcount\nAC\t-1\n", "row 2: count -1 is negative"),
        ("ngram\tcount\nAC\t2.5\n", "row 2: count '2.5' is not an integer"),
        ("ngram\tcount\nAC\t2\nCA\t1\nAC\t4\n", "row 4: duplicate n-gram 'AC'"),
        ("kmer\tn\nAC\t2\n", "row 1: expected the header"),
        ("ngram\tcount\nAC\n", "row 2: expected 'ngram<TAB>count'"),
        ("ngram\tcount\n", "no n-gram rows"),
    ],
)
def test_bad_counts_tsv(tmp_path, body, message):
    path = tmp_path / "bad.tsv"
    path.write_text(body)
    with pytest.raises(CountsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_counts_tsv(path)


def test_bad_counts_files(tmp_path):
    with pytest.raises(CountsError, match="no such file"):
        load_counts(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(CountsError, match="not a genemask-pmi COUNTS file"):
        load_counts(tmp_path / "other.npz")
    (tmp_path / "bin.tsv").write_bytes(b"ngram\tcount\n\xff\xfe\n")
    with pytest.raises(CountsError, match="binary or non-ASCII"):
        load_counts(tmp_path / "bin.tsv")


def _token_counts():
    """Token n-grams of three symbols (one of two letters), as count --tokens gives them."""
    tokens = ("AAC", "G", "TTTT")
    items = [[0, 1, 1, 2, 0, 1], [2, 2, 0], [1, 0, 1, 2]]
    found: dict[int, dict[int, int]] = {1: {}, 2: {}, 3: {}}
    for item in items:
        for n in found:
            for i in range(len(item) - n + 1):
                code = int(sum(d * 3 ** (n - 1 - j) for j, d in enumerate(item[i : i + n])))
                found[n][code] = found[n].get(code, 0) + 1
    tables = {n: (np.array(sorted(t), np.int64), np.array([t[c] for c in sorted(t)], np.int64)) for n, t in found.items()}
    return NgramCounts(tables, tokens=tokens)


def test_token_counts_round_trip_in_both_formats_and_say_what_they_are(tmp_path):
    counts = _token_counts()
    assert counts.names(2, np.array([0 * 3 + 1])) == ["AAC G"] and counts.count_of("G G") == 1
    assert counts.count_of("AAC TTTT") == 0 and counts.count_of("A C") == 0
    save_counts(counts, tmp_path / "c.npz")
    write_counts_tsv(counts, tmp_path / "c.tsv")
    with np.load(tmp_path / "c.npz") as data:
        assert int(data["version"]) == 2 and str(data["tokens"]) == '["AAC", "G", "TTTT"]'
        assert not [key for key in data.files if key.startswith("dense_")]  # token counts are stored sparse
    lines = (tmp_path / "c.tsv").read_text().splitlines()
    assert lines[:4] == ["token_ngram\tcount", "AAC\t4", "G\t5", "TTTT\t4"] and "AAC G TTTT\t1" in lines
    for path in (tmp_path / "c.npz", tmp_path / "c.tsv"):
        back = load_counts(path)
        assert back.tokens == counts.tokens and back.lengths == [1, 2, 3]
        for n in back.lengths:
            assert np.array_equal(back.codes(n), counts.codes(n)) and np.array_equal(back.counts(n), counts.counts(n))


@pytest.mark.parametrize(("body", "message"), [
    ("token_ngram\tcount\nA B\t2\n", "token 'A' is not among the 1-grams listed before it"),
    ("token_ngram\tcount\nA\t2\nA\t3\n", "row 3: duplicate n-gram 'A'"),
    ("token_ngram\tcount\nA\t2\nA  A\t1\n", "is not symbols separated by single spaces"),
    ("token_ngram\tcount\nA\t2\nB\t1\nA B\t5\n", "inconsistent counts: A B is counted 5 times"),
    ("token_ngram\tcount\nA\tx\n", "row 2: expected 'token_ngram<TAB>count'"),
    ("kmer\tcount\nA\t2\n", "expected the header 'ngram<TAB>count' \\(or 'token_ngram<TAB>count'\\)"),
])
def test_bad_token_counts_tsv(tmp_path, body, message):
    (tmp_path / "c.tsv").write_text(body)
    with pytest.raises(CountsError, match=message):
        load_counts(tmp_path / "c.tsv")
