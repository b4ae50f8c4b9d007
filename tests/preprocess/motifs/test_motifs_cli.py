"""Tests of the genemask-motifs command (genemask_preprocess.motifs.cli) and its outputs."""

import csv
import errno
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from genemask_preprocess.kmers import kmer_of_code
from genemask_preprocess.motifs import cli as motifs_cli
from genemask_preprocess.motifs import report

REPO = Path(__file__).resolve().parents[3]
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


def error_line(err):
    """The error, after the scoring progress bar (which ends with a newline) if there was one."""
    return err.rsplit("motif/s]", 1)[-1].strip()


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


def test_help_and_usage_errors(capsys):
    with pytest.raises(SystemExit) as exit_info:
        motifs_cli.main(["--help"])
    assert exit_info.value.code == 0
    assert "genemask-motifs" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        motifs_cli.main(["table.tsv"])  # --out is required: argparse's usage error
    assert exit_info.value.code == 2


def test_importing_the_command_loads_neither_matplotlib_nor_biopython():
    code = (
        "import sys, genemask_preprocess.motifs.cli, genemask_preprocess.motifs.report; "
        "print(sorted(m for m in ('matplotlib', 'Bio', 'pyjaspar', 'fairseq') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_outputs_are_all_or_nothing(tmp_path, capsys, monkeypatch):
    pytest.importorskip("pyjaspar", reason="the [motifs] extra is needed")
    table = write_table(tmp_path / "t.tsv", 3)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "report.md").write_text("an earlier report")

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(report, "plot_enrichment", full_disk)  # the last of the three outputs
    code, _, err = run_cli(capsys, table, "--k", 3, "--top", 5, "--null-draws", 0, "--out", out)
    assert code == 1
    assert error_line(err) == "genemask-motifs: error: No space left on device"
    # Nothing half-written: the earlier report stands, no new matches, no temporary folder.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "t.tsv"]
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "report.md"]
    assert (out / "report.md").read_text() == "an earlier report"

    monkeypatch.undo()
    code, _, err = run_cli(capsys, table, "--k", 3, "--top", 5, "--null-draws", 0, "--out", out)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == sorted(["notes.txt", *report.OUTPUT_NAMES])
    assert (out / "notes.txt").read_text() == "mine"  # the user's own file is kept
    assert (out / "report.md").read_text().startswith("# Do top-PMI 3-mers match known TF motifs?")


def test_out_under_a_regular_file_is_a_one_line_error(tmp_path, capsys):
    pytest.importorskip("pyjaspar", reason="the [motifs] extra is needed")
    table = write_table(tmp_path / "t.tsv", 3)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out in (blocker, blocker / "out"):
        code, _, err = run_cli(capsys, table, "--k", 3, "--top", 5, "--null-draws", 0, "--out", out)
        line = error_line(err)
        named = (f"genemask-motifs: error: {blocker}", f"genemask-motifs: error: --out {blocker}")
        assert code == 1 and line.startswith(named), err  # the claim names the option, the writer the path
        assert "\n" not in line and "Traceback" not in err
