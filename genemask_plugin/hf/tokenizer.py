"""The exported tokenizer: a ``tokenizers`` fast tokenizer whose ids are our dictionary's ids.

- model: ``WordLevel`` over every symbol of the fairseq dictionary, id = row, so ids equal
  ours exactly whatever the dictionary's order; an unknown word becomes ``<unk>``;
- pre-tokenizer: ``WhitespaceSplit``. For **overlapping k-mers** that is all: the input is
  DNABERT's convention, space-separated overlapping k-mers
  (:func:`genemask_preprocess.kmers.dna_to_kmer_string` makes it from raw DNA). For
  **non-overlapping k-mers** (stride k) and **single nucleotides** (k = 1) the input is raw DNA:
  each whitespace-separated piece is then split by the regex ``[ACGT]{k}|.`` (``Split``,
  ``isolated``), k-mers from the piece's start and a remainder as single bases, exactly
  :class:`~genemask_preprocess.kmers.KmerTokenization` (the Nucleotide Transformer's rule), and
  a ``Fuse`` decoder joins tokens back into DNA;
- post-processor: ``TemplateProcessing`` ``<s> $A </s>``, as fairseq's ``sentence_prediction``
  and our pretraining items (``<s>`` is prepended by the model input, ``</s>`` ends each item).

Saved as ``tokenizer.json`` + ``tokenizer_config.json`` (special tokens included) with the
generic fast-tokenizer class, so ``AutoTokenizer.from_pretrained(DIR)`` loads it offline with
no custom code.
"""

from __future__ import annotations

import os
from pathlib import Path

from genemask_preprocess.kmers import FAIRSEQ_SPECIALS, MASK_SYMBOL, KmerTokenization

BOS, PAD, EOS, UNK = FAIRSEQ_SPECIALS
SPECIAL_TOKENS = {
    "bos_token": BOS, "cls_token": BOS, "pad_token": PAD, "eos_token": EOS, "sep_token": EOS,
    "unk_token": UNK, "mask_token": MASK_SYMBOL,
}


def build_kmer_tokenizer(symbols: list[str], model_max_length: int, tokenization: KmerTokenization | None = None):
    """A ``PreTrainedTokenizerFast`` mapping each symbol of ``symbols`` to its index.

    ``symbols`` is the fairseq dictionary as the model saw it: ``<s> <pad> </s> <unk>``, the
    k-mers (and the single bases of a non-overlapping vocabulary), ``<mask>`` (and any
    ``madeupword`` padding, kept so ids stay aligned). ``tokenization`` (default: overlapping,
    k read from the symbols) decides whether the input is space-separated k-mers or raw DNA.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors  # noqa: PLC0415
    from transformers import PreTrainedTokenizerFast  # noqa: PLC0415

    if tuple(symbols[: len(FAIRSEQ_SPECIALS)]) != FAIRSEQ_SPECIALS or MASK_SYMBOL not in symbols:
        raise ValueError(f"expected fairseq's specials {FAIRSEQ_SPECIALS} first and {MASK_SYMBOL}")
    vocab = {symbol: i for i, symbol in enumerate(symbols)}
    if len(vocab) != len(symbols):
        raise ValueError("the dictionary holds a symbol twice")
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if tokenization is not None and not tokenization.overlapping:
        split = pre_tokenizers.Split(Regex(f"[ACGT]{{{tokenization.k}}}|."), behavior="isolated")
        core.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), split])
        core.decoder = decoders.Fuse()
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}",
        pair=f"{BOS} $A {EOS} {EOS} $B {EOS}",  # RoBERTa's pair convention
        special_tokens=[(BOS, vocab[BOS]), (EOS, vocab[EOS])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core, model_max_length=model_max_length, padding_side="right", **SPECIAL_TOKENS
    )


def save_kmer_tokenizer(symbols: list[str], model_max_length: int, directory: str | os.PathLike,
                        tokenization: KmerTokenization | None = None) -> None:
    """Write the tokenizer files into ``directory`` (the caller's atomic staging folder)."""
    build_kmer_tokenizer(symbols, model_max_length, tokenization).save_pretrained(Path(directory))
