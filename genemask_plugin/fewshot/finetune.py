"""Few-shot fine-tuning with fairseq's built-in ``sentence_prediction`` task: the paper's recipe.

:func:`fairseq_train_args` builds the ``fairseq-train`` command line: the one source of the
recipe (``examples/finetune_fewshot.sh`` runs ``genemask-fewshot finetune``, which uses it).
The paper (GeneMask §5) fine-tunes 10/50/100-shot sets with batch 5, lr 1e-4 for 20
epochs and 500/1000-shot sets with batch 15, lr 5e-5 for 5 epochs; both with 10% warm-up
then linear decay, dropout 0.1 and weight decay 0.01, and no dev-set selection: the
model after the last update (``checkpoint_last.pt``) is the one scored. When the prepared
data has a ``valid`` split (a GUE ``dev.csv``, or ``prepare --valid``), it is used for model
selection through fairseq's own machinery instead: validation after every epoch, ``--report-mcc``
(the criterion's MCC over the whole split), ``--best-checkpoint-metric mcc
--maximize-best-checkpoint-metric``, and ``checkpoint_best.pt`` (best dev MCC, the later epoch on
a tie) is the one scored. Labels that are not all integers select on dev accuracy (fairseq's
MCC parses labels as integers). One device:
fairseq would otherwise spread the run over every visible GPU and multiply the batch.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from fairseq.models import ARCH_CONFIG_REGISTRY

import genemask_plugin
from genemask_preprocess.errors import GeneMaskError

PLUGIN_DIR = os.path.dirname(os.path.abspath(genemask_plugin.__file__))
DEFAULT_ARCH = "genemask_tiny"
DEFAULT_MAX_POSITIONS = 512
FINAL_CHECKPOINT = "checkpoint_last.pt"
BEST_CHECKPOINT = "checkpoint_best.pt"
"""The checkpoint scored when a ``valid`` split selects the model."""
LARGE_REGIME_SHOTS = 500
"""Shot counts from here on use the 500/1000-shot settings."""

# Model options copied from a pretrained checkpoint so the fine-tuning model has its shape.
_SIZE_OPTIONS = ("encoder_layers", "encoder_embed_dim", "encoder_ffn_embed_dim", "encoder_attention_heads")
_CHOICE_OPTIONS = ("activation_fn", "pooler_activation_fn")
_TRUE_FLAGS = ("encoder_normalize_before", "layernorm_embedding", "untie_weights_roberta")


class FinetuneError(GeneMaskError):
    """Fine-tuning could not start or did not finish (one-line message)."""


@dataclass(frozen=True)
class FinetuneRecipe:
    batch_size: int
    lr: float
    epochs: int
    warmup_fraction: float = 0.1
    dropout: float = 0.1
    weight_decay: float = 0.01


def paper_recipe(shots: int) -> FinetuneRecipe:
    """The paper's settings for a shot regime (``shots`` is the paper's name of the set)."""
    if shots >= LARGE_REGIME_SHOTS:
        return FinetuneRecipe(batch_size=15, lr=5e-5, epochs=5)
    return FinetuneRecipe(batch_size=5, lr=1e-4, epochs=20)


def schedule(n_train: int, recipe: FinetuneRecipe, epochs: int | None = None,
             max_updates: int | None = None) -> tuple[int, int, int]:
    """(epochs, total updates, warm-up updates); every batch is full-size but the last of an epoch."""
    epochs = epochs or recipe.epochs
    total = epochs * math.ceil(n_train / recipe.batch_size)
    if max_updates:
        total = min(total, max_updates)
    warmup = math.floor(recipe.warmup_fraction * total + 0.5 + 1e-9)  # rounded half up
    return epochs, total, warmup


@dataclass(frozen=True)
class ModelShape:
    """What the fine-tuning model must share with the pretrained one: arch and sizes."""

    arch: str = DEFAULT_ARCH
    max_positions: int = DEFAULT_MAX_POSITIONS
    options: tuple[str, ...] = ()
    """Extra ``fairseq-train`` model flags (sizes the checkpoint overrode)."""


def config_field(config, name, default=None):
    """A field of a checkpoint config saved as a dict or as an ``argparse.Namespace``."""
    if config is None:
        return default
    if isinstance(config, dict):
        return config.get(name, default)
    return getattr(config, name, default)


def load_checkpoint_state(checkpoint: str | os.PathLike) -> dict:
    """A fairseq checkpoint's saved dict, memory-mapped (raises :class:`FinetuneError` if unreadable)."""
    try:
        state = torch.load(checkpoint, map_location="cpu", mmap=True, weights_only=True)
    except FileNotFoundError:
        raise FinetuneError(f"checkpoint not found: {checkpoint}") from None
    except IsADirectoryError:
        raise FinetuneError(f"{checkpoint} is a directory, expected a checkpoint file") from None
    except Exception as err:  # torch raises many types for a bad file
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise FinetuneError(f"cannot read checkpoint {checkpoint}: {first_line}") from None
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict) or not (
        state.get("cfg") or state.get("args")
    ):
        what = type(state).__name__ if not isinstance(state, dict) else "a dict without a model and its config"
        raise FinetuneError(f"{checkpoint} is not a fairseq checkpoint: it holds {what}")
    return state


def read_model_shape(checkpoint: str | os.PathLike) -> ModelShape:
    """Architecture and size options of a fairseq checkpoint's model config.

    Copying them means a model pretrained as ``--arch roberta_base --encoder-layers 2``
    (or any genemask_* variant) is rebuilt with the same shape before its weights load.
    """
    state = load_checkpoint_state(checkpoint)
    model_cfg = config_field(state.get("cfg"), "model") or state.get("args")
    arch = config_field(model_cfg, "arch") or config_field(model_cfg, "_name")
    if not arch:
        raise FinetuneError(f"{checkpoint} has no model architecture in its config")
    if arch not in ARCH_CONFIG_REGISTRY:
        raise FinetuneError(f"{checkpoint}: unknown architecture {arch!r}")
    defaults = argparse.Namespace()
    ARCH_CONFIG_REGISTRY[arch](defaults)
    options: list[str] = []  # only what the checkpoint changed from its --arch defaults
    for name in _SIZE_OPTIONS + _CHOICE_OPTIONS:
        value = config_field(model_cfg, name)
        if value is not None and value != getattr(defaults, name, None):
            options += [f"--{name.replace('_', '-')}", str(value)]
    for name in _TRUE_FLAGS:
        if config_field(model_cfg, name) is True and getattr(defaults, name, None) is not True:
            options.append(f"--{name.replace('_', '-')}")
    max_positions = config_field(model_cfg, "max_positions") or DEFAULT_MAX_POSITIONS
    return ModelShape(arch, int(max_positions), tuple(options))


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
    shape: ModelShape = ModelShape(),
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
        "--task", "sentence_prediction",
        "--criterion", "sentence_prediction",
        "--num-classes", str(num_classes),
        "--init-token", "0",
        "--separator-token", "2",
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
        "--optimizer", "adam",
        "--adam-betas", "(0.9,0.98)",
        "--adam-eps", "1e-06",
        "--weight-decay", str(recipe.weight_decay),
        "--clip-norm", "0.0",
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
    return "mcc" if all(label.lstrip("+-").isdigit() for label in labels) else "accuracy"


def final_checkpoint_name(args: list[str]) -> str:
    """``checkpoint_best.pt`` when the run selects on a dev split, else ``checkpoint_last.pt``."""
    return BEST_CHECKPOINT if "--best-checkpoint-metric" in args else FINAL_CHECKPOINT


def cuda_available() -> bool:
    return torch.cuda.is_available()


def run_finetune(args: list[str], log_path: str | os.PathLike) -> Path:
    """Run ``fairseq-train`` (in a subprocess, so a crash cannot take the caller down).

    Its output goes to ``log_path``; returns the final checkpoint. Raises
    :class:`FinetuneError` with the log's last line when training fails.
    """
    save_dir = Path(args[args.index("--save-dir") + 1])
    command = [sys.executable, "-m", "fairseq_cli.train", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "w") as log:
        log.write("+ fairseq-train " + " ".join(args) + "\n")
        log.flush()
        returncode = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    final = save_dir / final_checkpoint_name(args)
    if returncode != 0 or not final.exists():
        lines = [line for line in Path(log_path).read_text().splitlines() if line.strip()]
        last = lines[-1].strip() if lines else "no output"
        if len(last) > 300:  # a truncated log (full disk) may end inside fairseq's config dump
            last = last[:300] + "..."
        raise FinetuneError(f"fairseq-train failed (exit {returncode}): {last} (log: {log_path})")
    return final
