"""fairseq RoBERTa checkpoint -> transformers ``RobertaForMaskedLM`` / ``RobertaForSequenceClassification``.

fairseq's RoBERTa and transformers' share one layout (learned positions offset by
``padding_idx + 1``, one token type, LayerNorm eps 1e-5, the same LM head and classification
head), so the export renames tensors, by name, and adds the all-zero token-type row:

====================================================  =============================================
fairseq                                               transformers
====================================================  =============================================
``encoder.sentence_encoder.embed_tokens``             ``roberta.embeddings.word_embeddings``
``encoder.sentence_encoder.embed_positions``          ``roberta.embeddings.position_embeddings``
(none: fairseq has no token types)                    ``roberta.embeddings.token_type_embeddings`` = 0
``encoder.sentence_encoder.layernorm_embedding``      ``roberta.embeddings.LayerNorm``
``encoder.sentence_encoder.layers.i.*``               ``roberta.encoder.layer.i.*`` (:mod:`.layer_names`)
``encoder.lm_head.{dense,layer_norm}``                ``lm_head.{dense,layer_norm}``
``encoder.lm_head.weight`` / ``.bias``                ``lm_head.decoder.weight`` / ``lm_head.bias``
``classification_heads.sentence_classification_head``  ``classifier`` (dense, tanh, out_proj on ``<s>``)
====================================================  =============================================

A ``genemask_mlm`` (or ``masked_lm``) checkpoint becomes a masked LM; a ``sentence_prediction``
one a sequence classifier, ``id2label`` from its ``label/dict.txt``. The dictionary comes from
the checkpoint's data folder (``--data`` overrides it) or, for a masked LM whose data is gone,
from our fixed k-mer vocabulary when the embedding size says which k. The output folder is
built atomically (:func:`~genemask_preprocess.atomic_output.atomic_directory`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from fairseq.models import ARCH_MODEL_REGISTRY
from safetensors import SafetensorError

from genemask_preprocess.atomic_output import atomic_directory, check_output_directory
from genemask_preprocess.command_line import printable
from genemask_preprocess.errors import InputError, OutputError
from genemask_preprocess.formats.fairseq_dictionary import (
    load_kmer_vocabulary,
    read_dictionary_symbols,
)
from genemask_preprocess.kmers import (
    FAIRSEQ_SPECIALS,
    MASK_SYMBOL,
    NUM_SPECIALS,
    PAD_ID,
    KmerTokenization,
    tokenization_of_embedding_rows,
)
from genemask_preprocess.native_paths import native_path

from ..checkpoints import (
    CLASSIFIER_TASK,
    LAST_CHECKPOINT,
    config_field,
    load_checkpoint_state,
    model_config,
    task_config,
    task_name,
    training_data,
    untrained_lm_head,
)
from .layer_names import (
    FAIRSEQ_CLASSIFIER,
    FAIRSEQ_ENCODER,
    FAIRSEQ_LAYER_NORM_EPS,
    FAIRSEQ_LM_HEAD,
    ROBERTA,
    count_layers,
)
from .model_card import ModelFacts, model_card
from .tokenizer import save_kmer_tokenizer

MLM_TASKS = ("genemask_mlm", "masked_lm")
EXPORT_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md")


class ExportError(InputError):
    """A checkpoint that cannot be exported (one-line message)."""


@dataclass(frozen=True)
class FairseqRoberta:
    """What the export reads from a fairseq RoBERTa checkpoint."""

    path: Path
    model_cfg: object
    task_cfg: object
    task: str
    weights: dict[str, torch.Tensor]
    num_updates: int | None
    restored_from: str | None
    trained_on: Path | None
    """The data folder recorded in the checkpoint."""
    untrained_lm_head: str | None = None
    """Why the masked-LM head is untrained (a head-less ``genemask-hf import``), or None."""

    def option(self, name, default=None):
        return config_field(self.model_cfg, name, default)

    def task_option(self, name, default=None):
        return config_field(self.task_cfg, name, default)

    @property
    def is_classifier(self) -> bool:
        return self.task == CLASSIFIER_TASK


def read_fairseq_roberta(checkpoint: str | os.PathLike) -> FairseqRoberta:
    """Load and check a checkpoint: RoBERTa, post-LayerNorm, GELU, a masked-LM or classifier task."""
    path = Path(checkpoint)
    if path.is_dir():
        raise ExportError(f"{path} is a directory; give the checkpoint file (e.g. {path}/checkpoint_last.pt)")
    state = load_checkpoint_state(path)
    cfg = state.get("cfg")
    model_cfg = model_config(state)
    arch = config_field(model_cfg, "arch") or config_field(model_cfg, "_name")
    model_class = ARCH_MODEL_REGISTRY.get(arch)
    weights = state["model"]
    if (model_class is None or model_class.__name__ != "RobertaModel"
            or f"{FAIRSEQ_ENCODER}.embed_tokens.weight" not in weights):
        raise ExportError(
            f"{path} is not a RoBERTa checkpoint (architecture {arch!r}); genemask-hf exports the "
            "roberta family (genemask_dnabert_base, genemask_logo, genemask_tiny, roberta_*)"
        )
    task = task_name(state)
    if task not in (*MLM_TASKS, CLASSIFIER_TASK):
        raise ExportError(f"{path} is a {task!r} checkpoint; export takes {', '.join(MLM_TASKS)} "
                          f"(masked LM) or {CLASSIFIER_TASK} (classifier) checkpoints")
    history = state.get("optimizer_history") or [{}]
    restored = config_field(config_field(cfg, "checkpoint"), "restore_file") or config_field(
        state.get("args"), "restore_file")
    result = FairseqRoberta(path, model_cfg, task_config(state), task, weights, history[-1].get("num_updates"),
                            None if restored in (None, LAST_CHECKPOINT) else str(restored),
                            training_data(state), untrained_lm_head(state))
    _check_supported(result)
    return result


def _check_supported(model: FairseqRoberta) -> None:
    """Refuse the RoBERTa variants transformers' RobertaModel cannot express."""
    problems = []
    if model.option("encoder_normalize_before"):
        problems.append("--encoder-normalize-before (pre-LayerNorm)")
    if model.option("layernorm_embedding") is False:
        problems.append("no embedding LayerNorm")
    if model.option("activation_fn", "gelu") != "gelu":
        problems.append(f"--activation-fn {model.option('activation_fn')}")
    if model.option("pooler_activation_fn", "tanh") != "tanh":
        problems.append(f"--pooler-activation-fn {model.option('pooler_activation_fn')}")
    if f"{FAIRSEQ_ENCODER}.embed_positions.weight" not in model.weights:
        problems.append("no learned positional embeddings")
    if model.is_classifier and f"{FAIRSEQ_CLASSIFIER}.out_proj.weight" not in model.weights:
        problems.append("no 'sentence_classification_head' classification head")
    if not model.is_classifier and model.untrained_lm_head:
        raise ExportError(f"{model.path}: its masked-LM head is untrained ({model.untrained_lm_head}); "
                          "export it after fine-tuning (genemask-fewshot finetune) or continued pretraining")
    if problems:
        raise ExportError(f"{model.path}: transformers' RoBERTa cannot express {'; '.join(problems)}")


# ---------------------------------------------------------------------------------------------
# Dictionaries


def data_folder(model: FairseqRoberta, data: str | os.PathLike | None) -> Path | None:
    """``--data`` if given, else the data folder the checkpoint records."""
    return Path(data) if data is not None else model.trained_on


def dictionary_symbols(model: FairseqRoberta, data: Path | None) -> tuple[list[str], KmerTokenization]:
    """The model's symbols (dictionary + ``<mask>``) and tokenization; checks they match the embedding rows."""
    rows = model.weights[f"{FAIRSEQ_ENCODER}.embed_tokens.weight"].shape[0]
    dict_path = None
    if data is not None:
        dict_path = data / "input0" / "dict.txt" if model.is_classifier else data / "dict.txt"
    if dict_path is not None and dict_path.is_file():
        vocab = load_kmer_vocabulary(dict_path)  # only k-mer models export: a tokenizer of pieces is not built
        symbols, tokenization = list(vocab.symbols), vocab.tokenization
        if MASK_SYMBOL not in symbols:
            symbols.append(MASK_SYMBOL)  # the tasks append it at load time
    else:
        tokenization = tokenization_of_embedding_rows(rows)
        if model.is_classifier or tokenization is None:
            where = f"{dict_path} not found" if dict_path else "the checkpoint records no data folder"
            raise ExportError(f"{model.path}: cannot find its dictionary ({where}); pass --data "
                              f"{'PREPARED_DIR (the folder given to finetune)' if model.is_classifier else 'DIR (holding dict.txt)'}")
        symbols = [*FAIRSEQ_SPECIALS, *tokenization.symbols, MASK_SYMBOL]
    if len(symbols) != rows:
        raise ExportError(f"{model.path}: its embeddings have {rows} rows but the dictionary "
                          f"{dict_path} gives {len(symbols)} symbols; pass the right --data")
    return symbols, tokenization


def class_labels(model: FairseqRoberta, data: Path | None) -> list[str]:
    """Class names in class order, from the prepared data's ``label/dict.txt``."""
    num_classes = model.weights[f"{FAIRSEQ_CLASSIFIER}.out_proj.weight"].shape[0]
    path = data / "label" / "dict.txt" if data is not None else None
    if path is None or not path.is_file():
        raise ExportError(f"{model.path}: label dictionary {path} not found; pass --data PREPARED_DIR")
    labels = read_dictionary_symbols(path)[NUM_SPECIALS:]
    if len(labels) < num_classes:
        raise ExportError(f"{path} holds {len(labels)} labels but the classifier has {num_classes} classes")
    return labels[:num_classes]


# ---------------------------------------------------------------------------------------------
# Weights


def roberta_state_dict(model: FairseqRoberta) -> dict[str, torch.Tensor]:
    """transformers' RoBERTa state dict of the fairseq weights (fp32), mapped by name."""
    w = {name: tensor.float() for name, tensor in model.weights.items() if tensor.is_floating_point()}
    enc = FAIRSEQ_ENCODER
    embed = w[f"{enc}.embed_tokens.weight"]
    out = {
        ROBERTA.word_embeddings: embed,
        ROBERTA.position_embeddings: w[f"{enc}.embed_positions.weight"],
        ROBERTA.token_type_embeddings: torch.zeros(1, embed.shape[1]),
    }
    for fairseq_name, hf_name in ROBERTA.one_to_one(count_layers(w, f"{enc}.layers"), lm_head=not model.is_classifier):
        out[hf_name] = w[fairseq_name]
    if model.is_classifier:
        for part in ("dense", "out_proj"):
            for tensor in ("weight", "bias"):
                out[f"classifier.{part}.{tensor}"] = w[f"{FAIRSEQ_CLASSIFIER}.{part}.{tensor}"]
    else:
        out.update({
            ROBERTA.lm_decoder: w[f"{FAIRSEQ_LM_HEAD}.weight"],
            "lm_head.decoder.bias": w[f"{FAIRSEQ_LM_HEAD}.bias"],
            ROBERTA.lm_bias: w[f"{FAIRSEQ_LM_HEAD}.bias"],
        })
    return out


def roberta_config(model: FairseqRoberta, symbols: list[str], labels: list[str]):
    """transformers' ``RobertaConfig`` of the fairseq model."""
    from transformers import RobertaConfig  # noqa: PLC0415

    w = model.weights
    hidden = w[f"{FAIRSEQ_ENCODER}.embed_tokens.weight"].shape[1]
    config = RobertaConfig(
        vocab_size=len(symbols),
        hidden_size=hidden,
        num_hidden_layers=count_layers(w, f"{FAIRSEQ_ENCODER}.layers"),
        num_attention_heads=int(model.option("encoder_attention_heads")),
        intermediate_size=w[f"{FAIRSEQ_ENCODER}.layers.0.fc1.weight"].shape[0],
        hidden_act="gelu",
        hidden_dropout_prob=float(model.option("dropout", 0.1)),
        attention_probs_dropout_prob=float(model.option("attention_dropout", 0.1)),
        classifier_dropout=float(model.option("pooler_dropout", 0.0)),
        max_position_embeddings=w[f"{FAIRSEQ_ENCODER}.embed_positions.weight"].shape[0],
        type_vocab_size=1,
        layer_norm_eps=FAIRSEQ_LAYER_NORM_EPS,
        pad_token_id=PAD_ID,
        bos_token_id=symbols.index("<s>"),
        eos_token_id=symbols.index("</s>"),
        tie_word_embeddings=not model.option("untie_weights_roberta", False),
    )
    if labels:
        config.id2label = dict(enumerate(labels))
        config.label2id = {label: i for i, label in enumerate(labels)}
    return config


def max_tokens(model: FairseqRoberta) -> int:
    """Longest input in tokens, ``<s>`` and ``</s>`` included (positions minus the pad offset)."""
    return model.weights[f"{FAIRSEQ_ENCODER}.embed_positions.weight"].shape[0] - PAD_ID - 1


# ---------------------------------------------------------------------------------------------
# The export


@dataclass(frozen=True)
class ExportResult:
    out: Path
    kind: str
    k: int
    labels: list[str]
    stride: int = 1


def export_checkpoint(checkpoint: str | os.PathLike, out: str | os.PathLike,
                      data: str | os.PathLike | None = None, force: bool = False) -> ExportResult:
    """Write ``out``: ``config.json``, ``model.safetensors``, the tokenizer files and ``README.md``."""
    from transformers import RobertaForMaskedLM, RobertaForSequenceClassification  # noqa: PLC0415

    out = Path(out)
    check_output_directory(out, force)
    model = read_fairseq_roberta(checkpoint)
    folder = data_folder(model, data)
    symbols, tokenization = dictionary_symbols(model, folder)
    labels = class_labels(model, folder) if model.is_classifier else []
    config = roberta_config(model, symbols, labels)
    hf_class = RobertaForSequenceClassification if model.is_classifier else RobertaForMaskedLM
    hf_model = hf_class(config)
    hf_model.load_state_dict(roberta_state_dict(model), strict=True)
    if config.tie_word_embeddings:
        hf_model.tie_weights()
    facts = ModelFacts(
        checkpoint=printable(model.path), arch=str(model.option("arch") or model.option("_name")),
        task=model.task, k=tokenization.k, stride=tokenization.stride, num_updates=model.num_updates,
        mask_strategy=(model.task_option("mask_strategy") if model.task == "genemask_mlm"
                       else "random (fairseq's masked_lm task)" if model.task == "masked_lm" else None),
        pmi_table=printable(model.task_option("pmi_table")) if model.task_option("pmi_table") else None,
        layers=config.num_hidden_layers,
        hidden=config.hidden_size, heads=config.num_attention_heads, max_positions=max_tokens(model),
        labels=tuple(labels), restored_from=printable(model.restored_from) if model.restored_from else None,
    )
    with atomic_directory(out, force=force, owned=EXPORT_FILES) as staging, native_path(staging) as folder:
        try:  # safetensors and tokenizers take UTF-8 file names only: `folder` is one
            hf_model.save_pretrained(folder)
        except SafetensorError as err:  # not an OSError, even for a full disk or a file-size limit
            raise OutputError(f"{out}: cannot write the weights: {err}") from None
        save_kmer_tokenizer(symbols, max_tokens(model), folder, tokenization)
        (staging / "README.md").write_text(model_card(facts), encoding="utf-8")
    return ExportResult(out, "RobertaForSequenceClassification" if labels else "RobertaForMaskedLM",
                        tokenization.k, labels, tokenization.stride)
