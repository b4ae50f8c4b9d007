from collections import Counter

import numpy as np
import pytest

from genemask_preprocess.formats.genome import GenomeInputError
from genemask_preprocess.formats.ngram_counts_file import DENSE_MAX_N, CountsError, NgramCounts
from genemask_preprocess.kmers import kmers_of_codes
from genemask_preprocess.pmi.memory_plan import check_memory
from genemask_preprocess.pmi.ngram_counts import count_ngrams, plan_count
from genemask_preprocess.resource_limits import MemoryLimit

_COMPLEMENT = str.maketrans("ACGT", "TGCA")


def _random_records(seed, count=6, max_len=400):
    rng = np.random.default_rng(seed)
    letters = np.array(list("ACGTacgtNRY"))
    weights = np.array([20, 20, 20, 20, 4, 4, 4, 4, 2, 1, 1], dtype=float)
    return [
        "".join(rng.choice(letters, size=int(rng.integers(0, max_len)), p=weights / weights.sum()))
        for _ in range(count)
    ]


def _write_fasta(path, records):
    with open(path, "w") as handle:
        for i, seq in enumerate(records):
            handle.write(f">rec{i}\n")
            for start in range(0, len(seq), 60):
                handle.write(seq[start : start + 60] + "\n")
            if not seq:
                handle.write("\n")
    return path


def _brute_force(records, max_n, both_strands):
    counts = Counter()
    for seq in records:
        seq = seq.upper()
        strands = [seq, seq.translate(_COMPLEMENT)[::-1]] if both_strands else [seq]
        for strand in strands:
            for n in range(1, max_n + 1):
                for i in range(len(strand) - n + 1):
                    window = strand[i : i + n]
                    if set(window) <= set("ACGT"):
                        counts[window] += 1
    return dict(counts)


def _as_dict(counts: NgramCounts):
    out = {}
    for n in counts.lengths:
        for ngram, value in zip(kmers_of_codes(counts.codes(n), n), counts.counts(n).tolist(), strict=True):
            out[ngram] = value
    return out


@pytest.mark.parametrize("both_strands", [False, True])
@pytest.mark.parametrize(
    "max_n,workers,piece_bases",
    [(1, 1, None), (4, 1, None), (6, 2, 37), (7, 1, 5), (DENSE_MAX_N + 2, 2, 50)],
)
def test_counts_match_brute_force(tmp_path, max_n, workers, piece_bases, both_strands):
    records = _random_records(seed=max_n)
    fasta = _write_fasta(tmp_path / "g.fa", records)
    got = count_ngrams(fasta, max_n, both_strands=both_strands, workers=workers, piece_bases=piece_bases)
    assert got.lengths == list(range(1, max_n + 1))
    assert _as_dict(got) == _brute_force(records, max_n, both_strands)
    assert got.both_strands == both_strands


def test_counts_do_not_depend_on_workers_or_pieces(tmp_path):
    fasta = _write_fasta(tmp_path / "g.fa", _random_records(seed=7, count=12, max_len=3000))
    base = _as_dict(count_ngrams(fasta, 8))
    assert _as_dict(count_ngrams(fasta, 8, workers=2, piece_bases=100)) == base
    assert _as_dict(count_ngrams(fasta, 8, workers=2, piece_bases=7)) == base


def test_windows_with_non_acgt_are_not_counted(tmp_path):
    fasta = _write_fasta(tmp_path / "g.fa", ["ACGNACG", "acgt"])
    got = _as_dict(count_ngrams(fasta, 4))
    assert got["ACG"] == 3 and got["CGT"] == 1 and got["ACGT"] == 1
    assert "GNA" not in got and not any(len(g) == 4 and g != "ACGT" for g in got)


def test_progress_reports_every_base(tmp_path):
    records = _random_records(seed=3, count=5, max_len=500)
    fasta = _write_fasta(tmp_path / "g.fa", records)
    seen = []
    count_ngrams(fasta, 3, progress=seen.append, piece_bases=64)
    assert sum(seen) == sum(len(r) for r in records)


def test_tsv_genome_input(tmp_path):
    path = tmp_path / "seqs.tsv"
    path.write_text("sequence\tlabel\nACGTA CGTAC\t1\nAACCG\t0\n")
    got = _as_dict(count_ngrams(path, 2))
    assert got == _brute_force(["ACGTAC", "AACCG"], 2, False)


def test_bad_genome_and_max_n(tmp_path):
    with pytest.raises(GenomeInputError, match="no such file"):
        count_ngrams(tmp_path / "nope.fa", 3)
    (tmp_path / "empty.fa").write_text("")
    with pytest.raises(GenomeInputError, match="empty"):
        count_ngrams(tmp_path / "empty.fa", 3)
    fasta = _write_fasta(tmp_path / "g.fa", ["ACGT"])
    for bad in (0, 32, 2.5):
        with pytest.raises(CountsError, match="--max-n must be an integer"):
            count_ngrams(fasta, bad)
    for bad in (0, -1, 1.5):
        with pytest.raises(CountsError, match="--workers must be at least 1"):
            count_ngrams(fasta, 3, workers=bad)


def test_plan_checks_once_and_sizes_the_pieces(tmp_path):
    fasta = _write_fasta(tmp_path / "g.fa", ["ACGT" * 100])
    plan = plan_count(fasta, 5, workers=2)
    assert (plan.max_n, plan.workers, plan.both_strands) == (5, 2, False)
    assert plan.total_bases == fasta.stat().st_size  # no .fai: guessed from the file size
    assert plan.piece_bases == 1 << 20  # clipped up to 1 Mbp for a small genome
    assert plan_count(fasta, 5, piece_bases=7).piece_bases == 7


def test_memory_refusal_names_the_figures():
    free = [MemoryLimit(4 * 2**30, "available memory (MemAvailable)", per_process=False)]
    check_memory(10, 3_100_000_000, 2, False, free)  # the human genome at n=10 fits in 4 GiB
    with pytest.raises(CountsError, match=r"--max-n 16 needs about [\d.]+ GiB .* only 3.2 GiB is available "
                                          r"\(available memory \(MemAvailable\)\); --max-n \d+ fits"):
        check_memory(16, 3_100_000_000, 2, False, free)


def test_memory_refusal_names_the_tightest_limit_and_the_option_that_helps():
    """An address-space limit (ulimit -v) binds each process; a cgroup's, all of them together."""
    roomy = MemoryLimit(64 * 2**30, "available memory (MemAvailable)", per_process=False)
    per_process = MemoryLimit(int(0.3 * 2**30), "address-space limit (ulimit -v) 0.4 GiB", per_process=True)
    with pytest.raises(CountsError, match=r"--max-n 12 .* \(address-space limit \(ulimit -v\) 0.4 GiB\); --max-n 1[01] fits"):
        check_memory(12, 10_000, 2, False, [per_process, roomy])
    # Per process, more workers cost nothing; shared, they do, and then --workers is what to change.
    check_memory(10, 10_000, 64, False, [per_process, roomy])
    shared = MemoryLimit(3 * 2**30, "cgroup memory.max 3.0 GiB", per_process=False)
    with pytest.raises(CountsError, match=r"with 64 worker\(s\).*\(cgroup memory.max 3.0 GiB\); --workers \d+ fits"):
        check_memory(10, 3_100_000_000, 64, False, [shared, roomy])
