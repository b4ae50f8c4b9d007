import csv
import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from genemask_preprocess.formats.ngram_counts_file import NgramCounts, read_counts_tsv
from genemask_preprocess.kmers import kmers_of_codes
from genemask_preprocess.pmi.ngram_counts import count_ngrams
from genemask_preprocess.pmi.scores import PMIError, frequency_discount, score_pmi

DATA = Path(__file__).resolve().parents[2] / "data"


def _counts(table: dict[str, int]) -> NgramCounts:
    tables = {}
    for n in sorted({len(g) for g in table}):
        names = sorted(g for g in table if len(g) == n)
        codes = np.array([int("".join(str("ACGT".index(b)) for b in g), 4) for g in names], dtype=np.int64)
        tables[n] = (codes, np.array([table[g] for g in names], dtype=np.int64))
    return NgramCounts(tables)


def _row(scores, ngram):
    i = scores.ngrams.index(ngram)
    return {k: getattr(scores, k)[i] for k in ("count", "naive_pmi", "pmi", "npmi", "rank")}


TINY = {
    "A": 40, "C": 20, "G": 20, "T": 20,
    "AA": 10, "AC": 20, "CA": 5, "CG": 8, "GT": 6,
    "AAC": 8, "ACA": 4, "CGT": 6,
}  # fmt: skip


def test_hand_computed_levine_values():
    scores = score_pmi(_counts(TINY), min_count=2)
    n1, n2, n3 = 100, 49, 18
    # AAC: splits A|A|C, A|AC, AA|C; p(s) = f(s)/N_|s|
    lp = {g: math.log(f / {1: n1, 2: n2, 3: n3}[len(g)]) for g, f in TINY.items()}
    naive = lp["AAC"] - 2 * lp["A"] - lp["C"]
    pmi = min(naive, lp["AAC"] - lp["A"] - lp["AC"], lp["AAC"] - lp["AA"] - lp["C"])
    row = _row(scores[3], "AAC")
    assert row["naive_pmi"] == pytest.approx(naive, abs=1e-12)
    assert row["pmi"] == pytest.approx(pmi, abs=1e-12)
    assert row["npmi"] == pytest.approx(pmi * math.log(8) / (math.log(8) + math.log(2)), abs=1e-12)
    # two-grams: PMI_n has one split, so it equals naive PMI
    ac = _row(scores[2], "AC")
    assert ac["pmi"] == pytest.approx(lp["AC"] - lp["A"] - lp["C"], abs=1e-12) == ac["naive_pmi"]
    # rank 1 = highest npmi within n; the 3-grams are ranked on their own
    assert sorted(scores[3].rank.tolist()) == [1, 2, 3]
    best = scores[3].ngrams[int(np.argmax(scores[3].npmi))]
    assert _row(scores[3], best)["rank"] == 1


def test_min_count_leaves_rare_ngrams_out():
    scores = score_pmi(_counts(TINY), min_count=6)
    assert set(scores[3].ngrams) == {"AAC", "CGT"}
    assert "CA" not in scores[2].ngrams and "CG" in scores[2].ngrams


def test_discount():
    assert frequency_discount(np.array([101]), 101)[0] == pytest.approx(0.5)
    assert frequency_discount(np.array([101**3]), 101)[0] == pytest.approx(0.75)
    assert frequency_discount(np.array([1]), 1)[0] == 0.5


def test_naive_variant_ranks_by_naive_pmi():
    scores = score_pmi(_counts(TINY), variant="naive", min_count=2)[3]
    assert np.allclose(scores.pmi, scores.naive_pmi)
    assert np.allclose(scores.npmi, scores.naive_pmi * frequency_discount(scores.count, 2))


def test_paper_variant_hand_computed():
    table = dict(TINY, AACG=3, ACGT=3, AACGT=3, CGTA=1, ACG=5, AACGTA=1)
    table.update({"TA": 1, "GTA": 1})
    counts = _counts(table)
    scores = score_pmi(counts, variant="paper", min_count=1, lengths=[4, 5])
    d = 2 * 100  # one shared denominator: twice the single-base total
    lp = {g: math.log(f / d) for g, f in table.items()}
    # AACGT: 1/2-piece segmentations only, then the two-part splits without the last one
    w = "AACGT"
    segs = [
        [w[:1], w[1:2], w[2:3], w[3:4], w[4:]], [w[:2], w[2:3], w[3:4], w[4:]],
        [w[:1], w[1:3], w[3:4], w[4:]], [w[:1], w[1:2], w[2:4], w[4:]],
        [w[:1], w[1:2], w[2:3], w[3:5]], [w[:2], w[2:4], w[4:]], [w[:2], w[2:3], w[3:5]],
        [w[:1], w[1:3], w[3:5]],
    ]  # fmt: skip
    dp = min(lp[w] - sum(lp.get(s, -math.inf) for s in seg) for seg in segs)
    two_part = min(lp[w] - lp[w[:i]] - lp[w[i:]] for i in (1, 2, 3))
    scores5 = scores[5]
    i = scores5.ngrams.index(w)
    assert scores5.pmi[i] == pytest.approx(dp, abs=1e-12)
    assert scores5.two_part_pmi[i] == pytest.approx(two_part, abs=1e-12)
    assert scores5.naive_pmi[i] == pytest.approx(lp[w] - sum(lp[b] for b in w), abs=1e-12)


def _all_segmentations(n, max_piece=None):
    for cuts in itertools.product([False, True], repeat=n - 1):
        if not any(cuts):
            continue
        bounds = [0] + [i + 1 for i, c in enumerate(cuts) if c] + [n]
        pieces = list(zip(bounds[:-1], bounds[1:], strict=True))
        if max_piece is None or all(j - i <= max_piece for i, j in pieces):
            yield pieces


@pytest.fixture(scope="module")
def random_counts(tmp_path_factory):
    rng = np.random.default_rng(5)
    # A skewed Markov chain, so segment probabilities differ and ties are rare.
    trans = rng.dirichlet(np.ones(4) * 0.7, size=4)
    seq = [0]
    for _ in range(12_000):
        seq.append(rng.choice(4, p=trans[seq[-1]]))
    path = tmp_path_factory.mktemp("pmi") / "markov.fa"
    path.write_text(">m\n" + "".join("ACGT"[b] for b in seq) + "\n")
    return count_ngrams(path, 8)


@pytest.mark.parametrize("variant", ["levine", "paper"])
def test_dp_matches_enumeration_of_all_segmentations(random_counts, variant):
    counts = random_counts
    scores = score_pmi(counts, variant=variant, min_count=1)
    if variant == "paper":
        log_d = {m: math.log(2 * counts.total(1)) for m in counts.lengths}
    else:
        log_d = {m: math.log(counts.total(m)) for m in counts.lengths}
    checked = 0
    for n in range(2, 9):
        s = scores[n]
        names = s.ngrams
        log_p = {}
        for m in range(1, n + 1):
            for g, f in zip(kmers_of_codes(counts.codes(m), m), counts.counts(m).tolist(), strict=True):
                log_p[g] = math.log(f) - log_d[m]
        for i, w in enumerate(names):
            segs = _all_segmentations(n, max_piece=2 if variant == "paper" else None)
            expected = min(log_p[w] - sum(log_p[w[a:b]] for a, b in seg) for seg in segs)
            assert s.pmi[i] == pytest.approx(expected, abs=1e-9), (w, variant)
            if variant == "paper":
                splits = range(1, n - 1) if n > 2 else [1]
                two = min(log_p[w] - log_p[w[:k]] - log_p[w[k:]] for k in splits)
                assert s.two_part_pmi[i] == pytest.approx(two, abs=1e-9)
            checked += 1
    assert checked > 5_000


def test_missing_lengths_are_named():
    table = {"A": 5, "C": 5, "AC": 3, "ACGT": 2}
    with pytest.raises(PMIError, match="has 4-grams .* but no 3-grams"):
        score_pmi(_counts(table), min_count=1)
    with pytest.raises(PMIError, match="no 2-grams"):
        score_pmi(_counts({"A": 1, "ACG": 1}), variant="paper", min_count=1)
    with pytest.raises(PMIError, match="no 5-grams"):
        score_pmi(_counts(TINY), lengths=[5])
    with pytest.raises(PMIError, match="unknown variant"):
        score_pmi(_counts(TINY), variant="true")
    with pytest.raises(PMIError, match="--min-count"):
        score_pmi(_counts(TINY), min_count=0)


def test_missing_lengths_name_the_tsv_row(tmp_path):
    path = tmp_path / "c.tsv"
    path.write_text("ngram\tcount\nA\t5\nC\t4\nAC\t3\nACGTAC\t2\n")
    with pytest.raises(PMIError, match=r"6-grams \(first at row 5\) but no 5-grams"):
        score_pmi(read_counts_tsv(path), min_count=1)


def test_planted_motifs_rank_top_by_npmi(tmp_path):
    rng = np.random.default_rng(2023)
    motifs = ["TGACGTCATG", "CCAATGGCTA", "GATTACAGGT"]
    parts = []
    for _ in range(3000):
        parts.append("".join(rng.choice(list("ACGT"), size=int(rng.integers(150, 450)))))
        parts.append(motifs[int(rng.integers(len(motifs)))])
    genome = "".join(parts)
    path = tmp_path / "planted.fa"
    path.write_text(">planted\n" + genome + "\n")
    counts = count_ngrams(path, 6)
    scores = score_pmi(counts, lengths=[6])[6]
    ranks = dict(zip(scores.ngrams, scores.rank.tolist(), strict=True))
    inside = {m[i : i + 6] for m in motifs for i in range(len(m) - 5)}
    assert all(ranks[g] <= 0.05 * len(ranks) for g in inside), {g: ranks[g] for g in inside}
    # Background 6-mers (no 4-mer in common with a motif) never reach the motif tier,
    # and as a group they are spread over the table as chance would have it.
    motif_4mers = {m[i : i + 4] for m in motifs for i in range(len(m) - 3)}
    background = [g for g in ranks if not any(g[i : i + 4] in motif_4mers for i in range(3))]
    assert len(background) > 3000
    assert min(ranks[g] for g in background) > max(ranks[g] for g in inside)
    assert 0.3 * len(ranks) < np.median([ranks[g] for g in background]) < 0.7 * len(ranks)
    in_top = np.mean([ranks[g] <= 0.05 * len(ranks) for g in background])
    assert in_top < 0.08


def test_paper_variant_reproduces_published_table():
    """The authors' published 6-mer table (Data-A, top 139 and bottom 28 rows), see tests/data/README.md."""
    with open(DATA / "genemask_published_6mers.csv") as handle:
        rows = list(csv.DictReader(handle))
    counts = read_counts_tsv(DATA / "genemask_published_6mers.counts.tsv")
    scores = score_pmi(counts, variant="paper", min_count=101, lengths=[6])[6]
    index = {g: i for i, g in enumerate(scores.ngrams)}
    at = np.array([index[r["ngram"]] for r in rows])
    for ours, theirs in (("naive_pmi", "naive.pmi"), ("pmi", "dp.true.pmi"), ("npmi", "norm_dp_true_pmi")):
        expected = np.array([float(r[theirs]) for r in rows])
        assert np.abs(getattr(scores, ours)[at] - expected).max() < 1e-3, ours
    published_rank = np.array([int(r["norm_pmi_rank_rel"]) for r in rows])
    assert (np.argsort(scores.rank[at]) == np.argsort(published_rank)).all()
    assert kmers_of_codes(scores.codes[np.argsort(scores.rank)][:1], 6) == ["CCTCCC"]
    cctccc = index["CCTCCC"]
    assert round(scores.pmi[cctccc], 3) == 2.849 and round(scores.npmi[cctccc], 3) == 2.103
    assert round(scores.pmi[index["AAAAAA"]], 3) == 2.633
