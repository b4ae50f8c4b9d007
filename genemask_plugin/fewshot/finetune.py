"""Few-shot fine-tuning with fairseq's built-in ``sentence_prediction`` task: the paper's recipe.

:func:`fairseq_train_args` builds the ``fairseq-train`` command line: the one source of the
recipe. :class:`FinetuneRun` is one run of it on a prepared folder, the one path that
``genemask-fewshot finetune`` (and so ``examples/finetune_fewshot.sh``) and every grid cell take.
The paper (GeneMask §5) fine-tunes 10/50/100-shot sets with batch 5, lr 1e-4 for 20
epochs and 500/1000-shot sets with batch 15, lr 5e-5 for 5 epochs; both with 10% warm-up
then linear decay, dropout 0.1 and weight decay 0.01, and no dev-set selection: the
model after the last update (``checkpoint_last.pt``) is the one scored. What the paper does not
state comes from the authors' fine-tuning script (DNABERT's ``run_finetune.py`` defaults): Adam
(0.9, 0.999) with eps 1e-8, gradient clipping at 1.0, classifier dropout 0.1, warm-up
``int(0.1 * updates)`` (docs/genemask_method.md, section 8). When the prepared
data has a ``valid`` split (a GUE ``dev.csv``, or ``prepare --valid``), it is used for model
selection through fairseq's own machinery instead: validation after every epoch, ``--report-mcc``
(the criterion's MCC over the whole split), ``--best-checkpoint-metric mcc
--maximize-best-checkpoint-metric``, and ``checkpoint_best.pt`` (best dev MCC, the later epoch on
a tie) is the one scored. Labels that are not all integers select on dev accuracy (fairseq's
MCC parses labels as integers). One device:
fairseq would otherwise spread the run over every visible GPU and multiply the batch.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from genemask_preprocess.atomic_output import atomic_directory, atomic_file, removing_on_failure
from genemask_preprocess.errors import GeneMaskError
from genemask_preprocess.kmers import BOS_ID, EOS_ID

from ..checkpoints import CLASSIFIER_TASK, LAST_CHECKPOINT, ModelShape
from .finetune_recipe import FinetuneRecipe, paper_recipe
from .prepare import METADATA_FILE, PreparedData, is_integer_label

PLUGIN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"""The ``--user-dir`` of ``fairseq-train``: the ``genemask_plugin`` folder."""
BEST_CHECKPOINT = "checkpoint_best.pt"
"""The checkpoint scored when a ``valid`` split selects the model."""
DEFAULT_SHAPE = ModelShape()
"""The model trained from scratch when none is named."""


class FinetuneError(GeneMaskError):
    """Fine-tuning could not start or did not finish (one-line message)."""


def schedule(n_train: int, recipe: FinetuneRecipe, epochs: int | None = None,
             max_updates: int | None = None) -> tuple[int, int, int]:
    """(epochs, total updates, warm-up updates); every batch is full-size but the last of an epoch.

    The warm-up is the authors' ``int(warmup_percent * t_total)``, rounded down.
    """
    epochs = epochs or recipe.epochs
    total = epochs * math.ceil(n_train / recipe.batch_size)
    if max_updates:
        total = min(total, max_updates)
    return epochs, total, int(recipe.warmup_fraction * total)


def check_fits(longest_item: int, shape: ModelShape, data_dir: str | os.PathLike) -> None:
    """Raise unless ``<s>`` + the longest prepared item (k-mers + ``</s>``) fits the model's positions."""
    if longest_item + 1 > shape.max_positions:
        raise FinetuneError(
            f"{data_dir}: sequences of up to {longest_item + 1} tokens (<s> + k-mers + </s>) do not "
            f"fit the model's {shape.max_positions} positions"
        )


def fairseq_train_args(
    data_dir: str | os.PathLike,
    save_dir: str | os.PathLike,
    *,
    checkpoint: str | os.PathLike | None,
    shots: int,
    seed: int,
    n_train: int,
    num_classes: int,
    shape: ModelShape = DEFAULT_SHAPE,
    cpu: bool = False,
    epochs: int | None = None,
    max_updates: int | None = None,
    extra: tuple[str, ...] | list[str] = (),
    valid_metric: str | None = None,
) -> list[str]:
    """Arguments of ``fairseq-train`` for one few-shot fine-tuning run (without the program name).

    ``checkpoint=None`` trains from scratch (the baseline). ``epochs``/``max_updates``
    override the paper's length for quick runs; warm-up and decay follow the shortened run.
    ``valid_metric`` (``mcc`` or ``accuracy``) validates on the ``valid`` split every epoch and
    keeps the best model as ``checkpoint_best.pt``; without it there is no validation.
    """
    recipe = paper_recipe(shots)
    epochs, total, warmup = schedule(n_train, recipe, epochs, max_updates)
    args = [
        str(data_dir),
        "--user-dir", PLUGIN_DIR,
        "--task", CLASSIFIER_TASK,
        "--criterion", CLASSIFIER_TASK,
        "--num-classes", str(num_classes),
        "--init-token", str(BOS_ID),
        "--separator-token", str(EOS_ID),
        "--arch", shape.arch,
        "--max-positions", str(shape.max_positions),
        *shape.options,
    ]
    if checkpoint is not None:
        args += ["--restore-file", str(checkpoint), "--reset-optimizer", "--reset-dataloader",
                 "--reset-meters"]
    args += [
        "--dropout", str(recipe.dropout),
        "--attention-dropout", str(recipe.dropout),
        "--pooler-dropout", str(recipe.pooler_dropout),
        "--optimizer", "adam",
        "--adam-betas", f"({recipe.adam_betas[0]},{recipe.adam_betas[1]})",
        "--adam-eps", str(recipe.adam_eps),
        "--weight-decay", str(recipe.weight_decay),
        "--clip-norm", str(recipe.clip_norm),
        "--lr", str(recipe.lr),
        "--lr-scheduler", "polynomial_decay",
        "--warmup-updates", str(warmup),
        "--total-num-update", str(total),
        "--max-update", str(total),
        "--max-epoch", str(epochs),
        "--batch-size", str(recipe.batch_size),
        "--required-batch-size-multiple", "1",
        "--distributed-world-size", "1",
        "--seed", str(seed),
        *validation_args(valid_metric),
        "--no-epoch-checkpoints",
        "--no-save-optimizer-state",
        "--num-workers", "0",
        "--log-format", "simple",
        "--log-interval", "10",
        "--save-dir", str(save_dir),
    ]
    if cpu:
        args.append("--cpu")
    return args + list(extra)


def validation_args(valid_metric: str | None) -> list[str]:
    """fairseq-train options for model selection on the ``valid`` split (none: no validation)."""
    if valid_metric is None:
        return ["--disable-validation"]
    if valid_metric not in ("mcc", "accuracy"):
        raise FinetuneError(f"model selection metric must be mcc or accuracy, got {valid_metric!r}")
    args = ["--valid-subset", "valid", "--best-checkpoint-metric", valid_metric,
            "--maximize-best-checkpoint-metric"]
    return args + (["--report-mcc"] if valid_metric == "mcc" else [])


def selection_metric(labels: list[str], has_valid: bool) -> str | None:
    """The dev metric that selects the model: MCC when labels are integers, accuracy otherwise."""
    if not has_valid:
        return None
    return "mcc" if all(is_integer_label(label) for label in labels) else "accuracy"


def final_checkpoint_name(args: list[str]) -> str:
    """``checkpoint_best.pt`` when the run selects on a dev split, else ``checkpoint_last.pt``."""
    return BEST_CHECKPOINT if "--best-checkpoint-metric" in args else LAST_CHECKPOINT


@dataclass(frozen=True)
class FinetuneRun:
    """One fine-tuning run of the recipe on a prepared folder: ``genemask-fewshot finetune`` and each grid cell."""

    data: PreparedData
    checkpoint: Path | None
    """The pretrained checkpoint to start from; None trains from scratch."""
    shape: ModelShape
    shots: int
    seed: int
    epochs: int | None = None
    max_updates: int | None = None
    extra: tuple[str, ...] = ()
    """Options passed through to ``fairseq-train``."""

    def train_args(self, save_dir: str | os.PathLike) -> list[str]:
        """The ``fairseq-train`` arguments; raises unless the longest item fits the model's positions.

        A ``valid`` split selects the model (:func:`selection_metric`); the device is the GPU if any.
        """
        data = self.data
        check_fits(max(split.max_tokens for split in data.splits.values()), self.shape, data.out)
        return fairseq_train_args(
            data.out, save_dir, checkpoint=self.checkpoint, shots=self.shots, seed=self.seed,
            n_train=data.splits["train"].rows, num_classes=data.num_classes, shape=self.shape,
            cpu=not cuda_available(), epochs=self.epochs, max_updates=self.max_updates, extra=self.extra,
            valid_metric=selection_metric(data.labels, "valid" in data.splits),
        )

    @property
    def updates(self) -> int:
        """How many updates the run makes."""
        return schedule(self.data.splits["train"].rows, paper_recipe(self.shots), self.epochs, self.max_updates)[1]


def cuda_available() -> bool:
    return torch.cuda.is_available()


def run_finetune(args: list[str], log_path: str | os.PathLike, name_log: bool = True) -> Path:
    """Run ``fairseq-train`` (in a subprocess, so a crash cannot take the caller down).

    Its output goes to ``log_path``; returns the final checkpoint. Raises
    :class:`FinetuneError` with the log's last line when training fails, and the log's path
    when ``name_log`` (a caller that removes the log on failure passes False: never name a file that is gone).
    """
    save_dir = Path(args[args.index("--save-dir") + 1])
    command = [sys.executable, "-m", "fairseq_cli.train", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "w", encoding="utf-8", errors="surrogateescape") as log:
        log.write("+ fairseq-train " + " ".join(args) + "\n")
        log.flush()
        returncode = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    final = save_dir / final_checkpoint_name(args)
    if returncode != 0 or not final.exists():
        text = Path(log_path).read_text(encoding="utf-8", errors="replace")
        lines = [line for line in text.splitlines() if line.strip()]
        last = lines[-1].strip() if lines else "no output"
        if len(last) > 300:  # a truncated log (full disk) may end inside fairseq's config dump
            last = last[:300] + "..."
        where = f" (log: {log_path})" if name_log else ""
        raise FinetuneError(f"fairseq-train failed (exit {returncode}): {last}{where}")
    return final


# ---------------------------------------------------------------------------------------------
# Continuing a run: only with the settings it was started with


RUN_RECORD = "finetune.json"
"""The settings of the run in a ``genemask-fewshot finetune --out`` folder, written before it starts."""
RUN_FILES = (LAST_CHECKPOINT, BEST_CHECKPOINT, "train.log", RUN_RECORD)
"""What a fine-tuning run writes in its folder (``--force`` replaces them, and other ``checkpoint*.pt``)."""
SETTING_NAMES = {
    "checkpoint": "the starting checkpoint", "data": "the prepared data", "shots": "--shots", "seed": "--seed",
    "epochs": "--epochs", "max_updates": "--max-updates", "arch": "--arch",
    "model_options": "the model's size options", "fairseq_options": "the fairseq-train options after '--'",
}


def file_identity(path: str | os.PathLike | None) -> dict | None:
    """A file as a record compares it: its absolute path, size and modification time."""
    if path is None:
        return None
    info = os.stat(path)
    return {"path": os.path.abspath(path), "size": info.st_size, "mtime_ns": info.st_mtime_ns}


def prepared_data_fingerprint(data: PreparedData) -> str:
    """A content fingerprint of a prepared folder: its metadata, dictionaries and every split's files."""
    digest = hashlib.sha256()
    folder = Path(data.out)
    names = [METADATA_FILE, "input0/dict.txt", "label/dict.txt"]
    names += [f"{sub}/{split}.{ext}" for split in sorted(data.splits) for sub in ("input0", "label")
              for ext in ("idx", "bin")]
    for name in names:
        digest.update(name.encode())
        with open(folder / name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def run_settings(run: FinetuneRun) -> dict:
    """What makes a fine-tuning run the one it is: what a run in the same folder must share to continue it."""
    return {
        "checkpoint": file_identity(run.checkpoint),
        "data": {"path": os.path.abspath(run.data.out), "fingerprint": prepared_data_fingerprint(run.data)},
        "shots": run.shots, "seed": run.seed, "epochs": run.epochs, "max_updates": run.max_updates,
        "arch": run.shape.arch, "model_options": list(run.shape.options), "fairseq_options": list(run.extra),
    }


def _shown(name: str, value) -> str:
    if name == "checkpoint":
        return "none (from scratch)" if value is None else str(value.get("path"))
    if name == "data":
        return f"{value.get('path')} (content {value.get('fingerprint')})" if isinstance(value, dict) else "?"
    return "none" if value is None else " ".join(value) if isinstance(value, list) else str(value)


def earlier_run_conflict(out: str | os.PathLike, settings: dict) -> str | None:
    """Why the run in ``out`` cannot be continued by a run with ``settings`` (None: there is none, or it can).

    fairseq-train resumes from ``checkpoint_last.pt`` in its save dir, whatever it was trained
    with; that is right only for the same run, stopped and started again.
    """
    out = Path(out)
    checkpoints = sorted(p.name for p in out.glob("checkpoint*.pt")) if out.is_dir() else []
    record_path = out / RUN_RECORD
    if not record_path.is_file():
        if not checkpoints:
            return None
        return (f"{out} holds {', '.join(checkpoints)} of a run with no record of its settings ({RUN_RECORD}), "
                "so it cannot be continued safely")
    try:
        recorded = json.loads(record_path.read_text(encoding="utf-8"))["settings"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"{record_path} is damaged ({err})"
    for name, value in settings.items():
        if recorded.get(name) != value:
            label = SETTING_NAMES.get(name, name)
            return (f"{out} holds a run with {label} {_shown(name, recorded.get(name))}; "
                    f"this run has {label} {_shown(name, value)}")
    return None


def write_run_record(folder: str | os.PathLike, settings: dict) -> None:
    with atomic_file(Path(folder) / RUN_RECORD, encoding="utf-8") as handle:
        handle.write(json.dumps({"settings": settings}, indent=2) + "\n")


def finetune_into(run: FinetuneRun, out: str | os.PathLike, force: bool = False) -> Path:
    """Fine-tune into ``out`` (``genemask-fewshot finetune``); returns the final checkpoint.

    A run already in ``out`` is continued only when its recorded settings (:data:`RUN_RECORD`)
    are this run's; otherwise it is refused, naming the first setting that differs, unless
    ``force``: then this run is trained in a temporary sibling and replaces the old run's files
    only once it is complete (other files in ``out`` are kept). A failed or stopped run leaves
    ``out`` as it was.
    """
    out = Path(out)
    settings = run_settings(run)
    conflict = earlier_run_conflict(out, settings)
    if conflict is None:
        with removing_on_failure(out):  # a stopped or failed run leaves no partial checkpoint
            write_run_record(out, settings)
            return run_finetune(run.train_args(out), out / "train.log", name_log=False)
    if not force:
        raise FinetuneError(f"{conflict}; pass --force to replace that run, or choose another --out")
    owned = {*RUN_FILES, *(p.name for p in out.glob("checkpoint*.pt"))}
    with atomic_directory(out, force=True, owned=owned) as staging:
        write_run_record(staging, settings)
        final = run_finetune(run.train_args(staging), staging / "train.log", name_log=False)
    return out / final.name
