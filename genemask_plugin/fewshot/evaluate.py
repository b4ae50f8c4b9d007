"""Score a fine-tuned ``sentence_prediction`` checkpoint on a prepared split.

The model and task are restored through fairseq (``load_model_ensemble_and_task``), and
the split is read through the task's own ``load_dataset`` and batch iterator, so the
inputs are exactly what fine-tuning saw (``<s>`` + k-mer ids + ``</s>``). Importing this
module registers the plugin (:mod:`genemask_plugin.registration`), so fairseq knows our
architectures and torch's ``weights_only`` loader reads fairseq checkpoints: no ``--user-dir`` or
env var needed.
The predictions TSV and the metrics JSON are written atomically.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from fairseq import checkpoint_utils

from genemask_preprocess.atomic_output import atomic_file, check_can_write
from genemask_preprocess.errors import GeneMaskError
from genemask_preprocess.formats.fairseq_dictionary import read_dictionary_symbols
from genemask_preprocess.kmers import NUM_SPECIALS

from .. import registration  # noqa: F401  (fairseq must know the architectures)
from ..checkpoints import (
    CLASSIFIER_TASK,
    config_field,
    load_checkpoint_state,
    task_config,
    task_name,
    training_data,
)
from .metrics import Predictions, scores_json, write_predictions_to
from .prepare import METADATA_FILE, FewshotDataError, PreparedData


class EvaluationError(GeneMaskError):
    """The checkpoint or split cannot be evaluated (one-line message)."""


def predict_split(
    checkpoint: str | os.PathLike,
    data_dir: str | os.PathLike,
    split: str = "test",
    batch_size: int = 64,
    device: str | None = None,
) -> Predictions:
    """Class probabilities of every sequence of ``data_dir``'s ``split``, in file order."""
    data_dir = Path(data_dir)
    if not Path(checkpoint).exists():  # a folder or a pipe: load_checkpoint_state says what it is
        raise EvaluationError(f"checkpoint not found: {checkpoint}")
    for sub in ("input0", "label"):
        if not (data_dir / sub / f"{split}.idx").exists():
            raise FewshotDataError(f"{data_dir} has no {split} split ({sub}/{split}.idx missing)")
    state = load_checkpoint_state(checkpoint)
    task = task_name(state)
    if task != CLASSIFIER_TASK:
        raise EvaluationError(
            f"{checkpoint} is a {task} checkpoint, not one fine-tuned with {CLASSIFIER_TASK} "
            "(fine-tune it first: genemask-fewshot finetune / examples/finetune_fewshot.sh)"
        )
    check_same_classes(checkpoint, config_field(task_config(state), "num_classes"), training_data(state), data_dir)
    del state
    try:
        models, cfg, task = checkpoint_utils.load_model_ensemble_and_task(
            [str(checkpoint)], arg_overrides={"data": str(data_dir)}
        )
    except Exception as err:
        raise EvaluationError(f"cannot load {checkpoint} with data {data_dir}: {err}") from None
    model = models[0]
    head = cfg.task.classification_head_name
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()

    task.load_dataset(split)
    dataset = task.dataset(split)
    index, targets, probs = [], [], []
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*pin_memory.*")
        iterator = task.get_batch_iterator(
            dataset,
            max_sentences=batch_size,
            max_positions=task.max_positions(),
            ignore_invalid_inputs=False,
            seed=1,
            num_workers=0,
        ).next_epoch_itr(shuffle=False)
        for sample in iterator:
            net_input = {k: v.to(device) for k, v in sample["net_input"].items()}
            logits, _ = model(**net_input, features_only=True, classification_head_name=head)
            probs.append(torch.softmax(logits.double(), dim=-1).cpu().numpy())
            index.append(sample["id"].numpy())
            targets.append(sample["target"].view(-1).numpy())
    order = np.argsort(np.concatenate(index), kind="stable")
    label_dict = task.label_dictionary
    labels = label_dict.symbols[label_dict.nspecial : label_dict.nspecial + cfg.task.num_classes]
    return Predictions(
        labels=list(labels),
        index=np.concatenate(index)[order],
        targets=np.concatenate(targets)[order].astype(np.int64),
        probs=np.concatenate(probs)[order],
    )


def check_same_classes(checkpoint, num_classes: int | None, trained_on: Path | None, data_dir: Path) -> None:
    """Refuse data whose classes are not the model's: scores would compare unrelated class ids.

    The data's classes come from its ``label/dict.txt`` (checked in full when it is a
    ``prepare`` output); the model's from its config (``num_classes``) and, when its
    fine-tuning data (``trained_on``) is still there, from that data's label dictionary.
    """
    if (data_dir / METADATA_FILE).is_file():
        PreparedData.load(data_dir)
    data_labels = read_dictionary_symbols(data_dir / "label" / "dict.txt")[NUM_SPECIALS:]
    if num_classes is not None and num_classes != len(data_labels):
        raise EvaluationError(
            f"{data_dir} has {len(data_labels)} classes ({', '.join(data_labels)}), but {checkpoint} "
            f"was fine-tuned for {num_classes}"
        )
    model_dict = trained_on / "label" / "dict.txt" if trained_on else None
    if model_dict is not None and model_dict.is_file():
        model_labels = read_dictionary_symbols(model_dict)[NUM_SPECIALS:]
        if model_labels[: len(data_labels)] != data_labels:
            raise EvaluationError(
                f"{data_dir}'s classes ({', '.join(data_labels)}) are not the model's "
                f"({', '.join(model_labels)}, from {model_dict}); class ids would not match"
            )


def evaluation_outputs(checkpoint: str | os.PathLike, split: str, out_json: str | os.PathLike | None = None,
                       predictions_path: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """The metrics JSON and predictions TSV paths: as given, else ``{split}_*`` next to the checkpoint."""
    folder = Path(checkpoint).parent
    return (Path(out_json) if out_json else folder / f"{split}_metrics.json",
            Path(predictions_path) if predictions_path else folder / f"{split}_predictions.tsv")


def evaluate_checkpoint(
    checkpoint: str | os.PathLike,
    data_dir: str | os.PathLike,
    split: str = "test",
    out_json: str | os.PathLike | None = None,
    predictions_path: str | os.PathLike | None = None,
    batch_size: int = 64,
) -> dict:
    """Predict ``split``, write the predictions TSV and the metrics JSON; return the JSON's content.

    Defaults: ``{split}_metrics.json`` and ``{split}_predictions.tsv`` next to the checkpoint.
    """
    checkpoint = Path(checkpoint)
    out_json, predictions_path = evaluation_outputs(checkpoint, split, out_json, predictions_path)
    check_can_write(out_json, "--out")
    check_can_write(predictions_path, "--predictions")
    predictions = predict_split(checkpoint, data_dir, split, batch_size)
    result = {
        **scores_json(predictions),
        "split": split,
        "checkpoint": str(checkpoint),
        "data": str(data_dir),
        "predictions": str(predictions_path),
    }
    # Both files or neither: each is renamed into place only once both are written in full.
    with atomic_file(predictions_path, newline="") as table, atomic_file(out_json) as handle:
        write_predictions_to(table, predictions)
        handle.write(json.dumps(result, indent=2) + "\n")
    return result
