"""genemask-fewshot grid: protocol per dataset, resumability, crashed cells, the summary.

fairseq-train and the model evaluation are replaced by fakes here (the real chain runs in
test_fewshot_end_to_end.py); everything else (prepare, planning, settings, summary) is real.
"""

import argparse
import csv
import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

from genemask_plugin.fewshot import cell_runner, grid, grid_plan
from genemask_plugin.fewshot.cell_record import read_cell_records
from genemask_plugin.fewshot.cli import main
from genemask_plugin.fewshot.finetune import FinetuneError
from genemask_plugin.fewshot.prepare import FewshotDataError
from genemask_plugin.fewshot.protocol import resolve_cell_files
from genemask_preprocess.formats.fairseq_dictionary import write_kmer_dictionary

RNG = np.random.default_rng(11)
BASE = {"scratch": 0.5, "GeneMask": 0.7}


def write_tsv(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('"sequence"\t"label"\n' + "".join(f'"{s}"\t{label}\n' for s, label in rows))
    return path


def random_rows(per_class, classes=2, length=20):
    return [("".join(RNG.choice(list("ACGT"), size=length)), str(c)) for c in range(classes) for _ in range(per_class)]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A few-shot root laid out like the full sets (DATASET/SHOTS/train.tsv), with small hand-made files."""
    root = tmp_path_factory.mktemp("fewshot")
    for shots in (10, 50):
        write_tsv(root / "Prom-core" / str(shots) / "train.tsv", random_rows(3))
    write_tsv(root / "Prom-core" / "test.tsv", random_rows(4))
    pool = random_rows(6)
    write_tsv(root / "Prom-300" / "1000" / "train.tsv", pool)
    write_tsv(root / "Prom-300" / "10" / "train.tsv", pool[:2] + pool[6:8])  # 4 of the pool
    write_tsv(root / "Splice-40" / "10" / "train.tsv", random_rows(20, classes=3))  # "10" holds 10x
    write_tsv(root / "splice_test.tsv", random_rows(2, classes=3))
    write_kmer_dictionary(root / "dict.txt", 3)
    return root


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "pre" / "checkpoint_last.pt"
    path.parent.mkdir()
    torch.save({"cfg": {"model": argparse.Namespace(arch="genemask_tiny")}, "model": {}}, path)
    return path


class FakeTraining:
    """Stands in for fairseq-train and the model: records runs, fails where told, scores by cell."""

    def __init__(self, monkeypatch, fail=()):
        self.runs, self.fail = [], set(fail)
        monkeypatch.setattr(cell_runner, "run_finetune", self.run_finetune)
        monkeypatch.setattr(cell_runner, "evaluate_checkpoint", self.evaluate)

    @staticmethod
    def cell_of(path):
        *_, label, dataset, shots, seed, _train, _file = Path(path).parts
        return label, dataset, int(shots), int(seed.removeprefix("seed"))

    def run_finetune(self, args, log_path):
        save_dir = Path(args[args.index("--save-dir") + 1])
        cell = self.cell_of(save_dir / "checkpoint_last.pt")
        self.runs.append((cell, args))
        if cell in self.fail:
            raise FinetuneError("fairseq-train failed (exit 1): boom")
        save_dir.mkdir(parents=True)
        (save_dir / "checkpoint_last.pt").write_text("weights")
        return save_dir / "checkpoint_last.pt"

    def evaluate(self, final, data, split, out_json, predictions_path, batch_size):
        label, _, shots, seed = self.cell_of(final)
        value = BASE[label] + 0.01 * seed + 0.001 * shots
        n = json.loads((Path(data) / "fewshot.json").read_text())["splits"]["test"]["rows"]
        return {"accuracy": value, "macro_f1": value - 0.1, "mcc": None, "auroc": value + 0.1,
                "n": n, "predicted_per_class": {}}


def config(root, out, checkpoints, **overrides):
    settings = dict(
        checkpoints=[grid_plan.parse_checkpoint_spec(c) for c in checkpoints], datasets=["Prom-core"],
        shots=[10, 50], seeds=[1, 2, 3], out=out, roots=[root], dictionary=root / "dict.txt",
    )
    settings.update(overrides)
    return grid_plan.GridConfig(**settings)


def test_parse_checkpoint_spec(tmp_path):
    assert grid_plan.parse_checkpoint_spec("none") == grid_plan.CheckpointSpec("scratch", None)
    assert grid_plan.parse_checkpoint_spec("from scratch=none") == grid_plan.CheckpointSpec("from scratch", None)
    assert grid_plan.parse_checkpoint_spec("GM=/x/ckpt.pt") == grid_plan.CheckpointSpec("GM", Path("/x/ckpt.pt"))
    assert grid_plan.parse_checkpoint_spec("/runs/kmer_span/checkpoint_last.pt").label == "kmer_span"
    odd = tmp_path / "a=b.pt"
    odd.write_text("")
    assert grid_plan.parse_checkpoint_spec(str(odd)).path == odd  # an existing path is a path
    assert grid_plan.slug("from scratch") == "from_scratch"


def test_protocol_files(root):
    prom300 = resolve_cell_files("Prom-300", 10, [root])
    assert prom300.test == root / "Prom-300" / "1000" / "train.tsv" and prom300.exclude_overlap
    core = resolve_cell_files("Prom-core", 50, [root])
    assert core.train == root / "Prom-core" / "50" / "train.tsv" and not core.exclude_overlap
    splice = resolve_cell_files("Splice-40", 10, [root], {"Splice-40": root / "splice_test.tsv"})
    assert splice.test == root / "splice_test.tsv" and splice.exclude_overlap  # shot files overlap
    with pytest.raises(FewshotDataError, match=r"pass --test-file Splice-40=PATH"):
        resolve_cell_files("Splice-40", 10, [root])
    with pytest.raises(FewshotDataError, match="Prom-300 is evaluated with 10, 50, 100, 500 shots"):
        resolve_cell_files("Prom-300", 1000, [root])
    with pytest.raises(FewshotDataError, match="Cohn-enh is evaluated with 10, 50, 100 shots"):
        resolve_cell_files("Cohn-enh", 500, [root])
    with pytest.raises(FewshotDataError, match="no Prom-core/100/train.tsv"):
        resolve_cell_files("Prom-core", 100, [root])
    with pytest.raises(FewshotDataError, match="test file for Prom-core not found"):
        resolve_cell_files("Prom-core", 10, [root], {"Prom-core": root / "nope.tsv"})


def test_first_root_with_the_file_wins(root, tmp_path):
    write_tsv(tmp_path / "Prom-core" / "10" / "train.tsv", random_rows(2))
    files = resolve_cell_files("Prom-core", 10, [tmp_path, root])
    assert files.train == tmp_path / "Prom-core" / "10" / "train.tsv"
    assert files.test == root / "Prom-core" / "test.tsv"  # only the second root has it


def test_grid_runs_every_cell_then_resumes(root, tmp_path, checkpoint, monkeypatch):
    fake = FakeTraining(monkeypatch)
    cfg = config(root, tmp_path / "results", ["none", f"GeneMask={checkpoint}"])
    report = grid.run_grid(cfg, progress=False)
    assert report.finished == 12 and not report.failed
    by_label = {}
    for (label, _, _, _), args in fake.runs:
        by_label.setdefault(label, args)
    assert "--restore-file" not in by_label["scratch"]
    assert by_label["GeneMask"][by_label["GeneMask"].index("--restore-file") + 1] == str(checkpoint.resolve())
    assert by_label["scratch"][by_label["scratch"].index("--arch") + 1] == "genemask_tiny"
    # prepared once per (checkpoint, dataset, shots), reused by the seeds
    data = tmp_path / "results" / "cells" / "GeneMask" / "Prom-core" / "10" / "data"
    assert json.loads((data / "fewshot.json").read_text())["splits"]["train"]["rows"] == 6
    assert {args[0] for _, args in fake.runs} == {str(p.parent / "data") for p in
                                                  (tmp_path / "results" / "cells").glob("*/*/*/seed1")}

    again = FakeTraining(monkeypatch)
    report = grid.run_grid(cfg, progress=False)
    assert report.skipped == 12 and report.finished == 0 and again.runs == []

    # a cell of the fine-tuning recipe before issue 20 (no optimiser settings recorded) runs again
    record_file = data.parent / "seed1" / "metrics.json"
    record = json.loads(record_file.read_text())
    assert record["settings"]["optimizer"] == {"adam_betas": [0.9, 0.999], "adam_eps": 1e-8, "clip_norm": 1.0,
                                               "pooler_dropout": 0.1}
    del record["settings"]["optimizer"]
    record_file.write_text(json.dumps(record))
    old = FakeTraining(monkeypatch)
    assert grid.run_grid(cfg, progress=False).finished == 1 and len(old.runs) == 1

    # a different schedule is a different experiment: the cells run again
    rerun = FakeTraining(monkeypatch)
    cfg.max_updates = 3
    assert grid.run_grid(cfg, progress=False).finished == 12 and len(rerun.runs) == 12
    assert all(args[args.index("--max-update") + 1] == "3" for _, args in rerun.runs)

    # so is another dictionary (the data are prepared again with it)
    other = tmp_path / "dict6.txt"
    write_kmer_dictionary(other, 6)
    cfg.dictionary = other
    assert grid.run_grid(cfg, progress=False).finished == 12
    assert json.loads((data / "fewshot.json").read_text())["k"] == 6


def test_summary_mean_std_table_and_plot(root, tmp_path, checkpoint, monkeypatch):
    FakeTraining(monkeypatch)
    out = tmp_path / "results"
    grid.run_grid(config(root, out, ["none", f"GeneMask={checkpoint}"]), progress=False)
    with open(out / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["dataset"], r["shots"], r["checkpoint"]) for r in rows] == [
        ("Prom-core", "10", "scratch"), ("Prom-core", "10", "GeneMask"),
        ("Prom-core", "50", "scratch"), ("Prom-core", "50", "GeneMask"),
    ]
    row = rows[1]
    values = [0.7 + 0.01 * seed + 0.010 for seed in (1, 2, 3)]
    assert float(row["accuracy_mean"]) == pytest.approx(np.mean(values))
    assert float(row["accuracy_std"]) == pytest.approx(np.std(values, ddof=1))
    assert row["seeds"] == "3" and row["per_class"] == "3" and row["n_test"] == "8"
    assert row["mcc_mean"] == "nan"
    table = (out / "summary.md").read_text()
    assert "| Prom-core | 10 | 3 | GeneMask | 0.730 ± 0.010 | 0.630 ± 0.010 | n/a | 0.830 ± 0.010 | 3 | 8 |" in table
    assert (out / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_crashed_cell_is_reported_and_the_grid_goes_on(root, tmp_path, checkpoint, monkeypatch, capsys):
    broken = ("GeneMask", "Prom-core", 50, 2)
    fake = FakeTraining(monkeypatch, fail=[broken])
    out = tmp_path / "results"
    args = ["grid", "--checkpoint", "none", "--checkpoint", f"GeneMask={checkpoint}", "--shots", "10", "50",
            "--fewshot-root", str(root), "--dict", str(root / "dict.txt"), "--out", str(out), "--no-progress"]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert "11 cells run, 0 already finished, 1 failed" in captured.out
    assert "GeneMask / Prom-core / 50-shot / seed 2: fairseq-train failed (exit 1): boom" in captured.err
    assert len(fake.runs) == 12
    cell = out / "cells" / "GeneMask" / "Prom-core" / "50" / "seed2"
    assert "FinetuneError" in (cell / "error.txt").read_text() and not (cell / "metrics.json").exists()
    assert "| Prom-core | 50 | 3 | GeneMask |" in (out / "summary.md").read_text()  # 2 seeds summarised

    retry = FakeTraining(monkeypatch)
    assert main(args) == 0
    assert [cell for cell, _ in retry.runs] == [broken]
    assert "1 cells run, 11 already finished, 0 failed" in capsys.readouterr().out


def test_a_grid_cell_runs_what_the_finetune_command_runs(root, tmp_path, monkeypatch, capsys):
    fake = FakeTraining(monkeypatch)
    out = tmp_path / "results"
    grid.run_grid(config(root, out, ["none"], shots=[10], seeds=[2], max_updates=3), progress=False)
    [(_, cell_args)] = fake.runs
    capsys.readouterr()
    cell = out / "cells" / "scratch" / "Prom-core" / "10"
    assert main(["finetune", "none", str(cell / "data"), "--shots", "10", "--seed", "2", "--max-updates", "3",
                 "--out", str(cell / "seed2" / "train"), "--dry-run"]) == 0
    assert shlex.split(capsys.readouterr().out.strip().removeprefix("+ ")) == ["fairseq-train", *cell_args]


def test_protocols_in_one_grid(root, tmp_path, monkeypatch):
    """Prom-300 scores the pool minus training sequences; Splice-40 reports its true count per class."""
    FakeTraining(monkeypatch)
    out = tmp_path / "results"
    cfg = config(root, out, ["none"], datasets=["Prom-300", "Splice-40"], shots=[10], seeds=[1],
                 test_files={"Splice-40": root / "splice_test.tsv"})
    assert grid.run_grid(cfg, progress=False).finished == 2
    records = {r.dataset: r for r in read_cell_records(out)}
    assert records["Prom-300"].excluded_overlap == 4 and records["Prom-300"].n_test == 8
    assert records["Splice-40"].train_per_class == {"0": 20, "1": 20, "2": 20}
    table = (out / "summary.md").read_text()
    assert "| Splice-40 | 10 | 20 | scratch |" in table


def test_missing_files_stop_the_grid_before_any_run(root, tmp_path, monkeypatch, capsys):
    fake = FakeTraining(monkeypatch)
    code = main(["grid", "--checkpoint", "none", "--datasets", "Prom-core", "Splice-40", "--fewshot-root",
                 str(root), "--dict", str(root / "dict.txt"), "--out", str(tmp_path / "r")])
    assert code == 1 and fake.runs == []
    assert "no test file Splice-40/test.tsv" in capsys.readouterr().err
    code = main(["grid", "--checkpoint", str(tmp_path / "missing.pt"), "--fewshot-root", str(root),
                 "--out", str(tmp_path / "r")])
    assert code == 1 and "checkpoint not found" in capsys.readouterr().err
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    code = main(["grid", "--checkpoint", str(tmp_path / "junk.pt"), "--fewshot-root", str(root),
                 "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 1 and "cannot read checkpoint" in err and err.count("\n") == 1
    code = main(["grid", "--checkpoint", "a b=none", "--checkpoint", "a_b=none", "--fewshot-root", str(root),
                 "--out", str(tmp_path / "r")])
    assert code == 1 and "checkpoint labels must differ" in capsys.readouterr().err
    assert fake.runs == []


def test_dictionary_from_the_embedding_size(tmp_path):
    path = tmp_path / "ckpt.pt"
    torch.save({"cfg": {"task": {"data": str(tmp_path / "gone")}},
                "model": {"encoder.sentence_encoder.embed_tokens.weight": torch.zeros(4**3 + 5, 2)}}, path)
    cfg = grid_plan.GridConfig([], [], [], [], tmp_path / "out", [])
    dictionary = cell_runner.resolve_dictionary(cfg, grid_plan.CheckpointSpec("x", path))
    assert dictionary.read_text().splitlines()[:2] == ["AAA 1", "AAC 1"]
    assert len(dictionary.read_text().splitlines()) == 64
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "dict.txt").write_text("AAA 1\n")
    torch.save({"cfg": {"task": {"data": str(tmp_path / "data")}}, "model": {}}, path)
    assert cell_runner.resolve_dictionary(cfg, grid_plan.CheckpointSpec("x", path)) == tmp_path / "data" / "dict.txt"
