"""The GeneMask masking dataset: one mask per (seed, epoch, item), source and target from it."""

from __future__ import annotations

import numpy as np
import torch
from fairseq.data import BaseWrapperDataset, FairseqDataset, data_utils

from genemask_plugin.masking import (
    MaskingConfig,
    position_as_token_scores,
    replace_masked_tokens,
    select_mask_spans,
)


def regular_token_ids(symbols: list[str], num_specials: int, mask_idx: int) -> np.ndarray:
    """Ids a random replacement may draw: no specials, no ``<mask>``, no ``madeupword`` padding."""
    ids = [
        i
        for i in range(num_specials, len(symbols))
        if i != mask_idx and not symbols[i].startswith("madeupword")
    ]
    if not ids:
        raise ValueError("the dictionary has no regular tokens to draw replacements from")
    return np.asarray(ids, dtype=np.int64)


class GeneMaskMaskDataset(BaseWrapperDataset):
    """Masks the items of ``dataset`` (token tensors: ``<s>`` + tokens + ``</s>``) for MLM.

    The mask of item ``index`` is a pure function of ``(seed, epoch, index)``: it is
    drawn from ``np.random.default_rng([seed, epoch, index])`` (the full seed, not a
    hash squeezed to 10^6), so it does not depend on worker count, rank or the order of
    reads, and is identical after a resume. It is computed once per item; the item is a
    dict holding the model input (``source``), the target (the original token at masked
    positions, ``<pad>`` elsewhere) and ``wide`` (masked positions inside a wide PMI
    span), and :meth:`collater` builds fairseq's usual MLM batch from it.

    With ``global_config`` (a mask curriculum), every item also holds a second
    candidate mask, drawn with that config from the same ``(seed, epoch, index)``
    generator, so each candidate is exactly the mask its strategy alone gives.
    Data-loader workers never see the update count: the batch carries both candidates
    (the second under ``"global_pmi"``) and the task picks one per batch in its train step.

    Args:
        dataset: the blocks to mask.
        vocab: the fairseq dictionary, ``<mask>`` included.
        mask_idx: id of ``<mask>``.
        config: the strategy and its knobs.
        token_scores: float32 array of len(vocab), the PMI score of every token
            (``-inf`` for specials and unscored k-mers); required by the PMI strategies.
        seed: the run's seed.
        global_config: the curriculum's second strategy (``global_pmi``), or None.
    """

    def __init__(
        self,
        dataset,
        vocab,
        mask_idx: int,
        config: MaskingConfig,
        token_scores: np.ndarray | None = None,
        seed: int = 1,
        global_config: MaskingConfig | None = None,
    ):
        super().__init__(dataset)
        if config.uses_pmi or global_config is not None:
            if token_scores is None:
                raise ValueError(f"mask strategy {(global_config or config).strategy!r} needs PMI token scores")
            if len(token_scores) != len(vocab):
                raise ValueError(
                    f"{len(token_scores)} token scores for a dictionary of {len(vocab)} symbols"
                )
        if int(seed) < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.config = config
        self.global_config = global_config
        self.seed = int(seed)
        self.pad_idx = vocab.pad()
        self.mask_idx = mask_idx
        # A lookup table, so the per-item special test is one gather.
        self._is_regular = np.zeros(len(vocab), dtype=bool)
        self.replacement_ids = regular_token_ids(vocab.symbols, vocab.nspecial, mask_idx)
        self._is_regular[self.replacement_ids] = True
        self._token_scores = None
        self._position_scores = None
        if config.uses_pmi or global_config is not None:
            self._token_scores = np.asarray(token_scores, dtype=np.float32)
            if config.strategy == "genemask_position":
                max_len = int(np.max(dataset.sizes)) if len(dataset) else 0
                self._position_scores = position_as_token_scores(
                    self._token_scores, max_len, num_specials=vocab.nspecial
                )
        self.epoch = 1

    @property
    def can_reuse_epoch_itr_across_epochs(self):
        return True  # the masks change with the epoch, the sizes do not

    # Batch and filter on this dataset's sizes (<s> included), vectorised, rather than
    # delegating to the block dataset underneath.
    def num_tokens_vec(self, indices):
        return np.asarray(self.sizes)[indices]

    def batch_by_size(self, indices, max_tokens=None, max_sentences=None, required_batch_size_multiple=1):
        return data_utils.batch_by_size(
            indices,
            num_tokens_fn=self.num_tokens,
            num_tokens_vec=self.num_tokens_vec(indices).astype(np.int64),
            max_tokens=max_tokens,
            max_sentences=max_sentences,
            required_batch_size_multiple=required_batch_size_multiple,
        )

    def filter_indices_by_size(self, indices, max_sizes):
        return FairseqDataset.filter_indices_by_size(self, indices, max_sizes)

    def set_epoch(self, epoch, **unused):
        super().set_epoch(epoch)
        self.epoch = epoch

    def mask_item(self, tokens: np.ndarray, epoch: int, index: int, config: MaskingConfig | None = None):
        """``(source, target, wide)`` numpy arrays for one item's int64 tokens (``config``: default ours)."""
        config = config or self.config
        rng = np.random.default_rng([self.seed, int(epoch), int(index)])
        maskable = self._is_regular[tokens]
        if config.strategy == "genemask_position":
            scores = self._position_scores[: len(tokens)]
        elif config.uses_pmi:
            scores = self._token_scores[tokens]
        else:
            scores = None
        masked, wide = select_mask_spans(maskable, rng, config, scores)
        source = replace_masked_tokens(
            tokens,
            masked,
            rng,
            self.mask_idx,
            self.replacement_ids,
            config.leave_unmasked_prob,
            config.random_token_prob,
        )
        target = np.where(masked, tokens, self.pad_idx)
        return source, target, wide

    def __getitem__(self, index):
        tokens = self.dataset[index]
        tokens = tokens.numpy() if torch.is_tensor(tokens) else np.asarray(tokens)
        tokens = tokens.astype(np.int64, copy=False)
        source, target, wide = self.mask_item(tokens, self.epoch, index)
        item = {
            "id": index,
            "source": torch.from_numpy(source),
            "target": torch.from_numpy(target),
            "wide": torch.from_numpy(wide),
        }
        if self.global_config is not None:
            source, target, wide = self.mask_item(tokens, self.epoch, index, self.global_config)
            item["global_pmi"] = {
                "source": torch.from_numpy(source),
                "target": torch.from_numpy(target),
                "wide": torch.from_numpy(wide),
            }
        return item

    def _collate_masks(self, masks, lengths, by_global_pmi: bool):
        return {
            "net_input": {
                "src_tokens": data_utils.collate_tokens([m["source"] for m in masks], self.pad_idx),
                "src_lengths": lengths,
            },
            "target": data_utils.collate_tokens([m["target"] for m in masks], self.pad_idx),
            "masked_in_wide_span": data_utils.collate_tokens([m["wide"] for m in masks], False),
            "masked_by_global_pmi": by_global_pmi,
        }

    def collater(self, samples):
        """fairseq's MLM batch, plus ``masked_in_wide_span`` (bool, like ``target``) and
        ``masked_by_global_pmi`` (whether the spans are global PMI spans) for the criterion.

        Under a curriculum, ``"global_pmi"`` holds the same keys for the second candidate mask.
        """
        if len(samples) == 0:
            return {}
        lengths = torch.LongTensor([s["source"].numel() for s in samples])
        batch = {
            "id": torch.LongTensor([s["id"] for s in samples]),
            "nsentences": len(samples),
            "ntokens": int(lengths.sum()),
            **self._collate_masks(samples, lengths, self.config.strategy == "global_pmi"),
        }
        if self.global_config is not None:
            batch["global_pmi"] = self._collate_masks([s["global_pmi"] for s in samples], lengths, True)
            # A numpy copy of the ids stays on the host when fairseq moves the batch to the GPU, so the
            # train step picks a candidate without a device-to-host sync.
            batch["global_pmi"]["batch_ids"] = batch["id"].numpy().copy()
        return batch
