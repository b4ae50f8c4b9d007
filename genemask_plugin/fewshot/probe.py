"""Frozen-embedding linear probe: a cheap, deterministic view of what pretraining learned.

The pretrained encoder is frozen. Each sequence is fed as fine-tuning feeds it (``<s>`` +
k-mer ids + ``</s>``) and embedded as the mean of the last layer over its regular tokens
(k-mers only: no ``<s>``, ``</s>`` or padding), or as the last layer at ``<s>``
(``pooling="bos"``). A scikit-learn logistic regression is fitted on the training
embeddings and scores the test ones. Its settings are fixed, never tuned on the test set:
features standardised with the training set's mean and std, L2 penalty with ``C = 1.0``
(:data:`PROBE_C`), lbfgs with up to 2 000 iterations. This is the standard cheap evaluation
of frozen DNA language models (BEND, GENEB); it complements fine-tuning and does not replace it.

:func:`fit_probe` is the pure core (arrays in, class probabilities out); the rest loads a
checkpoint, reads a prepared split and embeds it in batches under ``torch.inference_mode``.
torch, fairseq and scikit-learn are imported by the functions that use them, so the command line
reads this module's settings (:data:`POOLINGS`, :data:`PROBE_C`) for its ``--help`` at once.
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genemask_preprocess.atomic_output import atomic_file
from genemask_preprocess.formats.indexed_dataset import read_indexed_dataset
from genemask_preprocess.kmers import BOS_ID, MASK_SYMBOL, NUM_SPECIALS, PAD_ID

from ..models.defaults import DEFAULT_ARCH
from .metrics import Predictions, scores_json, write_predictions
from .prepare import FewshotDataError, PreparedData

PROBE_C = 1.0
"""Inverse L2 strength of the probe's logistic regression (on standardised features); fixed."""
PROBE_MAX_ITER = 2000
POOLINGS = ("mean", "bos")
SCRATCH_INIT_SEED = 1
"""Seed of the randomly initialised encoder that stands for "no pretraining"."""


def fit_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, num_classes: int) -> np.ndarray:
    """Class probabilities ``(len(test_x), num_classes)`` from a logistic regression fitted on the train set.

    Deterministic: lbfgs has no random state. Classes absent from ``train_y`` get probability 0.
    """
    from sklearn.exceptions import ConvergenceWarning  # noqa: PLC0415
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415
    from sklearn.preprocessing import StandardScaler  # noqa: PLC0415

    train_x = np.asarray(train_x, dtype=np.float64)
    test_x = np.asarray(test_x, dtype=np.float64)
    train_y = np.asarray(train_y, dtype=np.int64)
    present = np.unique(train_y)
    if len(present) < 2:
        raise FewshotDataError(f"the probe needs at least 2 classes in training, found {present.tolist()}")
    scaler = StandardScaler().fit(train_x)
    model = LogisticRegression(C=PROBE_C, max_iter=PROBE_MAX_ITER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(scaler.transform(train_x), train_y)
    probs = np.zeros((len(test_x), num_classes), dtype=np.float64)
    probs[:, model.classes_] = model.predict_proba(scaler.transform(test_x))
    return probs


@dataclass
class PreparedSplitItems:
    """One prepared split as token arrays (k-mer ids + ``</s>``) and class indices, in file order."""

    items: list[np.ndarray]
    targets: np.ndarray


def read_split(data_dir: str | os.PathLike, split: str) -> PreparedSplitItems:
    data_dir = Path(data_dir)
    for sub in ("input0", "label"):
        if not (data_dir / sub / f"{split}.idx").exists():
            raise FewshotDataError(f"{data_dir} has no {split} split ({sub}/{split}.idx missing)")
    tokens, sizes = read_indexed_dataset(data_dir / "input0" / split)
    labels, label_sizes = read_indexed_dataset(data_dir / "label" / split)
    starts = np.concatenate([[0], np.cumsum(sizes[:-1], dtype=np.int64)])
    items = [tokens[s : s + n].astype(np.int64) for s, n in zip(starts, sizes, strict=True)]
    label_starts = np.concatenate([[0], np.cumsum(label_sizes[:-1], dtype=np.int64)])
    targets = labels[label_starts].astype(np.int64) - NUM_SPECIALS  # label token = 4 + class
    return PreparedSplitItems(items, targets)


def load_frozen_encoder(checkpoint: str | os.PathLike, dictionary_dir: str | os.PathLike):
    """A pretrained (``genemask_mlm``) checkpoint's model in eval mode; ``dictionary_dir`` holds its dict.txt."""
    from fairseq import checkpoint_utils  # noqa: PLC0415

    from .. import registration  # noqa: F401, PLC0415  (fairseq must know the genemask_mlm task)
    from ..checkpoints import CLASSIFIER_TASK, CheckpointError, load_checkpoint_state, task_name  # noqa: PLC0415

    if task_name(load_checkpoint_state(checkpoint)) == CLASSIFIER_TASK:
        raise CheckpointError(f"{checkpoint} is a fine-tuned checkpoint: probe a pretrained one")
    try:
        models, _, _ = checkpoint_utils.load_model_ensemble_and_task(
            [str(checkpoint)], arg_overrides={"data": str(dictionary_dir)}
        )
    except Exception as err:
        raise CheckpointError(f"cannot load {checkpoint}: {err}") from None
    return models[0].eval()


def random_encoder(dictionary_path: str | os.PathLike, arch: str = DEFAULT_ARCH, seed: int = SCRATCH_INIT_SEED):
    """A randomly initialised encoder of ``arch`` (the "no pretraining" floor), seeded."""
    import torch  # noqa: PLC0415
    from fairseq.data import Dictionary  # noqa: PLC0415
    from fairseq.models.roberta import RobertaModel  # noqa: PLC0415

    from ..checkpoints import architecture_options  # noqa: PLC0415  (registers the architectures)

    args = architecture_options(arch)
    args.tokens_per_sample = args.max_positions
    dictionary = Dictionary.load(str(dictionary_path))
    dictionary.add_symbol(MASK_SYMBOL)
    task = argparse.Namespace(source_dictionary=dictionary, dictionary=dictionary)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return RobertaModel.build_model(args, task).eval()


def embed_items(model, items: list[np.ndarray], pooling: str = "mean", batch_size: int = 64,
                device: str | None = None) -> np.ndarray:
    """Frozen embeddings ``(len(items), dim)`` of ``<s>`` + each item, batched by length."""
    import torch  # noqa: PLC0415

    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    order = np.argsort([len(item) for item in items], kind="stable")  # similar lengths share a batch
    out = None
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size]
            width = 1 + max(len(items[i]) for i in chosen)
            batch = np.full((len(chosen), width), PAD_ID, dtype=np.int64)
            batch[:, 0] = BOS_ID
            for row, i in enumerate(chosen):
                batch[row, 1 : 1 + len(items[i])] = items[i]
            tokens = torch.from_numpy(batch).to(device)
            features, _ = model(tokens, features_only=True)
            if pooling == "bos":
                pooled = features[:, 0]
            else:
                regular = (tokens >= NUM_SPECIALS).unsqueeze(-1).to(features.dtype)
                pooled = (features * regular).sum(1) / regular.sum(1).clamp(min=1)
            pooled = pooled.double().cpu().numpy()
            if out is None:
                out = np.empty((len(items), pooled.shape[1]), dtype=np.float64)
            out[chosen] = pooled
    if out is None:
        raise FewshotDataError("nothing to embed: the split is empty")
    return out


def probe_outputs(data_dir: str | os.PathLike, split: str, out_json: str | os.PathLike | None = None,
                  predictions_path: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """The metrics JSON and predictions TSV paths: as given, else ``probe_{split}_*`` in the data folder."""
    return (Path(out_json) if out_json else Path(data_dir) / f"probe_{split}_metrics.json",
            Path(predictions_path) if predictions_path else Path(data_dir) / f"probe_{split}_predictions.tsv")


def probe_checkpoint(
    checkpoint: str | os.PathLike | None,
    data_dir: str | os.PathLike,
    split: str = "test",
    out_json: str | os.PathLike | None = None,
    predictions_path: str | os.PathLike | None = None,
    pooling: str = "mean",
    batch_size: int = 64,
    arch: str = DEFAULT_ARCH,
) -> dict:
    """Probe a pretrained checkpoint (``None``: a random ``arch`` encoder) on a prepared directory.

    Fits on ``train``, scores ``split``; writes the predictions TSV and the metrics JSON
    (defaults: ``DATA_DIR/probe_{split}_*``) and returns the JSON's content, which has the
    fields of ``evaluate``'s plus ``method``, ``pooling`` and ``probe_C``.
    """
    data_dir = Path(data_dir)
    prepared = PreparedData.load(data_dir)
    out_json, predictions_path = probe_outputs(data_dir, split, out_json, predictions_path)
    if checkpoint is None:
        model = random_encoder(data_dir / "input0" / "dict.txt", arch)
    else:
        model = load_frozen_encoder(checkpoint, data_dir / "input0")
    train = read_split(data_dir, "train")
    test = read_split(data_dir, split)
    probs = fit_probe(embed_items(model, train.items, pooling, batch_size), train.targets,
                      embed_items(model, test.items, pooling, batch_size), prepared.num_classes)
    predictions = Predictions(prepared.labels, np.arange(len(test.targets)), test.targets, probs)
    result = probe_result(predictions, pooling)
    result.update(split=split, checkpoint=str(checkpoint) if checkpoint else "none", data=str(data_dir),
                  predictions=str(predictions_path))
    write_predictions(predictions_path, predictions)
    with atomic_file(out_json) as handle:
        handle.write(json.dumps(result, indent=2) + "\n")
    return result


def probe_result(predictions: Predictions, pooling: str) -> dict:
    """The metrics JSON fields shared with ``evaluate`` (:func:`.metrics.scores_json`), plus the probe's settings."""
    return {
        **scores_json(predictions),
        "method": "probe",
        "pooling": pooling,
        "probe_C": PROBE_C,
    }
