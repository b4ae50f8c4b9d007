"""DNABERT-layout ``BertForMaskedLM`` folder -> fairseq RoBERTa checkpoint + our ``dict.txt``.

Input: ``config.json`` (a BERT config), the weights (``model.safetensors`` or
``pytorch_model.bin``, read by transformers so old DNABERT names load too) and ``vocab.txt``:
``[PAD] [UNK] [CLS] [SEP] [MASK]`` and the 4^k k-mers, in any order. BERT differs from
fairseq RoBERTa in four ways, each handled here:

- **vocabulary**: rows are mapped *by symbol, never by position* into our order
  (``<s>``=[CLS], ``<pad>``=[PAD], ``</s>``=[SEP], ``<unk>``=[UNK], the k-mers A<C<G<T,
  ``<mask>``=[MASK]); the word embeddings, the tied decoder and the output bias alike;
- **positions** start at 0 in BERT and at ``padding_idx + 1`` = 2 in fairseq: BERT row p
  becomes fairseq row p + 2 (rows 0 and 1 are never used for a real token and stay zero);
- **token types**: fairseq has none; every DNABERT input is type 0, so the type-0 row is
  added to every position row (the sum is what BERT's embedding layer computes);
- **LayerNorm eps** is 1e-12 in BERT and 1e-5, fixed, in fairseq. It cannot be carried over,
  so it is the one expected source of difference (measured in the tests and docs/hf.md).

The architecture: the dimensions are read from ``config.json``. The checkpoint names the
genemask architecture with exactly those dimensions (DNABERT-6's 12x768, 12 heads, FFN 3072,
512 positions is ``genemask_dnabert_base``); any other shape is ``genemask_dnabert_base`` with
its sizes overridden, which ``genemask-fewshot finetune`` copies and ``fairseq-train`` takes as
the flags the command prints. The output folder is written atomically.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from genemask_preprocess.atomic_output import atomic_directory, check_output_directory
from genemask_preprocess.command_line import one_line
from genemask_preprocess.errors import InputError
from genemask_preprocess.formats.fairseq_dictionary import write_kmer_dictionary
from genemask_preprocess.kmers import (
    FAIRSEQ_SPECIALS,
    MASK_SYMBOL,
    MAX_K,
    PAD_ID,
    all_kmers,
    is_acgt,
)
from genemask_preprocess.native_paths import native_path

from ..checkpoints import UNTRAINED_LM_HEAD, architecture_options, write_checkpoint_state
from .layer_names import (
    BERT,
    FAIRSEQ_ENCODER,
    FAIRSEQ_LAYER_NORM_EPS,
    FAIRSEQ_LM_HEAD,
)

BERT_SPECIAL_OF = {"<s>": "[CLS]", "<pad>": "[PAD]", "</s>": "[SEP]", "<unk>": "[UNK]", MASK_SYMBOL: "[MASK]"}
"""Our special symbol -> the BERT special whose rows it takes."""
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
IMPORT_FILES = ("checkpoint.pt", "dict.txt", "import.json")
SIZE_FLAGS = {"encoder_layers": "num_hidden_layers", "encoder_embed_dim": "hidden_size",
              "encoder_attention_heads": "num_attention_heads", "encoder_ffn_embed_dim": "intermediate_size"}
CANDIDATE_ARCHS = ("genemask_dnabert_base", "genemask_logo", "genemask_tiny")


class DnabertImportError(InputError):
    """A folder that cannot be imported (one-line message)."""


@dataclass(frozen=True)
class BertVocabulary:
    path: Path
    tokens: list[str]
    k: int

    def row_of(self, token: str) -> int:
        return self.tokens.index(token)

    def rows_in_our_order(self) -> torch.Tensor:
        """BERT row of each of our symbols: specials, k-mers in A<C<G<T order, ``<mask>``."""
        index = {token: i for i, token in enumerate(self.tokens)}
        ours = [BERT_SPECIAL_OF[s] for s in FAIRSEQ_SPECIALS] + all_kmers(self.k) + [BERT_SPECIAL_OF[MASK_SYMBOL]]
        return torch.tensor([index[token] for token in ours], dtype=torch.long)


def read_bert_vocabulary(path: Path, expected_k: int | None = None) -> BertVocabulary:
    """A DNABERT ``vocab.txt``: the five BERT specials and every k-mer of one k, once each."""
    try:
        tokens = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as err:
        raise DnabertImportError(f"cannot read {path}: {err}") from None
    missing = [s for s in BERT_SPECIAL_OF.values() if s not in tokens]
    if missing:
        raise DnabertImportError(f"{path} lacks the BERT special tokens {missing} (not a DNABERT vocab.txt)")
    specials = set(BERT_SPECIAL_OF.values())
    others = [t for t in tokens if t not in specials]
    bad = next((t for t in others if not is_acgt(t)), None)
    if bad is not None:
        raise DnabertImportError(f"{path}: {bad!r} is neither a BERT special nor an A/C/G/T k-mer "
                                 "(only DNABERT-style k-mer vocabularies import)")
    lengths = sorted({len(t) for t in others})
    if len(lengths) != 1:
        raise DnabertImportError(f"{path} holds k-mers of lengths {lengths}; expected one k")
    k = lengths[0]
    if expected_k is not None and k != expected_k:
        raise DnabertImportError(f"{path} holds {k}-mers, not {expected_k}-mers (--k {expected_k})")
    if k > MAX_K:
        raise DnabertImportError(f"{path}: {k}-mers are longer than the largest supported k, {MAX_K}")
    if len(others) != 4**k or len(set(others)) != 4**k or len(tokens) != len(set(tokens)):
        raise DnabertImportError(f"{path} holds {len(set(others))} distinct {k}-mers and {len(tokens)} "
                                 f"tokens; expected all {4**k} {k}-mers and the 5 specials once each")
    return BertVocabulary(path, tokens, k)


def check_weights_file(folder: Path) -> None:
    """Refuse, naming the file, a ``model.safetensors`` whose header cannot be read (transformers' own
    message names neither the file nor what is wrong with it)."""
    from safetensors import SafetensorError, safe_open  # noqa: PLC0415

    path = folder / WEIGHT_FILES[0]
    if not path.is_file():
        return
    try:
        with native_path(path) as source, safe_open(source, framework="pt") as weights:
            weights.keys()
    except (SafetensorError, OSError) as err:
        raise DnabertImportError(f"{path}: not a readable safetensors file ({one_line(str(err))})") from None


def check_bert_folder(folder: Path) -> dict:
    """``config.json`` of a BERT masked-LM folder, after checking every file is there (no weights read)."""
    if not folder.is_dir():
        raise DnabertImportError(f"{folder}: no such directory (expected a BERT model folder)")
    if not (folder / "config.json").is_file():
        raise DnabertImportError(f"{folder}: config.json not found")
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise DnabertImportError(f"{folder}: no weights ({' or '.join(WEIGHT_FILES)}) found")
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as err:
        raise DnabertImportError(f"{folder / 'config.json'}: not JSON: {err}") from None
    if not isinstance(config, dict):
        raise DnabertImportError(f"{folder / 'config.json'}: not a model config (a JSON object)")
    check_weights_file(folder)
    if config.get("model_type") != "bert":
        raise DnabertImportError(f"{folder}: model_type {config.get('model_type')!r}, expected 'bert' "
                                 "(DNABERT's layout) or 'roberta' (a masked LM from genemask-hf export)")
    if config.get("hidden_act", "gelu") != "gelu":
        raise DnabertImportError(f"{folder}: hidden_act {config['hidden_act']!r}; fairseq RoBERTa here uses gelu")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise DnabertImportError(f"{folder}: position_embedding_type {config['position_embedding_type']!r} "
                                 "(only absolute positions import)")
    if not (folder / "vocab.txt").is_file():
        raise DnabertImportError(f"{folder}: vocab.txt not found")
    return config


MLM_HEAD_KEYS = frozenset({
    "cls.predictions.transform.dense.weight", "cls.predictions.transform.dense.bias",
    "cls.predictions.transform.LayerNorm.weight", "cls.predictions.transform.LayerNorm.bias",
    "cls.predictions.bias",
})
"""The masked-LM head's own weights (its decoder is tied to the word embeddings and to ``cls.predictions.bias``)."""
TIED_HEAD_KEYS = frozenset({"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"})


def load_bert(folder: Path):
    """The ``BertForMaskedLM`` of a checked folder (local files only), and what its weights lacked.

    Returns ``(bert, untrained_head)``: ``untrained_head`` says why the masked-LM head is not the
    folder's (a ``BertForSequenceClassification`` or a bare ``BertModel`` has none), or is None.
    Weights that are missing from the encoder, or whose shapes are not ``config.json``'s, are
    refused: transformers would fill them with random values.
    """
    from transformers import BertConfig, BertForMaskedLM  # noqa: PLC0415

    with _transformers_report() as report:
        try:
            with native_path(folder) as source:  # safetensors takes UTF-8 file names only
                config = BertConfig.from_pretrained(source, local_files_only=True)
                # Mismatched shapes are reported in `info` (and refused below), not raised with a
                # pointer to a report the user never sees.
                bert, info = BertForMaskedLM.from_pretrained(
                    source, config=config, local_files_only=True, dtype=torch.float32,
                    ignore_mismatched_sizes=True, output_loading_info=True)
        except Exception as err:  # transformers raises many types for a bad folder
            raise DnabertImportError(f"cannot load {folder} as BertForMaskedLM: {_cause(err, report)}") from None
    mismatched = sorted(info.get("mismatched_keys") or ())
    if mismatched:
        key, in_file, by_config = mismatched[0]
        raise DnabertImportError(
            f"{folder}: {key} has shape {list(in_file)} in the weights but {list(by_config)} by config.json"
            + (f" (and {len(mismatched) - 1} more)" if len(mismatched) > 1 else "")
            + ": the config is not the weights'; nothing imported")
    tied = TIED_HEAD_KEYS if bert.config.tie_word_embeddings else {"cls.predictions.decoder.bias"}
    missing = set(info.get("missing_keys") or ()) - set(tied)
    encoder = sorted(missing - MLM_HEAD_KEYS)
    if encoder:
        more = f" and {len(encoder) - 1} more" if len(encoder) > 1 else ""
        raise DnabertImportError(f"{folder}: the weights lack {encoder[0]}{more} (a truncated file or "
                                 "another kind of model); nothing imported")
    head = missing & MLM_HEAD_KEYS
    if head and head != MLM_HEAD_KEYS:
        raise DnabertImportError(f"{folder}: the weights hold only part of the masked-LM head (no "
                                 f"{sorted(head)[0]}); nothing imported")
    untrained_head = None
    if head:
        kind = ", ".join(config.architectures or []) or "a BERT model"
        untrained_head = f"imported from {folder}, a {kind} without a masked-LM head"
    return bert, untrained_head


@contextlib.contextmanager
def _transformers_report():
    """Collect what transformers logs while loading (its "load report"), instead of printing it."""
    from transformers.utils import logging as hf_logging  # noqa: PLC0415

    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.extend(line for line in record.getMessage().splitlines() if line.strip())

    handler, verbosity = Collect(), hf_logging.get_verbosity()
    hf_logging.disable_default_handler()
    hf_logging.add_handler(handler)
    hf_logging.set_verbosity_warning()
    try:
        yield lines
    finally:
        hf_logging.remove_handler(handler)
        hf_logging.enable_default_handler()
        hf_logging.set_verbosity(verbosity)


def _cause(err: Exception, report: list[str]) -> str:
    """The actual cause of a transformers loading error: its message, or the report it points to."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
    if "above report" in lines[0]:  # the report's problem rows hold the cause
        rows = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in report]
        problems = [" ".join(part.strip() for part in row.split("|") if part.strip()) for row in rows
                    if "|" in row and any(tag in row for tag in ("MISMATCH", "CONVERSION", "MISSING"))]
        return "; ".join(problems[:2]) or "the weights do not fit the model"
    return " ".join(lines[:2]) if lines[0].endswith(":") else lines[0]


def nearest_architecture(config) -> tuple[str, dict[str, int]]:
    """The genemask architecture of ``config``'s dimensions, and the sizes it must override."""
    sizes = {ours: int(getattr(config, theirs)) for ours, theirs in SIZE_FLAGS.items()}
    sizes["max_positions"] = int(config.max_position_embeddings)
    for arch in CANDIDATE_ARCHS:
        defaults = architecture_options(arch)
        overrides = {name: v for name, v in sizes.items() if getattr(defaults, name) != v}
        if not overrides:
            return arch, {}
    arch = CANDIDATE_ARCHS[0]
    defaults = architecture_options(arch)
    return arch, {name: v for name, v in sizes.items() if getattr(defaults, name) != v}


def fairseq_model_args(bert_config, arch: str, overrides: dict[str, int]) -> argparse.Namespace:
    """The model config saved in the checkpoint (what ``genemask-fewshot finetune`` reads)."""
    return architecture_options(arch, _name=arch, **overrides, dropout=float(bert_config.hidden_dropout_prob),
                                attention_dropout=float(bert_config.attention_probs_dropout_prob))


def untrained_lm_head(weights: dict[str, torch.Tensor]) -> None:
    """Give ``weights`` a fresh masked-LM head, initialised as fairseq initialises one (the same every time)."""
    generator = torch.Generator().manual_seed(0)
    dense = weights[f"{FAIRSEQ_LM_HEAD}.dense.weight"]
    weights[f"{FAIRSEQ_LM_HEAD}.dense.weight"] = torch.empty_like(dense).normal_(0.0, 0.02, generator=generator)
    for name in ("dense.bias", "layer_norm.bias", "bias"):
        weights[f"{FAIRSEQ_LM_HEAD}.{name}"] = torch.zeros_like(weights[f"{FAIRSEQ_LM_HEAD}.{name}"])
    weights[f"{FAIRSEQ_LM_HEAD}.layer_norm.weight"] = torch.ones_like(weights[f"{FAIRSEQ_LM_HEAD}.layer_norm.weight"])
    weights[f"{FAIRSEQ_LM_HEAD}.weight"] = weights[f"{FAIRSEQ_ENCODER}.embed_tokens.weight"]  # tied, as fairseq's


def fairseq_state_dict(bert, vocab: BertVocabulary) -> dict[str, torch.Tensor]:
    """fairseq RoBERTa weights of a ``BertForMaskedLM``, rows mapped by symbol."""
    w = {name: t.detach().float().clone() for name, t in bert.state_dict().items()}
    rows = vocab.rows_in_our_order()
    bert_positions = w[BERT.position_embeddings]
    positions = torch.zeros(bert_positions.shape[0] + PAD_ID + 1, bert_positions.shape[1])
    positions[PAD_ID + 1 :] = bert_positions + w[BERT.token_type_embeddings][0]
    embed = w[BERT.word_embeddings][rows]
    decoder = w[BERT.lm_decoder][rows]
    out = {
        f"{FAIRSEQ_ENCODER}.version": torch.tensor([1.0]),
        f"{FAIRSEQ_ENCODER}.embed_tokens.weight": embed,
        f"{FAIRSEQ_ENCODER}.embed_positions.weight": positions,
        # fairseq ties lm_head.weight to embed_tokens (--untie-weights-roberta unset): one tensor
        f"{FAIRSEQ_LM_HEAD}.weight": embed if torch.equal(decoder, embed) else decoder,
        f"{FAIRSEQ_LM_HEAD}.bias": w[BERT.lm_bias][rows],
    }
    for fairseq_name, hf_name in BERT.one_to_one(bert.config.num_hidden_layers):
        out[fairseq_name] = w[hf_name]
    return out


def imported_checkpoint_state(args: argparse.Namespace, weights: dict[str, torch.Tensor], out: Path,
                              source: Path, untrained_head: str | None = None) -> dict:
    """A fairseq checkpoint's state holding imported weights, as a ``genemask_mlm`` run at its start.

    ``untrained_head``: why the masked-LM head is a fresh one, recorded for ``fairseq-train`` and
    ``genemask-hf export`` (a head-less import), or None."""
    return {
        "args": None,
        "cfg": {
            "_name": None,
            "model": args,
            "task": {"_name": "genemask_mlm", "data": str(out.resolve())},
            "criterion": {"_name": "genemask_mlm"},
            "checkpoint": {"restore_file": str(source.resolve())},
        },
        "model": weights,
        "criterion": {},
        "optimizer_history": [{"criterion_name": "GeneMaskMLMLoss", "optimizer_name": "imported",
                               "lr_scheduler_state": {}, "num_updates": 0}],
        "task_state": {UNTRAINED_LM_HEAD: untrained_head} if untrained_head else {},
        # as a fresh run at its start: epoch 1, nothing consumed (--reset-dataloader ignores it anyway)
        "extra_state": {"train_iterator": {"epoch": 1, "version": 2, "iterations_in_epoch": 0, "shuffle": True}},
        "last_optimizer_state": None,
    }


@dataclass(frozen=True)
class ImportResult:
    out: Path
    arch: str
    overrides: dict[str, int]
    k: int
    stride: int = 1
    untrained_lm_head: str | None = None
    """Why the masked-LM head is a fresh one (the folder had none: encoder only), or None."""

    def fairseq_flags(self) -> list[str]:
        """``--arch`` and the size flags that rebuild this model in ``fairseq-train``."""
        flags = ["--arch", self.arch]
        for name, value in self.overrides.items():
            flags += [f"--{name.replace('_', '-')}", str(value)]
        return flags


def import_dnabert(folder: str | os.PathLike, out: str | os.PathLike, expected_k: int | None = None,
                   force: bool = False) -> ImportResult:
    """Write ``out/checkpoint.pt``, ``out/dict.txt`` (our k-mer order) and ``out/import.json``."""
    folder, out = Path(folder), Path(out)
    check_output_directory(out, force)
    config = check_bert_folder(folder)
    vocab_path = folder / "vocab.txt"
    vocab = read_bert_vocabulary(vocab_path, expected_k)
    rows = config.get("vocab_size")
    if len(vocab.tokens) != rows:
        raise DnabertImportError(f"{vocab_path} holds {len(vocab.tokens)} tokens ({vocab.k}-mers) but the "
                                 f"model's embeddings have {rows} rows: a vocab.txt of another k?")
    bert, untrained_head = load_bert(folder)  # every check that needs no weights is done: errors stay one line
    arch, overrides = nearest_architecture(bert.config)
    args = fairseq_model_args(bert.config, arch, overrides)
    weights = fairseq_state_dict(bert, vocab)
    if untrained_head is not None:  # transformers filled the head with random values: replace them
        untrained_lm_head(weights)
    if weights[f"{FAIRSEQ_LM_HEAD}.weight"] is not weights[f"{FAIRSEQ_ENCODER}.embed_tokens.weight"]:
        args.untie_weights_roberta = True
    state = imported_checkpoint_state(args, weights, out, folder, untrained_head)
    result = ImportResult(out, arch, overrides, vocab.k, untrained_lm_head=untrained_head)
    record = {"source": str(folder.resolve()), "k": vocab.k, "arch": arch, "overrides": overrides,
              "fairseq_flags": result.fairseq_flags(),
              "lm_head": f"untrained: {untrained_head}" if untrained_head else "imported",
              "layer_norm_eps": {"bert": bert.config.layer_norm_eps, "fairseq": FAIRSEQ_LAYER_NORM_EPS}}
    with atomic_directory(out, force=force, owned=IMPORT_FILES) as staging:
        write_checkpoint_state(state, staging / "checkpoint.pt")
        write_kmer_dictionary(staging / "dict.txt", vocab.k)
        (staging / "import.json").write_text(json.dumps(record, indent=2) + "\n")
    return result
