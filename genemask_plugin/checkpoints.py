"""Reading a fairseq checkpoint: its saved state, its config, and the shape of its model.

A fairseq checkpoint (``checkpoint_last.pt``) is a ``torch.save``'d dict: ``model`` (the weights),
``cfg`` (the run's config as nested sections, ``model``, ``task``, ``checkpoint`` ...) or, from
older runs and tools, ``args`` (one flat ``argparse.Namespace``), and ``optimizer_history``,
``task_state`` and ``extra_state``. This module is the one place that loads one: memory-mapped,
so only the tensors used are read, and with torch's safe ``weights_only`` loader. Importing it
allows the ``argparse.Namespace`` fairseq pickles, for our loads and fairseq's own (resume,
``--restore-file``, ``fairseq-validate``): the ``genemask_mlm`` task imports it, so every process that
registers the plugin can read fairseq checkpoints. The few-shot commands, ``genemask-hf`` and the
task's resume all read checkpoints through it.

A model's *shape* is what rebuilding it needs before its weights load: the architecture and
the size options the checkpoint changed from that architecture's defaults (:func:`read_model_shape`).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from fairseq.models import ARCH_CONFIG_REGISTRY

from genemask_preprocess.command_line import is_out_of_memory
from genemask_preprocess.errors import InputError
from genemask_preprocess.formats.input_file import require_regular_file
from genemask_preprocess.native_paths import native_path

from .models import genemask_roberta  # noqa: F401  (registers the architectures read below)
from .models.defaults import DEFAULT_ARCH, MAX_POSITIONS

# fairseq pickles an argparse.Namespace into every checkpoint; torch >= 2.6 loads weights_only by default.
torch.serialization.add_safe_globals([argparse.Namespace])

LAST_CHECKPOINT = "checkpoint_last.pt"
"""The checkpoint ``fairseq-train`` saves after its last update, and its default ``--restore-file``."""
CLASSIFIER_TASK = "sentence_prediction"
"""fairseq's task (and criterion) that fine-tunes a classifier: the task a fine-tuned checkpoint records."""
UNTRAINED_LM_HEAD = "untrained_lm_head"
"""A ``task_state`` key: why the checkpoint's masked-LM head is untrained (``genemask-hf import`` of a
model without one); absent when the head is trained. Training the head further drops it."""

# Model options copied from a pretrained checkpoint so the fine-tuning model has its shape.
_SIZE_OPTIONS = ("encoder_layers", "encoder_embed_dim", "encoder_ffn_embed_dim", "encoder_attention_heads")
_CHOICE_OPTIONS = ("activation_fn", "pooler_activation_fn")
_TRUE_FLAGS = ("encoder_normalize_before", "layernorm_embedding", "untie_weights_roberta")


class CheckpointError(InputError):
    """A checkpoint that cannot be read, or a model that cannot be rebuilt (one-line message)."""


def load_checkpoint_state(checkpoint: str | os.PathLike) -> dict:
    """A fairseq checkpoint's saved dict, memory-mapped; :class:`CheckpointError` if it is not one."""
    require_regular_file(checkpoint, "a checkpoint is memory-mapped, and read again by each step that needs it")
    try:
        with native_path(checkpoint) as path:  # torch's memory map takes UTF-8 file names only
            state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {checkpoint}") from None
    except IsADirectoryError:
        raise CheckpointError(f"{checkpoint} is a directory, expected a checkpoint file") from None
    except Exception as err:  # torch raises many types for a bad file
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        if is_out_of_memory(err) or "Cannot allocate memory" in first_line:  # a memory limit, not a bad file
            raise MemoryError(f"reading checkpoint {checkpoint}: {first_line}") from None
        raise CheckpointError(f"cannot read checkpoint {checkpoint}: {first_line}") from None
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict) or not (
        state.get("cfg") or state.get("args")
    ):
        what = type(state).__name__ if not isinstance(state, dict) else "a dict without a model and its config"
        raise CheckpointError(f"{checkpoint} is not a fairseq checkpoint: it holds {what}")
    return state


def write_checkpoint_state(state: dict, path: str | os.PathLike) -> None:
    """``torch.save`` through a Python file: a full disk or a file-size limit is then an ``OSError`` (one line),
    not torch's ``RuntimeError`` from its own writer, and a name need not be UTF-8."""
    try:
        with open(path, "wb") as handle:
            torch.save(state, handle)
    except RuntimeError as err:  # torch's zip writer fails again on closing, hiding the write's own error
        if isinstance(err.__context__, OSError):
            raise err.__context__ from None
        raise


def config_field(config, name, default=None):
    """A field of a checkpoint config saved as a dict or as an ``argparse.Namespace``."""
    if config is None:
        return default
    if isinstance(config, dict):
        return config.get(name, default)
    return getattr(config, name, default)


def model_config(state: dict):
    """The model section of a checkpoint's config (the flat ``args`` of an older one)."""
    return config_field(state.get("cfg"), "model") or state.get("args")


def task_config(state: dict):
    """The task section of a checkpoint's config (the flat ``args`` of an older one)."""
    return config_field(state.get("cfg"), "task") or state.get("args")


def task_name(state: dict) -> str | None:
    """The fairseq task the checkpoint was trained with (``genemask_mlm``, ``sentence_prediction`` ...)."""
    config = task_config(state)
    return config_field(config, "_name") or config_field(config, "task")


def training_data(state: dict) -> Path | None:
    """The (first) data folder the checkpoint was trained on, as recorded; it may have moved since."""
    data = config_field(task_config(state), "data")
    return Path(str(data).split(os.pathsep)[0]) if data else None


def read_task_state(checkpoint: str | os.PathLike) -> dict:
    """The task's own saved state (``task_state``; empty if none): only these bytes are read."""
    return load_checkpoint_state(checkpoint).get("task_state") or {}


def untrained_lm_head(state: dict) -> str | None:
    """Why a checkpoint's masked-LM head is untrained (see :data:`UNTRAINED_LM_HEAD`), or None."""
    task_state = state.get("task_state")
    return task_state.get(UNTRAINED_LM_HEAD) if isinstance(task_state, dict) else None


def architecture_options(arch: str, **options) -> argparse.Namespace:
    """``options``, completed with the registered defaults of fairseq architecture ``arch``."""
    if arch not in ARCH_CONFIG_REGISTRY:
        raise CheckpointError(f"unknown architecture {arch!r}")
    args = argparse.Namespace(arch=arch, **options)
    ARCH_CONFIG_REGISTRY[arch](args)
    return args


@dataclass(frozen=True)
class ModelShape:
    """What a model rebuilt from a checkpoint must share with it: architecture and sizes."""

    arch: str = DEFAULT_ARCH
    max_positions: int = MAX_POSITIONS
    options: tuple[str, ...] = ()
    """Extra ``fairseq-train`` model flags (sizes the checkpoint overrode)."""


def read_model_shape(checkpoint: str | os.PathLike) -> ModelShape:
    """Architecture and size options of a fairseq checkpoint's model config.

    Copying them means a model pretrained as ``--arch roberta_base --encoder-layers 2``
    (or any genemask_* variant) is rebuilt with the same shape before its weights load.
    """
    config = model_config(load_checkpoint_state(checkpoint))
    arch = config_field(config, "arch") or config_field(config, "_name")
    if not arch:
        raise CheckpointError(f"{checkpoint} has no model architecture in its config")
    if arch not in ARCH_CONFIG_REGISTRY:
        raise CheckpointError(f"{checkpoint}: unknown architecture {arch!r}")
    defaults = architecture_options(arch)
    options: list[str] = []  # only what the checkpoint changed from its --arch defaults
    for name in _SIZE_OPTIONS + _CHOICE_OPTIONS:
        value = config_field(config, name)
        if value is not None and value != getattr(defaults, name, None):
            options += [f"--{name.replace('_', '-')}", str(value)]
    for name in _TRUE_FLAGS:
        if config_field(config, name) is True and getattr(defaults, name, None) is not True:
            options.append(f"--{name.replace('_', '-')}")
    max_positions = config_field(config, "max_positions") or MAX_POSITIONS
    return ModelShape(arch, int(max_positions), tuple(options))


def trained_updates(state: dict) -> int | None:
    """The updates the checkpoint's model was trained for (fairseq's ``optimizer_history``), None if unrecorded."""
    history = state.get("optimizer_history") or [{}]
    updates = history[-1].get("num_updates") if isinstance(history[-1], dict) else None
    return int(updates) if updates is not None else None


def training_seed(state: dict) -> int | None:
    """The ``--seed`` of the run that saved the checkpoint, None if unrecorded."""
    seed = config_field(config_field(state.get("cfg"), "common"), "seed")
    if seed is None:
        seed = config_field(state.get("args"), "seed")
    return int(seed) if seed is not None else None
