"""Validation loss under fixed shared masks: every checkpoint answers the same masked positions.

A model's own validation loss (the training log, ``fairseq-validate``) is measured under its
own strategy's masks, so models trained with different strategies answer different questions.
Here the masks are drawn by the ``genemask_mlm`` dataset from a fixed strategy and seed, whatever
strategy trained the checkpoint: block i's mask is the dataset's pure function of
``(seed, epoch 1, i)`` (docs/genemask_mlm.md, *Determinism*), so every model sees exactly the
same inputs (the 80/10/10 replacements included) and is scored on exactly the same positions.
A SHA-256 digest of the masked blocks proves it (:attr:`SharedMasks.digest`).

The loss is the training criterion's (``genemask_mlm``): cross-entropy on the masked positions,
in bits, and the masked-token accuracy, summed over batches, then divided once (a ratio of sums).
Batches are scored under ``torch.inference_mode``, on the CPU or a GPU.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from fairseq import checkpoint_utils, utils

from ..checkpoints import CheckpointError, load_checkpoint_state
from ..criterions.genemask_mlm import GeneMaskMLMLoss
from ..masking.strategies import strategy_named
from ..tasks.genemask_mlm import GeneMaskMLMConfig, GeneMaskMLMTask

EMBEDDINGS = "encoder.sentence_encoder.embed_tokens.weight"
"""The token embeddings of a fairseq RoBERTa checkpoint: one row per dictionary symbol."""
MASK_EPOCH = 1
"""The epoch whose masks are drawn (any fixed epoch would do; the first is what a first validation sees)."""


@dataclass(frozen=True)
class MaskScore:
    """One model under one set of shared masks."""

    loss_bits: float
    """Cross-entropy on the masked positions, bits per masked token."""
    accuracy: float
    """Masked tokens predicted exactly (argmax), as a fraction."""
    masked_tokens: int


class SharedMasks:
    """The masked blocks of one split under one strategy and seed, in fixed batches.

    Args:
        data: the binarized corpus (``dict.txt`` and the split).
        strategy: a plain masking strategy of the registry (``random``, ``kmer_span`` ...).
        seed: the mask seed (not the checkpoints' training seeds).
        split: the split scored.
        sample_break_mode, tokens_per_sample: how items become blocks (the task's options).
        pmi_table: the PMI table, for a strategy that needs one.
        batch_size: blocks per batch (does not change the result).
        max_blocks: score only blocks 0 .. max_blocks-1 (None: all), for a large split.
    """

    def __init__(self, data, strategy: str, seed: int, *, split: str = "valid", sample_break_mode: str = "complete",
                 tokens_per_sample: int = 512, pmi_table: str | None = None, batch_size: int = 8,
                 max_blocks: int | None = None):
        if strategy_named(strategy).is_curriculum:
            raise ValueError(f"shared masks need a plain strategy, not the curriculum {strategy}")
        cfg = GeneMaskMLMConfig(data=str(data), seed=seed, mask_strategy=strategy, pmi_table=pmi_table,
                                sample_break_mode=sample_break_mode, tokens_per_sample=tokens_per_sample)
        self.task = GeneMaskMLMTask.setup_task(cfg)
        self.task.load_dataset(split)
        self.strategy, self.seed, self.split = str(strategy), int(seed), split
        self.dataset = self.task.dataset(split)
        self.dataset.set_epoch(MASK_EPOCH)
        blocks = np.arange(len(self.dataset) if max_blocks is None else min(max_blocks, len(self.dataset)))
        # Blocks of similar length together (less padding); the order changes no mask and no sum.
        order = blocks[np.argsort(self.dataset.sizes[blocks], kind="stable")]
        self._batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        self.blocks = len(blocks)
        self.criterion = GeneMaskMLMLoss(self.task)
        self.digest, self.masked_tokens = self._digest()

    def batches(self) -> Iterator[dict]:
        """The masked batches, fairseq's MLM batches (CPU tensors), the same on every call."""
        for indices in self._batches:
            yield self.dataset.collater([self.dataset[int(i)] for i in indices])

    def _digest(self) -> tuple[str, int]:
        """SHA-256 of every scored block's input and target, in block order (not batch order), and the
        masked-token count: equal digests mean the same questions, however the blocks are batched."""
        digest, masked = hashlib.sha256(), 0
        for index in range(self.blocks):
            item = self.dataset[index]
            digest.update(np.int64(index).tobytes())
            for key in ("source", "target"):
                digest.update(item[key].numpy().astype(np.int64).tobytes())
            masked += int(item["target"].ne(self.task.dictionary.pad()).sum())
        return digest.hexdigest(), masked

    def load_model(self, checkpoint: str | os.PathLike) -> torch.nn.Module:
        """A pretrained checkpoint's model, built for this corpus's dictionary, in eval mode."""
        embeddings = load_checkpoint_state(checkpoint)["model"].get(EMBEDDINGS)
        if embeddings is not None and embeddings.shape[0] != len(self.task.dictionary):
            raise CheckpointError(
                f"{checkpoint} has a vocabulary of {embeddings.shape[0]} symbols, the corpus {self.task.cfg.data} "
                f"{len(self.task.dictionary)} (<mask> included): not the dictionary it was trained with")
        try:
            models, _ = checkpoint_utils.load_model_ensemble([str(checkpoint)], task=self.task)
        except Exception as err:  # fairseq raises many types: a missing file, a vocabulary of another size ...
            first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise CheckpointError(f"cannot load {checkpoint} for {self.task.cfg.data}: {first_line}") from None
        return models[0].eval()

    def score(self, model: torch.nn.Module, device: torch.device | str = "cpu") -> MaskScore:
        """``model`` (fairseq RoBERTa, eval mode) on every masked batch."""
        model = model.to(device)
        loss, correct, masked = 0.0, 0, 0
        with torch.inference_mode():
            for batch in self.batches():
                batch = utils.apply_to_sample(lambda tensor: tensor.to(device), batch)
                batch_loss, batch_masked, log = self.criterion(model, batch)
                loss += float(batch_loss)
                correct += int(log["n_correct"])
                masked += int(batch_masked)
        if masked != self.masked_tokens:
            raise RuntimeError(f"scored {masked} masked tokens, the masks hold {self.masked_tokens}")
        if masked == 0:
            return MaskScore(math.nan, math.nan, 0)
        return MaskScore(loss / masked / math.log(2), correct / masked, masked)
