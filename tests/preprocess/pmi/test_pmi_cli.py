import re

import numpy as np
import pytest

from genemask_preprocess.formats.ngram_counts_file import load_counts
from genemask_preprocess.formats.pmi_table import read_pmi_table
from genemask_preprocess.pmi.cli import main


@pytest.fixture()
def genome(tmp_path):
    rng = np.random.default_rng(3)
    seqs = ["".join(rng.choice(list("ACGT"), size=4000)) for _ in range(3)]
    seqs[1] = seqs[1][:1000] + "NNNNN" + seqs[1][1000:]
    path = tmp_path / "g.fa"
    path.write_text("".join(f">chr{i}\n{s}\n" for i, s in enumerate(seqs)))
    return path


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.err


def test_count_then_score_both_formats(tmp_path, genome, capsys):
    for fmt in ("npz", "tsv"):
        counts = tmp_path / f"c.{fmt}"
        extra = ["--tsv"] if fmt == "tsv" else []
        code, err = _run(capsys, "count", genome, "--max-n", 5, "--out", counts, "--workers", 2, "--quiet", *extra)
        assert code == 0, err
        assert load_counts(counts).total(1) == 12_000
        table = tmp_path / f"t.{fmt}.tsv"
        code, err = _run(capsys, "score", counts, "--out", table, "--min-count", 3, "--n", 2, 4)
        assert code == 0, err
        assert sorted(read_pmi_table(table)) == [2, 4]
    a, b = (tmp_path / "t.npz.tsv").read_text(), (tmp_path / "t.tsv.tsv").read_text()
    assert a == b
    code, err = _run(capsys, "score", tmp_path / "c.npz", "--out", tmp_path / "k.tsv", "--k", 3, "--variant", "paper")
    assert code == 0, err
    assert sorted(read_pmi_table(tmp_path / "k.tsv")) == [3]


def test_both_strands_doubles_counts(tmp_path, genome, capsys):
    out = tmp_path / "c.npz"
    assert _run(capsys, "count", genome, "--max-n", 2, "--out", out, "--both-strands", "--quiet")[0] == 0
    counts = load_counts(out)
    assert counts.both_strands and counts.total(1) == 24_000
    assert counts.count_of("A") == counts.count_of("T")


def test_help(capsys):
    for argv in (["--help"], ["count", "--help"], ["score", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 0
    assert "--both-strands" in capsys.readouterr().out


def _error(capsys, *argv):
    code, err = _run(capsys, *argv)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("genemask-pmi: error: "), err
    return lines[0]


def test_bad_genomes(tmp_path, capsys):
    out = tmp_path / "c.npz"
    assert "no such file" in _error(capsys, "count", tmp_path / "none.fa", "--out", out)
    (tmp_path / "empty.fa").write_text("")
    assert "file is empty" in _error(capsys, "count", tmp_path / "empty.fa", "--out", out)
    (tmp_path / "bin.fa").write_bytes(b"\x00\x01\x02\xff" * 10)
    assert "binary" in _error(capsys, "count", tmp_path / "bin.fa", "--out", out)
    (tmp_path / "dup.fa").write_text(">a\nACGT\n>a\nACGT\n")
    assert "duplicate record name" in _error(capsys, "count", tmp_path / "dup.fa", "--out", out, "--quiet")
    assert not out.exists()


def test_bad_arguments(tmp_path, genome, capsys):
    assert "--max-n must be an integer from 1 to 31" in _error(
        capsys, "count", genome, "--max-n", 40, "--out", tmp_path / "c.npz"
    )
    (tmp_path / "file").write_text("")
    assert "cannot create directory" in _error(capsys, "count", genome, "--out", tmp_path / "file" / "c.npz")
    with pytest.raises(SystemExit) as usage:  # a usage error (argparse), as for the other options' types
        main(["count", str(genome), "--out", str(tmp_path / "c.npz"), "--workers", "0"])
    assert usage.value.code == 2
    assert "argument --workers: must be at least 1, got 0" in capsys.readouterr().err


def test_count_creates_the_output_directory(tmp_path, genome):
    out = tmp_path / "new" / "dir" / "c.npz"
    assert main(["count", str(genome), "--max-n", "3", "--out", str(out), "--quiet"]) == 0
    assert out.exists()


def test_max_n_beyond_memory_is_refused(tmp_path, genome, capsys, monkeypatch):
    import genemask_preprocess.pmi.memory_plan as module
    from genemask_preprocess.resource_limits import MemoryLimit

    limit = MemoryLimit(250 * 2**20, "cgroup memory.max 0.5 GiB", per_process=False)
    monkeypatch.setattr(module, "memory_limits", lambda: [limit])
    line = _error(capsys, "count", genome, "--max-n", 12, "--out", tmp_path / "c.npz", "--quiet")
    assert re.search(r"--max-n 12 needs about [\d.]+ [GM]iB .* only 200 MiB is available "
                     r"\(cgroup memory.max 0.5 GiB\); --max-n \d+ fits", line)


@pytest.mark.parametrize(
    "body,message",
    [
        ("ngram\tcount\nA\t5\nC\t5\nAC\t3\nACGT\t2\n", "4-grams (first at row 5) but no 3-grams"),
        ("ngram\tcount\nA\t5\nC\t-5\n", "row 3: count -5 is negative"),
        ("ngram\tcount\nA\t5\nC\t5.0\n", "row 3: count '5.0' is not an integer"),
        ("ngram\tcount\nA\t5\nCN\t5\n", "row 3: 'CN' is not an A/C/G/T n-gram"),
        ("sequence\tlabel\nACGT\t1\n", "row 1: expected the header 'ngram<TAB>count'"),
    ],
)
def test_bad_counts(tmp_path, capsys, body, message):
    counts = tmp_path / "c.tsv"
    counts.write_text(body)
    out = tmp_path / "t.tsv"
    assert message in _error(capsys, "score", counts, "--out", out, "--min-count", 1)
    assert not out.exists()


def test_score_errors(tmp_path, genome, capsys):
    assert "no such file" in _error(capsys, "score", tmp_path / "none.npz", "--out", tmp_path / "t.tsv")
    counts = tmp_path / "c.npz"
    _run(capsys, "count", genome, "--max-n", 3, "--out", counts, "--quiet")
    assert "COUNTS has no 6-grams (it has lengths 1, 2, 3)" in _error(
        capsys, "score", counts, "--out", tmp_path / "t.tsv", "--k", 6
    )
    assert "PMI needs n >= 2" in _error(capsys, "score", counts, "--out", tmp_path / "t.tsv", "--n", 1)
    with pytest.raises(SystemExit) as exit_info:
        main(["score", str(counts), "--out", str(tmp_path / "t.tsv"), "--variant", "true"])
    assert exit_info.value.code == 2
    capsys.readouterr()
    assert "--min-count must be a positive integer" in _error(
        capsys, "score", counts, "--out", tmp_path / "t.tsv", "--min-count", 0
    )


def test_bundled_table_is_reproducible(tmp_path, capsys):
    """data/pmi/ must be what the documented commands produce from the bundled genome."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[3]
    counts, table = tmp_path / "c.npz", tmp_path / "t.tsv"
    genome = repo / "data" / "genomes" / "human_fewshot_fragments.fa.gz"
    assert _run(capsys, "count", genome, "--max-n", 6, "--out", counts, "--quiet")[0] == 0
    assert _run(capsys, "score", counts, "--out", table, "--n", 3, 4, 5, 6)[0] == 0
    assert table.read_bytes() == (repo / "data" / "pmi" / "human_fragments.pmi.tsv").read_bytes()
    bundled = load_counts(repo / "data" / "pmi" / "human_fragments.counts.npz")
    fresh = load_counts(counts)
    assert bundled.lengths == fresh.lengths
    for n in fresh.lengths:
        np.testing.assert_array_equal(bundled.counts(n), fresh.counts(n))
