"""``genemask-validate``: one row per checkpoint and mask set, the floor beside them, one-line errors."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from genemask_plugin.validation.cli import COLUMNS, main
from genemask_preprocess.corpus.unigram_floor import unigram_floor

BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_scores_every_checkpoint_under_every_mask_set(skewed_corpus, checkpoints, tmp_path, capsys):
    genemask, kmer_span = checkpoints["genemask"], checkpoints["kmer_span"]
    code = main([f"gm={genemask}", str(kmer_span), "--data", str(skewed_corpus), "--cpu", "--batch-size", "4",
                 "--csv", str(tmp_path / "out" / "losses.csv"), "--json", str(tmp_path / "losses.json")])
    assert code == 0
    rows = list(csv.DictReader((tmp_path / "out" / "losses.csv").open()))
    assert list(rows[0]) == list(COLUMNS)
    assert [(r["checkpoint"], r["masks"]) for r in rows] == [
        ("gm", "random"), (str(kmer_span), "random"), ("gm", "kmer_span"), (str(kmer_span), "kmer_span")]
    assert [(r["trained_strategy"], r["trained_seed"], r["updates"]) for r in rows[:2]] == [
        ("genemask", "5", "3"), ("kmer_span", "5", "4")]
    for pair in (rows[:2], rows[2:]):  # the same masks for both checkpoints, other masks for the other set
        assert pair[0]["masks_sha256"] == pair[1]["masks_sha256"] and pair[0]["masked_tokens"] == pair[1]["masked_tokens"]
    assert rows[0]["masks_sha256"] != rows[2]["masks_sha256"]
    floor = unigram_floor(skewed_corpus)
    assert {float(r["floor_bits"]) for r in rows} == {round(floor.cross_entropy_bits, 6)}
    assert all(9 < float(r["loss_bits"]) < 13 and 0 <= float(r["accuracy"]) <= 1 for r in rows)
    report = json.loads((tmp_path / "losses.json").read_text())
    assert report["floor"]["cross_entropy_bits"] == floor.cross_entropy_bits
    assert [m["masks"] for m in report["mask_sets"]] == ["random", "kmer_span"] and len(report["scores"]) == 4
    out = capsys.readouterr().out
    assert f"{floor.cross_entropy_bits:.3f} bits" in out and "vs the floor" in out


@pytest.mark.slow
def test_errors_are_one_line(skewed_corpus, checkpoints, tmp_path, capsys):
    assert main([str(tmp_path / "missing.pt"), "--data", str(skewed_corpus), "--cpu"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("genemask-validate: error: ") and "missing.pt" in line
    assert main([str(checkpoints["genemask"]), "--data", str(skewed_corpus), "--masks", "genemask"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "needs --pmi-table" in line
    with pytest.raises(SystemExit) as usage:
        main([str(checkpoints["genemask"]), "--data", str(skewed_corpus), "--masks", "cm_step"])
    assert usage.value.code == 2 and "expected comma-separated strategies" in capsys.readouterr().err
    assert not (tmp_path / "losses.csv").exists()


@pytest.mark.slow
def test_a_checkpoint_of_another_vocabulary_is_refused(skewed_corpus, checkpoints, tmp_path, capsys):
    k5 = tmp_path / "k5"
    subprocess.run([str(BIN / "genemask-preprocess"), str(skewed_corpus.parent / "genome.fa"), "--k", "5", "--out",
                    str(k5), "--quiet"], check=True)
    assert main([str(checkpoints["genemask"]), "--data", str(k5), "--cpu", "--csv", str(tmp_path / "l.csv")]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("genemask-validate: error: ") and "vocabulary of 4101 symbols" in line and "1029" in line
    assert not (tmp_path / "l.csv").exists()
