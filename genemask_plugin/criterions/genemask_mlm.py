"""The ``genemask_mlm`` criterion: masked-LM cross-entropy with GeneMask diagnostics."""

import math
from dataclasses import dataclass

import torch
from fairseq import modules, utils
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass
from fairseq.logging import metrics


@dataclass
class GeneMaskMLMCriterionConfig(FairseqDataclass):
    pass


@register_criterion("genemask_mlm", dataclass=GeneMaskMLMCriterionConfig)
class GeneMaskMLMLoss(FairseqCriterion):
    """Cross-entropy on the masked positions (where ``target`` is not ``<pad>``).

    Logs, besides ``loss``/``ppl``: ``acc`` (masked-token accuracy, %), ``mask_pct``
    (% of regular tokens masked), ``wide_pct`` (% of masked tokens inside a wide
    PMI span), ``global_pct`` (% of masked tokens in batches whose strategy's spans are
    global, ``spans_are_global``: how far a mask curriculum has moved), ``centres_per_block``
    (mask centres drawn per sample: how many centres GeneMask's ranking has to choose from), and the
    leak meter's ``leak_pct`` (% of masked tokens every base of which a visible token shows) and
    ``hidden_bases`` (bases no visible token shows, per masked span), counted by the dataset
    (:mod:`genemask_plugin.masking.leakage`). Each is a ratio of sums, so it is exact across
    GPUs and log intervals.
    """

    def __init__(self, task):
        super().__init__(task)
        self.num_specials = task.source_dictionary.nspecial

    def forward(self, model, sample, reduce=True):
        masked = sample["target"].ne(self.padding_idx)
        sample_size = masked.int().sum()

        # Project only the masked positions. On CPU skip the (rare) all-unmasked case;
        # on accelerators torch.where avoids a device-to-host sync.
        if masked.device.type == "cpu":
            masked_tokens = masked if masked.any() else None
        else:
            masked_tokens = torch.where(masked.any(), masked, masked.new([True]))

        logits = model(**sample["net_input"], masked_tokens=masked_tokens)[0]
        targets = model.get_targets(sample, [logits])
        if masked_tokens is not None:
            targets = targets[masked_tokens]
        logits = logits.view(-1, logits.size(-1))
        targets = targets.view(-1)
        loss = modules.cross_entropy(
            logits, targets, reduction="sum", ignore_index=self.padding_idx
        )
        n_correct = (logits.argmax(-1).eq(targets) & targets.ne(self.padding_idx)).sum()

        src_tokens = sample["net_input"]["src_tokens"]
        # Masked positions hold <mask> or regular tokens, so this counts the maskable tokens.
        n_regular = src_tokens.ge(self.num_specials).sum()
        wide = sample.get("masked_in_wide_span")
        n_wide = wide.sum() if wide is not None else torch.zeros_like(n_regular)
        # A batch is masked by one strategy, so its masked tokens are all global or none; the
        # dataset says which, from the strategy's registry entry.
        n_global = sample_size if sample.get("spans_are_global", False) else torch.zeros_like(sample_size)

        logging_output = {
            "loss": loss.data,
            "ntokens": sample["ntokens"],
            "nsentences": sample["nsentences"],
            "sample_size": sample_size,
            "n_correct": n_correct.data,
            "n_regular": n_regular.data,
            "n_wide": n_wide.data,
            "n_global": n_global.data,
            "n_centres": sample.get("mask_centres", 0),
            # The leak meter's counts (python ints from the collater; 0 for a batch without them).
            "n_leaked": sample.get("leaked_tokens", 0),
            "n_spans": sample.get("masked_spans", 0),
            "n_hidden_bases": sample.get("hidden_bases", 0),
        }
        return loss, sample_size, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        def total(key):
            return utils.item(sum(log.get(key, 0) for log in logging_outputs))

        sample_size = total("sample_size")
        n_regular = total("n_regular")
        metrics.log_scalar(
            "loss", total("loss") / max(sample_size, 1) / math.log(2), sample_size, round=3
        )
        metrics.log_derived("ppl", lambda meters: utils.get_perplexity(meters["loss"].avg))
        if sample_size > 0:
            metrics.log_scalar("acc", 100.0 * total("n_correct") / sample_size, sample_size, round=2)
            metrics.log_scalar("wide_pct", 100.0 * total("n_wide") / sample_size, sample_size, round=2)
            metrics.log_scalar("global_pct", 100.0 * total("n_global") / sample_size, sample_size, round=2)
            metrics.log_scalar("leak_pct", 100.0 * total("n_leaked") / sample_size, sample_size, round=2)
        n_spans = total("n_spans")
        if n_spans > 0:
            metrics.log_scalar("hidden_bases", total("n_hidden_bases") / n_spans, n_spans, round=3)
        if n_regular > 0:
            metrics.log_scalar("mask_pct", 100.0 * sample_size / n_regular, n_regular, round=2)
        n_blocks = total("nsentences")
        if n_blocks > 0:
            metrics.log_scalar("centres_per_block", total("n_centres") / n_blocks, n_blocks, round=2)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
