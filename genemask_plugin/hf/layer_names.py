"""Parameter names of one transformer encoder, fairseq RoBERTa vs transformers BERT/RoBERTa, and its LayerNorm eps.

fairseq's ``TransformerEncoderLayer`` and transformers' ``BertLayer``/``RobertaLayer`` are the
same post-LayerNorm block, so a layer maps one to one by name. This table is the one place
that knows the names; :mod:`.export` and :mod:`.dnabert_import` use it in opposite directions.
"""

from __future__ import annotations

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
