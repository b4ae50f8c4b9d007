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
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from genemask_preprocess.atomic_output import atomic_directory, check_output_directory
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

from ..checkpoints import architecture_options
from .layer_names import (
    FAIRSEQ_ENCODER,
    FAIRSEQ_LAYER_NORM_EPS,
    FAIRSEQ_LM_HEAD,
    encoder_layer_names,
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


def load_bert(folder: Path):
    """The ``BertForMaskedLM`` of a checked folder (local files only)."""
    from transformers import BertConfig, BertForMaskedLM  # noqa: PLC0415

    try:
        bert = BertForMaskedLM.from_pretrained(folder, config=BertConfig.from_pretrained(folder),
                                               local_files_only=True, dtype=torch.float32)
    except Exception as err:  # transformers raises many types for a bad folder
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise DnabertImportError(f"cannot load {folder} as BertForMaskedLM: {first}") from None
    return bert


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


def fairseq_state_dict(bert, vocab: BertVocabulary) -> dict[str, torch.Tensor]:
    """fairseq RoBERTa weights of a ``BertForMaskedLM``, rows mapped by symbol."""
    w = {name: t.detach().float().clone() for name, t in bert.state_dict().items()}
    rows = vocab.rows_in_our_order()
    enc = FAIRSEQ_ENCODER
    bert_positions = w["bert.embeddings.position_embeddings.weight"]
    positions = torch.zeros(bert_positions.shape[0] + PAD_ID + 1, bert_positions.shape[1])
    positions[PAD_ID + 1 :] = bert_positions + w["bert.embeddings.token_type_embeddings.weight"][0]
    embed = w["bert.embeddings.word_embeddings.weight"][rows]
    decoder = w["cls.predictions.decoder.weight"][rows]
    out = {
        f"{enc}.version": torch.tensor([1.0]),
        f"{enc}.embed_tokens.weight": embed,
        f"{enc}.embed_positions.weight": positions,
        f"{enc}.layernorm_embedding.weight": w["bert.embeddings.LayerNorm.weight"],
        f"{enc}.layernorm_embedding.bias": w["bert.embeddings.LayerNorm.bias"],
        f"{FAIRSEQ_LM_HEAD}.dense.weight": w["cls.predictions.transform.dense.weight"],
        f"{FAIRSEQ_LM_HEAD}.dense.bias": w["cls.predictions.transform.dense.bias"],
        f"{FAIRSEQ_LM_HEAD}.layer_norm.weight": w["cls.predictions.transform.LayerNorm.weight"],
        f"{FAIRSEQ_LM_HEAD}.layer_norm.bias": w["cls.predictions.transform.LayerNorm.bias"],
        # fairseq ties lm_head.weight to embed_tokens (--untie-weights-roberta unset): one tensor
        f"{FAIRSEQ_LM_HEAD}.weight": embed if torch.equal(decoder, embed) else decoder,
        f"{FAIRSEQ_LM_HEAD}.bias": w["cls.predictions.bias"][rows],
    }
    for layer in range(bert.config.num_hidden_layers):
        for fairseq_name, hf_name in encoder_layer_names(layer, "bert"):
            out[fairseq_name] = w[hf_name]
    return out


def imported_checkpoint_state(args: argparse.Namespace, weights: dict[str, torch.Tensor], out: Path,
                              source: Path) -> dict:
    """A fairseq checkpoint's state holding imported weights, as a ``genemask_mlm`` run at its start."""
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
        "task_state": {},
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
    bert = load_bert(folder)  # every check that needs no weights is done: errors stay one line
    arch, overrides = nearest_architecture(bert.config)
    args = fairseq_model_args(bert.config, arch, overrides)
    weights = fairseq_state_dict(bert, vocab)
    if weights[f"{FAIRSEQ_LM_HEAD}.weight"] is not weights[f"{FAIRSEQ_ENCODER}.embed_tokens.weight"]:
        args.untie_weights_roberta = True
    state = imported_checkpoint_state(args, weights, out, folder)
    result = ImportResult(out, arch, overrides, vocab.k)
    record = {"source": str(folder.resolve()), "k": vocab.k, "arch": arch, "overrides": overrides,
              "fairseq_flags": result.fairseq_flags(),
              "layer_norm_eps": {"bert": bert.config.layer_norm_eps, "fairseq": FAIRSEQ_LAYER_NORM_EPS}}
    with atomic_directory(out, force=force, owned=IMPORT_FILES) as staging:
        torch.save(state, staging / "checkpoint.pt")
        write_kmer_dictionary(staging / "dict.txt", vocab.k)
        (staging / "import.json").write_text(json.dumps(record, indent=2) + "\n")
    return result
