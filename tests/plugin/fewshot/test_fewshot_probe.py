"""The frozen-embedding probe, the per-class draw and the grid's probe method."""

import json

import numpy as np
import pytest
import torch

from genemask_plugin.fewshot import cell_runner, grid, grid_plan
from genemask_plugin.fewshot.cli import main
from genemask_plugin.fewshot.metrics import classification_metrics
from genemask_plugin.fewshot.prepare import FewshotDataError, PreparedData, prepare_fewshot_data
from genemask_plugin.fewshot.probe import embed_items, fit_probe, random_encoder, read_split
from genemask_plugin.fewshot.protocol import draw_per_class
from genemask_preprocess.formats.fairseq_dictionary import write_kmer_dictionary

RNG = np.random.default_rng(5)


def blobs(n, dim=16, separation=6.0, seed=0):
    """Two Gaussian classes whose means are ``separation`` apart along every axis."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    x = rng.normal(size=(n, dim)) + separation * y[:, None]
    return x, y


def test_separable_embeddings_score_near_one():
    train_x, train_y = blobs(20)
    test_x, test_y = blobs(2000, seed=1)
    probs = fit_probe(train_x, train_y, test_x, 2)
    assert classification_metrics(test_y, probs)["accuracy"] > 0.99


def test_shuffled_labels_score_chance():
    """Embeddings that carry no label information (labels shuffled against them) give chance."""
    train_x, train_y = blobs(200, separation=0.0)
    test_x, test_y = blobs(4000, seed=1, separation=0.0)
    shuffled = np.random.default_rng(2).permutation(train_y)
    scores = classification_metrics(test_y, fit_probe(train_x, shuffled, test_x, 2))
    assert abs(scores["accuracy"] - 0.5) < 0.04 and abs(scores["auroc"] - 0.5) < 0.04
    # the same embeddings with their true labels are learnable: the test can tell signal from none
    signal_x, signal_y = blobs(200, separation=1.0)
    test_sx, test_sy = blobs(4000, seed=1, separation=1.0)
    assert classification_metrics(test_sy, fit_probe(signal_x, signal_y, test_sx, 2))["accuracy"] > 0.9


def test_same_input_same_result():
    train_x, train_y = blobs(40, separation=0.5)
    test_x, _ = blobs(300, seed=3, separation=0.5)
    first = fit_probe(train_x, train_y, test_x, 2)
    assert np.array_equal(first, fit_probe(train_x.copy(), train_y.copy(), test_x.copy(), 2))


def test_a_class_missing_from_training_gets_zero_probability():
    x, y = blobs(20)
    probs = fit_probe(x, y, x, 3)
    assert probs.shape == (20, 3) and np.all(probs[:, 2] == 0) and np.allclose(probs.sum(1), 1)
    with pytest.raises(FewshotDataError, match="at least 2 classes"):
        fit_probe(x, np.zeros(20, dtype=int), x, 2)


@pytest.fixture(scope="module")
def dictionary(tmp_path_factory):
    path = tmp_path_factory.mktemp("dict") / "dict.txt"
    write_kmer_dictionary(path, 3)
    return path


def test_embeddings_ignore_padding_and_specials(dictionary):
    torch.set_num_threads(1)
    model = random_encoder(dictionary)
    items = [RNG.integers(4, 68, size=n).astype(np.int64) for n in (5, 30, 12)]
    items = [np.append(item, 2) for item in items]  # + </s>
    together = embed_items(model, items, batch_size=3)
    alone = np.stack([embed_items(model, [item], batch_size=1)[0] for item in items])
    assert together.shape == (3, 64) and np.allclose(together, alone, atol=1e-5)
    bos = embed_items(model, items, pooling="bos", batch_size=3)
    assert not np.allclose(bos, together)
    # the same seed builds the same random encoder
    assert np.array_equal(embed_items(random_encoder(dictionary), items), embed_items(model, items))


def test_draw_per_class():
    labels = ["a"] * 30 + ["b"] * 30 + ["c"] * 30
    chosen = draw_per_class(labels, 10, seed=1)
    assert len(chosen) == 30 and np.all(np.diff(chosen) > 0)
    assert [sum(labels[i] == c for i in chosen) for c in "abc"] == [10, 10, 10]
    assert np.array_equal(chosen, draw_per_class(labels, 10, seed=1))
    assert not np.array_equal(chosen, draw_per_class(labels, 10, seed=2))
    exact = ["0"] * 10 + ["1"] * 10
    assert np.array_equal(draw_per_class(exact, 10, seed=7), np.arange(20))  # a file of n per class: all of it
    with pytest.raises(FewshotDataError, match="cannot draw 11 of label '0'"):
        draw_per_class(exact, 11, seed=1)


def write_tsv(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("sequence\tlabel\n" + "".join(f"{s}\t{label}\n" for s, label in rows))
    return path


def rows(per_class, classes=2, length=24, rng=RNG):
    return [("".join(rng.choice(list("ACGT"), size=length)), str(c)) for c in range(classes) for _ in range(per_class)]


def test_overlap_source_excludes_a_whole_file(tmp_path, dictionary):
    pool = rows(5)
    test = pool[:3] + rows(4)
    drawn = write_tsv(tmp_path / "drawn.tsv", pool[:1] + pool[5:6])
    prepared = prepare_fewshot_data(drawn, dictionary, tmp_path / "a", test=write_tsv(tmp_path / "t.tsv", test),
                                    exclude_overlap=True, overlap_source=write_tsv(tmp_path / "pool.tsv", pool))
    assert prepared.splits["test"].rows == 8 and prepared.splits["test"].excluded_overlap == 3


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Splice-40-like: the "10" file pools 20 per class of 3 classes; sequences carry a class signal."""
    root = tmp_path_factory.mktemp("fewshot")
    rng = np.random.default_rng(3)

    def signal_rows(per_class):
        out = []
        for c, base in enumerate("ACG"):
            for _ in range(per_class):
                seq = rng.choice(list("ACGT"), size=30)
                seq[rng.random(30) < 0.5] = base  # class c is rich in one base
                out.append(("".join(seq), str(c)))
        return out

    write_tsv(root / "Splice-40" / "10" / "train.tsv", signal_rows(20))
    write_tsv(root / "splice_test.tsv", signal_rows(30))
    write_kmer_dictionary(root / "dict.txt", 3)
    return root


def probe_config(root, out, **overrides):
    settings = dict(checkpoints=[grid_plan.parse_checkpoint_spec("no pretraining=none")], datasets=["Splice-40"],
                    shots=[10], seeds=[1, 2, 3], out=out, roots=[root], dictionary=root / "dict.txt",
                    test_files={"Splice-40": root / "splice_test.tsv"}, method="probe", draw="per-class")
    settings.update(overrides)
    return grid_plan.GridConfig(**settings)


def test_grid_probe_draws_per_class_and_resumes(root, tmp_path, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.setattr(cell_runner, "run_finetune", lambda *a: pytest.fail("the probe must not fine-tune"))
    cfg = probe_config(root, tmp_path / "results")
    report = grid.run_grid(cfg, progress=False)
    assert report.finished == 3 and not report.failed
    cells = [json.loads(p.read_text()) for p in sorted((cfg.out / "cells").glob("*/*/*/seed*/metrics.json"))]
    assert [c["train_per_class"] for c in cells] == [{"0": 10, "1": 10, "2": 10}] * 3
    assert {(c["method"], c["draw"], c["n_test"]) for c in cells} == {("probe", "per-class", 90)}
    accuracies = [c["metrics"]["accuracy"] for c in cells]
    assert len(set(accuracies)) > 1 and min(accuracies) > 0.5  # draws differ; the base signal is learnt
    assert grid.run_grid(cfg, progress=False).skipped == 3
    # the whole-file mode is another experiment: it trains on all 60 rows, the same for every seed
    whole = grid.run_grid(probe_config(root, tmp_path / "results", draw="file", seeds=[1]), progress=False)
    assert whole.finished == 1
    record = json.loads((cfg.out / "cells" / "no_pretraining" / "Splice-40" / "10" / "seed1" /
                         "metrics.json").read_text())
    assert record["n_train"] == 60 and record["draw"] == "file"


def test_grid_finetune_per_class_draws_its_own_training_file(root, tmp_path, monkeypatch):
    seen = []

    def fake_finetune(args, log_path):
        data = args[0]
        seen.append((PreparedData.load(data), read_split(data, "train").items))
        return tmp_path / "ckpt.pt"

    def fake_evaluate(final, data, split, out_json, predictions_path, batch_size):
        n = PreparedData.load(data).splits["test"].rows
        return {"accuracy": 0.5, "macro_f1": 0.5, "mcc": 0.0, "auroc": 0.5, "n": n, "predicted_per_class": {}}

    monkeypatch.setattr(cell_runner, "run_finetune", fake_finetune)
    monkeypatch.setattr(cell_runner, "evaluate_checkpoint", fake_evaluate)
    cfg = probe_config(root, tmp_path / "ft", method="finetune", seeds=[1, 2], keep_checkpoints=True)
    assert grid.run_grid(cfg, progress=False).finished == 2
    assert [s.splits["train"].per_class for s, _ in seen] == [{"0": 10, "1": 10, "2": 10}] * 2
    assert {s.splits["test"].rows for s, _ in seen} == {90}  # the whole pool is excluded: same test set
    trains = [items for _, items in seen]
    assert any(not np.array_equal(a, b) for a, b in zip(*trains, strict=True))  # seeds draw differently


def test_probe_command(root, tmp_path, capsys):
    torch.set_num_threads(1)
    data = tmp_path / "data"
    prepare_fewshot_data(root / "Splice-40" / "10" / "train.tsv", root / "dict.txt", data,
                         test=root / "splice_test.tsv")
    assert main(["probe", "none", str(data), "--out", str(tmp_path / "m.json")]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    saved = json.loads((tmp_path / "m.json").read_text())
    assert printed["accuracy"] == saved["accuracy"] and saved["method"] == "probe" and saved["n"] == 90
    assert (data / "probe_test_predictions.tsv").is_file()
    assert main(["probe", str(tmp_path / "missing.pt"), str(data)]) == 1
    assert "checkpoint not found" in capsys.readouterr().err
