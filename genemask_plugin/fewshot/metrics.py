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

import numpy as np

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
    # Here, not at the top: the command line reads METRICS for its --help, and scikit-learn takes a second.
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, roc_auc_score  # noqa: PLC0415

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


def scores_json(predictions: Predictions) -> dict:
    """The scores a metrics JSON holds: the four metrics (``null`` where undefined), ``n``, the labels
    and how many sequences were predicted as each class."""
    return {
        **{name: (None if math.isnan(value) else value) for name, value in predictions.metrics().items()},
        "n": int(len(predictions.targets)),
        "labels": predictions.labels,
        "predicted_per_class": {
            label: int(np.sum(predictions.predicted == i)) for i, label in enumerate(predictions.labels)
        },
    }


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
