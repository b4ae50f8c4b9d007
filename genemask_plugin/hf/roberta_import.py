"""Our own exported masked LM (``genemask-hf export``) -> fairseq RoBERTa checkpoint + ``dict.txt``.

The inverse of :mod:`.export`, so a model goes to transformers and comes back: the same weights,
the same dictionary (k-mers of either stride, or single nucleotides), the same logits.

Input: ``config.json`` (``model_type: roberta``), the weights (read by transformers'
``RobertaForMaskedLM``) and ``tokenizer.json``, whose ``WordLevel`` vocabulary maps each fairseq
symbol to its row: ``<s> <pad> </s> <unk>``, the dictionary's symbols, then ``<mask>``. Those
symbols, in that order, become ``dict.txt``, so a k-mer vocabulary keeps its k and stride. The
tensors are renamed by export's table read backwards; the token-type row (all zero in our
exports) is added to every position row, as for BERT (:mod:`.dnabert_import`), and fairseq's
LayerNorm eps is 1e-5 as transformers' RoBERTa's is: an exported model comes back exactly.
Output as :func:`~.dnabert_import.import_dnabert`: ``checkpoint.pt``, ``dict.txt``, ``import.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import torch

from genemask_preprocess.atomic_output import atomic_directory, check_output_directory
from genemask_preprocess.formats.fairseq_dictionary import (
    DictionaryError,
    kmer_vocabulary_of_symbols,
    write_dictionary,
)
from genemask_preprocess.kmers import (
    FAIRSEQ_SPECIALS,
    MASK_SYMBOL,
    NUM_SPECIALS,
    PAD_ID,
    KmerTokenization,
)
from genemask_preprocess.native_paths import native_path

from ..checkpoints import write_checkpoint_state
from .dnabert_import import (
    IMPORT_FILES,
    WEIGHT_FILES,
    DnabertImportError,
    ImportResult,
    check_weights_file,
    fairseq_model_args,
    imported_checkpoint_state,
    nearest_architecture,
)
from .layer_names import (
    FAIRSEQ_ENCODER,
    FAIRSEQ_LAYER_NORM_EPS,
    FAIRSEQ_LM_HEAD,
    ROBERTA,
)

ROBERTA_MODEL_TYPE = "roberta"


def is_roberta_folder(folder: Path) -> bool:
    """Whether ``folder/config.json`` says ``model_type: roberta`` (then :func:`import_roberta` takes it)."""
    try:
        return json.loads((folder / "config.json").read_text()).get("model_type") == ROBERTA_MODEL_TYPE
    except (OSError, ValueError, AttributeError):
        return False


def read_tokenizer_symbols(folder: Path) -> list[str]:
    """The symbols of ``tokenizer.json``'s ``WordLevel`` vocabulary in id order, checked to be a
    fairseq dictionary plus ``<mask>``."""
    path = folder / "tokenizer.json"
    try:
        model = json.loads(path.read_text())["model"]
        vocab = model["vocab"] if model.get("type") == "WordLevel" else None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DnabertImportError(f"{path}: cannot read a tokenizer vocabulary: {err}") from None
    if not isinstance(vocab, dict) or sorted(vocab.values()) != list(range(len(vocab))):
        raise DnabertImportError(f"{path}: not a WordLevel vocabulary with ids 0..n-1 (export's tokenizer)")
    symbols = sorted(vocab, key=vocab.get)
    if tuple(symbols[:NUM_SPECIALS]) != FAIRSEQ_SPECIALS or symbols[-1] != MASK_SYMBOL:
        raise DnabertImportError(f"{path}: expected fairseq's {' '.join(FAIRSEQ_SPECIALS)} first and "
                                 f"{MASK_SYMBOL} last (a model exported by genemask-hf export)")
    return symbols


def fairseq_state_dict(roberta) -> dict[str, torch.Tensor]:
    """fairseq RoBERTa weights of a ``RobertaForMaskedLM`` (export's mapping, backwards)."""
    w = {name: t.detach().float().clone() for name, t in roberta.state_dict().items()}
    positions = w[ROBERTA.position_embeddings]
    positions[PAD_ID + 1 :] += w[ROBERTA.token_type_embeddings][0]
    embed = w[ROBERTA.word_embeddings]
    decoder = w[ROBERTA.lm_decoder]
    out = {
        f"{FAIRSEQ_ENCODER}.version": torch.tensor([1.0]),
        f"{FAIRSEQ_ENCODER}.embed_tokens.weight": embed,
        f"{FAIRSEQ_ENCODER}.embed_positions.weight": positions,
        f"{FAIRSEQ_LM_HEAD}.weight": embed if torch.equal(decoder, embed) else decoder,
        f"{FAIRSEQ_LM_HEAD}.bias": w[ROBERTA.lm_bias],
    }
    for fairseq_name, hf_name in ROBERTA.one_to_one(roberta.config.num_hidden_layers):
        out[fairseq_name] = w[hf_name]
    return out


def import_roberta(folder: str | os.PathLike, out: str | os.PathLike, expected_k: int | None = None,
                   force: bool = False) -> ImportResult:
    """Write ``out/checkpoint.pt``, ``out/dict.txt`` (the tokenizer's symbols) and ``out/import.json``."""
    from transformers import RobertaForMaskedLM  # noqa: PLC0415

    folder, out = Path(folder), Path(out)
    check_output_directory(out, force)
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise DnabertImportError(f"{folder}: no weights ({' or '.join(WEIGHT_FILES)}) found")
    symbols = read_tokenizer_symbols(folder)
    try:
        vocab = kmer_vocabulary_of_symbols(symbols[:-1], folder / "tokenizer.json")
    except DictionaryError as err:
        raise DnabertImportError(str(err)) from None
    if expected_k is not None and vocab.k != expected_k:
        raise DnabertImportError(f"{folder / 'tokenizer.json'} holds {vocab.k}-mers, not {expected_k}-mers (--k {expected_k})")
    check_weights_file(folder)
    try:
        with native_path(folder) as source:  # safetensors takes UTF-8 file names only
            roberta = RobertaForMaskedLM.from_pretrained(source, local_files_only=True, dtype=torch.float32)
    except Exception as err:  # transformers raises many types for a bad folder
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise DnabertImportError(f"cannot load {folder} as RobertaForMaskedLM: {first}") from None
    config = roberta.config
    if config.vocab_size != len(symbols):
        raise DnabertImportError(f"{folder}: the tokenizer holds {len(symbols)} symbols but the embeddings have "
                                 f"{config.vocab_size} rows")
    if config.hidden_act != "gelu" or getattr(config, "position_embedding_type", "absolute") != "absolute":
        raise DnabertImportError(f"{folder}: only GELU and absolute positions import (fairseq RoBERTa)")
    shape = SimpleNamespace(**{name: getattr(config, name) for name in (
        "num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size")},
        max_position_embeddings=config.max_position_embeddings - PAD_ID - 1)  # RoBERTa counts the pad offset
    arch, overrides = nearest_architecture(shape)
    args = fairseq_model_args(config, arch, overrides)
    weights = fairseq_state_dict(roberta)
    if weights[f"{FAIRSEQ_LM_HEAD}.weight"] is not weights[f"{FAIRSEQ_ENCODER}.embed_tokens.weight"]:
        args.untie_weights_roberta = True
    tokenization = KmerTokenization(vocab.k, vocab.stride)
    result = ImportResult(out, arch, overrides, vocab.k, vocab.stride)
    record = {"source": str(folder.resolve()), "k": vocab.k, "stride": vocab.stride,
              "tokens": tokenization.describe(), "arch": arch, "overrides": overrides,
              "fairseq_flags": result.fairseq_flags(),
              "layer_norm_eps": {"roberta": config.layer_norm_eps, "fairseq": FAIRSEQ_LAYER_NORM_EPS}}
    with atomic_directory(out, force=force, owned=IMPORT_FILES) as staging:
        write_checkpoint_state(imported_checkpoint_state(args, weights, out, folder), staging / "checkpoint.pt")
        write_dictionary(staging / "dict.txt", symbols[NUM_SPECIALS:-1])
        (staging / "import.json").write_text(json.dumps(record, indent=2) + "\n")
    return result
