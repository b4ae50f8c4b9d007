"""Classification metrics of a few-shot evaluation (scikit-learn) and the predictions file.

The predictions file is a TSV with one row per evaluated sequence:
``index  target  prediction  prob_<label 0>  prob_<label 1> ...`` where ``index`` is the
row's position in the prepared split, ``target``/``prediction`` are label names and the
probability columns are in class order (the order of ``label/dict.txt``).
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, roc_auc_score

from genemask_preprocess.atomic_output import atomic_file

METRICS = ("accuracy", "macro_f1", "mcc", "auroc")
METRIC_TITLES = {"accuracy": "accuracy", "macro_f1": "macro-F1", "mcc": "MCC", "auroc": "AUROC"}


def classification_metrics(targets: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Accuracy, macro-F1, MCC and AUROC of class probabilities ``probs`` (N, C) against ``targets`` (N,).

    The prediction is the most probable class. Macro-F1 averages over all C classes
    (a class never predicted scores 0). AUROC uses the positive-class probability for
    C = 2 and one-vs-rest macro averaging otherwise, over the classes present in the
    targets; it is NaN when the targets hold a single class (undefined).
    """
    targets = np.asarray(targets, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or len(probs) != len(targets) or probs.shape[1] < 2:
        raise ValueError(f"probs must be (N, C>=2) with N = {len(targets)}, got {probs.shape}")
    num_classes = probs.shape[1]
    classes = np.arange(num_classes)
    predictions = probs.argmax(axis=1)
    metrics = {
        "accuracy": float(accuracy_score(targets, predictions)),
        "macro_f1": float(
            f1_score(targets, predictions, labels=classes, average="macro", zero_division=0)
        ),
        "mcc": float(matthews_corrcoef(targets, predictions)),
    }
    present = np.unique(targets)
    if len(present) < 2:
        metrics["auroc"] = math.nan
    elif num_classes == 2:
        metrics["auroc"] = float(roc_auc_score(targets, probs[:, 1]))
    else:
        # One-vs-rest, macro over the classes present in the targets: the same as sklearn's
        # multi_class="ovr" when all are present, and defined when a class is absent.
        metrics["auroc"] = float(np.mean([roc_auc_score(targets == c, probs[:, c]) for c in present]))
    return metrics


@dataclass
class Predictions:
    """Per-sequence predictions of one split."""

    labels: list[str]
    """Label names in class order."""
    index: np.ndarray
    targets: np.ndarray
    probs: np.ndarray

    @property
    def predicted(self) -> np.ndarray:
        return self.probs.argmax(axis=1)

    def metrics(self) -> dict[str, float]:
        return classification_metrics(self.targets, self.probs)


def write_predictions(path: str | os.PathLike, predictions: Predictions) -> None:
    """Write the predictions TSV (atomically: a failed run leaves no partial file)."""
    with atomic_file(path, newline="") as handle:
        write_predictions_to(handle, predictions)


def write_predictions_to(handle, predictions: Predictions) -> None:
    """The predictions TSV into an open text handle (opened with ``newline=""``)."""
    labels = predictions.labels
    writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
    writer.writerow(["index", "target", "prediction", *(f"prob_{label}" for label in labels)])
    for i, target, predicted, row in zip(
        predictions.index, predictions.targets, predictions.predicted, predictions.probs,
        strict=True,
    ):
        writer.writerow([int(i), labels[target], labels[predicted], *(f"{p:.6g}" for p in row)])


def read_predictions(path: str | os.PathLike) -> Predictions:
    """Inverse of :func:`write_predictions` (raises ``ValueError`` on a malformed file)."""
    path = Path(path)
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    header = rows[0] if rows else []
    if header[:3] != ["index", "target", "prediction"] or len(header) < 5:
        raise ValueError(f"{path}: expected header 'index target prediction prob_...', got {header}")
    labels = [name.removeprefix("prob_") for name in header[3:]]
    class_of = {label: i for i, label in enumerate(labels)}
    body = rows[1:]
    try:
        index = np.array([int(r[0]) for r in body], dtype=np.int64)
        targets = np.array([class_of[r[1]] for r in body], dtype=np.int64)
        probs = np.array([[float(x) for x in r[3:]] for r in body], dtype=np.float64)
    except (KeyError, ValueError, IndexError) as err:
        raise ValueError(f"{path}: malformed row: {err}") from None
    return Predictions(labels, index, targets, probs.reshape(len(body), len(labels)))
