"""Parameter names of one transformer encoder, fairseq RoBERTa vs transformers BERT/RoBERTa, and its LayerNorm eps.

fairseq's ``TransformerEncoderLayer`` and transformers' ``BertLayer``/``RobertaLayer`` are the
same post-LayerNorm block, so a layer maps one to one by name; so do the embedding LayerNorm and
the LM head's transform. This module is the one place that knows the names of both families:
:mod:`.export` maps fairseq to RoBERTa, :mod:`.roberta_import` and :mod:`.dnabert_import` map
RoBERTa and BERT back. Embeddings, positions and the decoder need more than a rename, and each
direction handles them itself, by the names below.
"""

from __future__ import annotations

from dataclasses import dataclass

FAIRSEQ_ENCODER = "encoder.sentence_encoder"
FAIRSEQ_LM_HEAD = "encoder.lm_head"
FAIRSEQ_CLASSIFIER = "classification_heads.sentence_classification_head"
"""fairseq's default ``--classification-head-name`` of ``sentence_prediction``."""
FAIRSEQ_LAYER_NORM_EPS = 1e-5
"""fairseq's LayerNorm epsilon, fixed (BERT's is 1e-12; RoBERTa's config states it)."""

# fairseq layer sub-module -> transformers layer sub-module (each has .weight and .bias)
_LAYER_MODULES = (
    ("self_attn.q_proj", "attention.self.query"),
    ("self_attn.k_proj", "attention.self.key"),
    ("self_attn.v_proj", "attention.self.value"),
    ("self_attn.out_proj", "attention.output.dense"),
    ("self_attn_layer_norm", "attention.output.LayerNorm"),
    ("fc1", "intermediate.dense"),
    ("fc2", "output.dense"),
    ("final_layer_norm", "output.LayerNorm"),
)


@dataclass(frozen=True)
class HfFamily:
    """The transformers names of one model family's parameters outside the encoder layers."""

    prefix: str
    word_embeddings: str
    position_embeddings: str
    token_type_embeddings: str
    embedding_layer_norm: str
    lm_transform_dense: str
    lm_transform_layer_norm: str
    lm_decoder: str
    lm_bias: str

    def one_to_one(self, layers: int, lm_head: bool = True) -> list[tuple[str, str]]:
        """(fairseq name, transformers name) of every parameter that maps by name alone."""
        modules = [(f"{FAIRSEQ_ENCODER}.layernorm_embedding", self.embedding_layer_norm)]
        if lm_head:
            modules += [(f"{FAIRSEQ_LM_HEAD}.dense", self.lm_transform_dense),
                        (f"{FAIRSEQ_LM_HEAD}.layer_norm", self.lm_transform_layer_norm)]
        pairs = []
        for fairseq_module, hf_module in modules:
            pairs += [(f"{fairseq_module}.{t}", f"{hf_module}.{t}") for t in ("weight", "bias")]
        for layer in range(layers):
            pairs += encoder_layer_names(layer, self.prefix)
        return pairs


def _family(prefix: str, lm_head: str, transform: str, decoder: str, lm_bias: str) -> HfFamily:
    return HfFamily(prefix, f"{prefix}.embeddings.word_embeddings.weight",
                    f"{prefix}.embeddings.position_embeddings.weight",
                    f"{prefix}.embeddings.token_type_embeddings.weight", f"{prefix}.embeddings.LayerNorm",
                    f"{lm_head}.dense", f"{lm_head}.{transform}", decoder, lm_bias)


ROBERTA = _family("roberta", "lm_head", "layer_norm", "lm_head.decoder.weight", "lm_head.bias")
"""``RobertaForMaskedLM`` (what :mod:`.export` writes)."""
BERT = _family("bert", "cls.predictions.transform", "LayerNorm", "cls.predictions.decoder.weight",
               "cls.predictions.bias")
"""``BertForMaskedLM`` (DNABERT)."""


def encoder_layer_names(layer: int, hf_prefix: str) -> list[tuple[str, str]]:
    """(fairseq name, transformers name) of every parameter of encoder layer ``layer``.

    ``hf_prefix`` is the transformers encoder's prefix, ``roberta`` or ``bert``.
    """
    pairs = []
    for fairseq_module, hf_module in _LAYER_MODULES:
        for tensor in ("weight", "bias"):
            pairs.append((
                f"{FAIRSEQ_ENCODER}.layers.{layer}.{fairseq_module}.{tensor}",
                f"{hf_prefix}.encoder.layer.{layer}.{hf_module}.{tensor}",
            ))
    return pairs


def count_layers(state: dict, prefix: str) -> int:
    """Number of encoder layers in a state dict whose layer names start ``{prefix}.{i}.``."""
    indices = {int(name[len(prefix) + 1 :].split(".", 1)[0])
               for name in state if name.startswith(prefix + ".")}
    if indices != set(range(len(indices))):
        raise ValueError(f"layers {sorted(indices)} are not numbered 0..n-1")
    return len(indices)
