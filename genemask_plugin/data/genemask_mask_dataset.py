"""The GeneMask masking dataset: one mask per (seed, epoch, item), source and target from it."""

from __future__ import annotations

import numpy as np
import torch
from fairseq.data import BaseWrapperDataset, FairseqDataset, data_utils

from genemask_plugin.masking.config import MaskingConfig
from genemask_plugin.masking.leakage import measure_leakage, token_base_lengths
from genemask_plugin.masking.replacement import replace_masked_tokens
from genemask_plugin.masking.strategies import select_mask_spans

MASK_CANDIDATES = "mask_candidates"
"""Item and batch key of a curriculum's other candidate masks (every one but the first)."""


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
    positions, ``<pad>`` elsewhere), ``wide`` (masked positions inside a wide PMI span) and
    ``centres`` (how many mask centres were drawn), and :meth:`collater` builds fairseq's
    usual MLM batch from it.

    The strategy's registry entry says how its PMI scores are looked up and which masks to
    draw. A curriculum's items carry one mask per candidate, each drawn from its own fresh
    ``(seed, epoch, index)`` generator, so each is exactly the mask its strategy alone gives:
    the first at the top level, the others under :data:`MASK_CANDIDATES`. Data-loader workers
    never see the update count; the task picks one candidate per batch in its train step
    (:meth:`batch_with_candidate`).

    Args:
        dataset: the blocks to mask.
        vocab: the fairseq dictionary, ``<mask>`` included.
        mask_idx: id of ``<mask>``.
        config: the strategy and its settings.
        token_scores: the PMI table as the task loaded it through the strategy's lookup: float32 array
            of len(vocab), the score of every token (``-inf`` for specials and unscored k-mers), or
            ``pmi_span``'s collocations; required by the PMI strategies.
        seed: the run's seed.
    """

    def __init__(
        self,
        dataset,
        vocab,
        mask_idx: int,
        config: MaskingConfig,
        token_scores: np.ndarray | None = None,
        seed: int = 1,
    ):
        super().__init__(dataset)
        self.config = config
        self.candidates = config.candidates()
        lookups = [candidate.strategy_entry.score_lookup for candidate in self.candidates]
        if any(lookups):
            if token_scores is None:
                raise ValueError(f"mask strategy {config.strategy!r} needs PMI token scores")
            if isinstance(token_scores, (np.ndarray, list)):  # one score per token (not pmi_span's collocations)
                if len(token_scores) != len(vocab):
                    raise ValueError(
                        f"{len(token_scores)} token scores for a dictionary of {len(vocab)} symbols"
                    )
                token_scores = np.asarray(token_scores, dtype=np.float32)
        max_length = int(np.max(dataset.sizes)) if any(lookups) and len(dataset) else 0
        # Per candidate: tokens -> the scores its selector takes (None: it uses no PMI).
        self._item_scores = [
            lookup(token_scores, vocab.nspecial, max_length) if lookup else None for lookup in lookups
        ]
        if int(seed) < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.seed = int(seed)
        self.pad_idx = vocab.pad()
        self.mask_idx = mask_idx
        # A lookup table, so the per-item special test is one gather.
        self._is_regular = np.zeros(len(vocab), dtype=bool)
        self.replacement_ids = regular_token_ids(vocab.symbols, vocab.nspecial, mask_idx)
        self._is_regular[self.replacement_ids] = True
        # Non-overlapping tokens hide their own bases: the leak meter counts them from the symbols.
        self._base_lengths = token_base_lengths(vocab.symbols) if config.k is None else None
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

    def mask_item(self, tokens: np.ndarray, epoch: int, index: int, candidate: int = 0) -> dict:
        """One item's mask by candidate ``candidate`` (0 for a plain strategy), from its int64 tokens:
        ``{"source", "target", "wide"}`` numpy arrays and ``"centres"``."""
        config = self.candidates[candidate]
        rng = np.random.default_rng([self.seed, int(epoch), int(index)])
        maskable = self._is_regular[tokens]
        item_scores = self._item_scores[candidate]
        selection = select_mask_spans(maskable, rng, config, item_scores(tokens) if item_scores else None)
        source = replace_masked_tokens(
            tokens,
            selection.masked,
            rng,
            self.mask_idx,
            self.replacement_ids,
            config.leave_unmasked_prob,
            config.random_token_prob,
        )
        target = np.where(selection.masked, tokens, self.pad_idx)
        return {"source": source, "target": target, "wide": selection.wide, "centres": selection.centres}

    def _masked_tensors(self, tokens: np.ndarray, index: int, candidate: int) -> dict:
        mask = self.mask_item(tokens, self.epoch, index, candidate)
        return {key: torch.from_numpy(value) if key != "centres" else value for key, value in mask.items()}

    def __getitem__(self, index):
        tokens = self.dataset[index]
        tokens = tokens.numpy() if torch.is_tensor(tokens) else np.asarray(tokens)
        tokens = tokens.astype(np.int64, copy=False)
        item = {"id": index, **self._masked_tensors(tokens, index, 0)}
        if len(self.candidates) > 1:
            item[MASK_CANDIDATES] = [self._masked_tensors(tokens, index, c) for c in range(1, len(self.candidates))]
        return item

    def _collate_masks(self, masks, lengths, config: MaskingConfig):
        collated = {
            "net_input": {
                "src_tokens": data_utils.collate_tokens([m["source"] for m in masks], self.pad_idx),
                "src_lengths": lengths,
            },
            "target": data_utils.collate_tokens([m["target"] for m in masks], self.pad_idx),
            "masked_in_wide_span": data_utils.collate_tokens([m["wide"] for m in masks], False),
            "spans_are_global": config.strategy_entry.global_spans,
            "mask_centres": sum(m["centres"] for m in masks),
        }
        collated.update(self.leak_counts(collated["net_input"]["src_tokens"].numpy(), collated["target"].numpy()))
        return collated

    def leak_counts(self, source: np.ndarray, target: np.ndarray) -> dict:
        """The leak meter's counts for the criterion (:mod:`~genemask_plugin.masking.leakage`):
        ``leaked_tokens``, and ``masked_spans`` and ``hidden_bases`` where hidden bases can be
        measured (0 otherwise). Measured here, in the data-loader workers, on the host copy of the
        batch, so the training loop pays nothing and never syncs with the device for it."""
        reading = measure_leakage(source, target, self._is_regular, self.pad_idx, self.config.k, self._base_lengths)
        measured = reading.span_hidden_bases is not None
        return {
            "leaked_tokens": reading.num_leaked,
            "masked_spans": len(reading.span_lengths) if measured else 0,
            "hidden_bases": reading.hidden_bases if measured else 0,
        }

    def collater(self, samples):
        """fairseq's MLM batch, plus for the criterion: ``masked_in_wide_span`` (bool, like
        ``target``), ``spans_are_global`` (whether the strategy's masked tokens count as global
        spans), ``mask_centres`` (the centres drawn in the batch) and the leak meter's counts
        (:meth:`leak_counts`).

        Under a curriculum, ``batch[MASK_CANDIDATES]`` holds ``masks``, the same keys for each
        other candidate, and ``batch_ids``.
        """
        if len(samples) == 0:
            return {}
        lengths = torch.LongTensor([s["source"].numel() for s in samples])
        batch = {
            "id": torch.LongTensor([s["id"] for s in samples]),
            "nsentences": len(samples),
            "ntokens": int(lengths.sum()),
            **self._collate_masks(samples, lengths, self.candidates[0]),
        }
        if len(self.candidates) > 1:
            batch[MASK_CANDIDATES] = {
                "masks": [
                    self._collate_masks([s[MASK_CANDIDATES][c - 1] for s in samples], lengths, self.candidates[c])
                    for c in range(1, len(self.candidates))
                ],
                # A numpy copy of the ids stays on the host when fairseq moves the batch to the GPU, so
                # the train step picks a candidate without a device-to-host sync.
                "batch_ids": batch["id"].numpy().copy(),
            }
        return batch

    @staticmethod
    def batch_with_candidate(batch: dict, candidate: int) -> dict:
        """The batch masked by candidate ``candidate`` alone (the others dropped)."""
        if not batch or MASK_CANDIDATES not in batch:
            return batch
        chosen = {key: value for key, value in batch.items() if key != MASK_CANDIDATES}
        if candidate > 0:
            chosen.update(batch[MASK_CANDIDATES]["masks"][candidate - 1])
        return chosen
