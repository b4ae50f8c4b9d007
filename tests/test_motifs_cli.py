"""Tests of the genemask-motifs command (preprocess.motifs_cli)."""

import csv
import sys
from pathlib import Path

import numpy as np
import pytest

from preprocess import motifs_cli
from preprocess.kmers import kmer_of_code

REPO = Path(__file__).resolve().parents[1]
PROM_CORE_10 = REPO / "data" / "fewshot" / "Prom-core" / "10" / "train.tsv"


def write_table(path, k, n_rows=None):
    """A PMI table of all k-mers (or the first n_rows), npmi descending in a shuffled order."""
    rng = np.random.default_rng(1)
    order = rng.permutation(4**k)[: n_rows or 4**k]
    lines = ["ngram\tn\tcount\tnaive_pmi\tpmi\tnpmi\trank"]
    for rank, code in enumerate(order, start=1):
        lines.append(
            f"{kmer_of_code(code, k)}\t{k}\t{int(rng.integers(101, 5000))}\t0.5\t0.4\t{1 - rank / 1e3:.6f}\t{rank}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def run_cli(capsys, *argv):
    code = motifs_cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_no_rows_for_k_is_a_one_line_error(tmp_path, capsys):
    table = write_table(tmp_path / "t.tsv", 3)
    code, _, err = run_cli(capsys, table, "--k", 6, "--out", tmp_path / "out")
    assert code == 1
    assert err.strip().count("\n") == 0 and "Traceback" not in err
    assert "no rows with n = 6" in err and "n = 3" in err
    assert not (tmp_path / "out").exists()


def test_missing_table_and_bad_options(tmp_path, capsys):
    code, _, err = run_cli(capsys, tmp_path / "nope.tsv", "--out", tmp_path / "out")
    assert code == 1 and "no such PMI table" in err
    table = write_table(tmp_path / "t.tsv", 3)
    code, _, err = run_cli(capsys, table, "--k", 3, "--out", tmp_path / "o", "--threshold", 1.5)
    assert code == 1 and "--threshold" in err
    code, _, err = run_cli(
        capsys, table, "--k", 3, "--out", tmp_path / "o", "--sequences", PROM_CORE_10
    )
    assert code == 1 and "go together" in err


def test_missing_pyjaspar_is_a_one_line_error_naming_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyjaspar", None)  # simulates the extra not being installed
    table = write_table(tmp_path / "t.tsv", 3)
    code, _, err = run_cli(capsys, table, "--k", 3, "--out", tmp_path / "out")
    assert code == 1
    assert err.startswith("genemask-motifs: error:") and err.strip().count("\n") == 0
    assert "pip install 'genemask-plugin[motifs]'" in err


def test_end_to_end_with_sequences(tmp_path, capsys):
    pytest.importorskip("pyjaspar", reason="the [motifs] extra is needed")
    table = write_table(tmp_path / "t.tsv", 4, n_rows=200)
    out = tmp_path / "out"
    code, stdout, err = run_cli(
        capsys,
        table,
        "--k", 4, "--top", 20, "--out", out,
        "--sequences", PROM_CORE_10, "--sequences-label", 1,
        "--background", PROM_CORE_10, "--background-label", 0,
        "--null-draws", 25,
    )  # fmt: skip
    assert code == 0, err
    assert "top-20 k-mers match a motif" in stdout
    report = (out / "report.md").read_text()
    for heading in ("## Result", "## Threshold sweep", "## Motifs most matched", "## Sequences"):
        assert heading in report
    assert "10 sequences. Background" in report  # 10 shots per class
    assert "| top-N by npmi | 20 |" in report
    assert "Count-stratified permutation test (25 draws" in report
    assert "25 count-stratified permutations of the top-N labels give" in report
    with open(out / "matches.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert len(rows) == 200
    assert [r["kmer"] for r in rows[:20]] == [
        line.split("\t")[0] for line in table.read_text().splitlines()[1:21]
    ]
    assert (
        sum("top" in r["group"] for r in rows) == 20
        and sum("random" in r["group"] for r in rows) == 20
    )
    for row in rows:
        n_motifs = int(row["n_motifs"])
        assert n_motifs == (len(row["matched_motifs"].split(",")) if row["matched_motifs"] else 0)
        assert (n_motifs > 0) == (float(row["best_score"]) >= 0.85)
    assert (out / "enrichment.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
