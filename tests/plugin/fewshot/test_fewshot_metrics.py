"""Few-shot metrics on fixed prediction files: hand-computed values, scikit-learn, and the file format."""

import csv
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, roc_auc_score

from genemask_plugin.fewshot.metrics import (
    Predictions,
    classification_metrics,
    scores_json,
    write_predictions,
)

DATA = Path(__file__).resolve().parents[2] / "data"
BINARY = DATA / "fewshot_predictions_binary.tsv"
THREE_CLASS = DATA / "fewshot_predictions_3class.tsv"


def read_predictions(path) -> Predictions:
    """A predictions TSV back into arrays: the tests' reader (the package only writes the file)."""
    with open(path, newline="") as handle:
        header, *body = list(csv.reader(handle, delimiter="\t"))
    assert header[:3] == ["index", "target", "prediction"]
    labels = [name.removeprefix("prob_") for name in header[3:]]
    return Predictions(labels, np.array([int(row[0]) for row in body]),
                       np.array([labels.index(row[1]) for row in body]),
                       np.array([[float(x) for x in row[3:]] for row in body]))


def pairwise_auroc(scores, positive):
    """AUROC as P(score of a positive > score of a negative), ties 1/2, by enumerating the pairs."""
    pos, neg = scores[positive], scores[~positive]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def gorodkin_mcc(targets, predicted, num_classes):
    """Multi-class MCC from the confusion matrix (Gorodkin 2004)."""
    c = np.zeros((num_classes, num_classes))
    for t, p in zip(targets, predicted, strict=True):
        c[t, p] += 1
    s, correct = c.sum(), np.trace(c)
    t_k, p_k = c.sum(axis=1), c.sum(axis=0)
    return (correct * s - t_k @ p_k) / math.sqrt((s**2 - p_k @ p_k) * (s**2 - t_k @ t_k))


def test_binary_file_matches_hand_computed_values():
    # 4 TP, 4 TN, 1 FP (row 3), 1 FN (row 7); 19 of the 25 positive/negative pairs are ordered.
    predictions = read_predictions(BINARY)
    assert predictions.labels == ["0", "1"]
    metrics = predictions.metrics()
    assert metrics["accuracy"] == pytest.approx(0.8)
    assert metrics["macro_f1"] == pytest.approx(0.8)
    assert metrics["mcc"] == pytest.approx((4 * 4 - 1 * 1) / math.sqrt(5 * 5 * 5 * 5))
    assert metrics["auroc"] == pytest.approx(19 / 25)  # prob of class 1; class 0's would give 6/25


def test_three_class_file_matches_hand_computed_values_and_sklearn():
    predictions = read_predictions(THREE_CLASS)
    assert predictions.labels == ["donor", "acceptor", "neither"]
    targets, probs, predicted = predictions.targets, predictions.probs, predictions.predicted
    metrics = predictions.metrics()
    assert metrics["accuracy"] == pytest.approx(6 / 9)
    assert metrics["macro_f1"] == pytest.approx(np.mean([2 / 3, 4 / 7, 4 / 5]))
    assert metrics["mcc"] == pytest.approx(gorodkin_mcc(targets, predicted, 3))
    one_vs_rest = [pairwise_auroc(probs[:, c], targets == c) for c in range(3)]
    assert metrics["auroc"] == pytest.approx(np.mean(one_vs_rest))
    assert metrics == pytest.approx({
        "accuracy": accuracy_score(targets, predicted),
        "macro_f1": f1_score(targets, predicted, average="macro"),
        "mcc": matthews_corrcoef(targets, predicted),
        "auroc": roc_auc_score(targets, probs, multi_class="ovr", average="macro"),
    })


def test_binary_matches_sklearn_on_random_predictions():
    rng = np.random.default_rng(3)
    targets = rng.integers(0, 2, 500)
    logits = rng.normal(size=(500, 2)) + np.eye(2)[targets] * 0.7
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    predicted = probs.argmax(axis=1)
    assert classification_metrics(targets, probs) == pytest.approx({
        "accuracy": accuracy_score(targets, predicted),
        "macro_f1": f1_score(targets, predicted, average="macro"),
        "mcc": matthews_corrcoef(targets, predicted),
        "auroc": roc_auc_score(targets, probs[:, 1]),
    })


def test_never_predicted_class_counts_as_zero_f1():
    targets = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.7, 0.3]])  # always class 0
    metrics = classification_metrics(targets, probs)
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 0) / 2)
    assert metrics["mcc"] == 0.0
    assert metrics["auroc"] == pytest.approx(1.0)  # the ranking is still perfect


def test_three_classes_with_one_absent_from_targets():
    """F1 averages over all classes the model knows; AUROC over the classes present (defined)."""
    targets = np.array([0, 1, 0, 1])
    probs = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4], [0.1, 0.8, 0.1]])
    metrics = classification_metrics(targets, probs)
    assert metrics["accuracy"] == pytest.approx(0.75)
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    expected = np.mean([pairwise_auroc(probs[:, c], targets == c) for c in (0, 1)])
    assert metrics["auroc"] == pytest.approx(expected)


def test_single_class_targets_give_undefined_auroc():
    metrics = classification_metrics(np.array([1, 1, 1]), np.array([[0.2, 0.8], [0.6, 0.4], [0.1, 0.9]]))
    assert math.isnan(metrics["auroc"]) and metrics["accuracy"] == pytest.approx(2 / 3)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="probs must be"):
        classification_metrics(np.array([0, 1]), np.array([0.3, 0.7]))


def test_predictions_file_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    probs = rng.dirichlet(np.ones(3), size=20)
    original = Predictions(["a", "b", "c"], np.arange(20), rng.integers(0, 3, 20), probs)
    write_predictions(tmp_path / "p.tsv", original)
    back = read_predictions(tmp_path / "p.tsv")
    assert back.labels == original.labels
    np.testing.assert_array_equal(back.index, original.index)
    np.testing.assert_array_equal(back.targets, original.targets)
    np.testing.assert_allclose(back.probs, original.probs, rtol=1e-5)
    rows = (tmp_path / "p.tsv").read_text().splitlines()
    assert rows[0] == "index\ttarget\tprediction\tprob_a\tprob_b\tprob_c"
    assert rows[1].split("\t")[2] == "abc"[int(np.argmax(probs[0]))]


def test_scores_json_holds_nulls_for_undefined_metrics_and_the_predicted_counts():
    predictions = Predictions(["neg", "pos"], np.arange(3), np.array([1, 1, 1]),
                              np.array([[0.2, 0.8], [0.6, 0.4], [0.1, 0.9]]))
    scores = scores_json(predictions)
    assert scores["auroc"] is None and scores["accuracy"] == pytest.approx(2 / 3)
    assert scores["n"] == 3 and scores["labels"] == ["neg", "pos"]
    assert scores["predicted_per_class"] == {"neg": 1, "pos": 2}
