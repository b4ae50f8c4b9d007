"""The paper's architectures as variants of fairseq's RoBERTa (512 learned positions, :data:`.defaults.MAX_POSITIONS`).

They are plain ``roberta`` models, so ``sentence_prediction`` fine-tuning and
``RobertaModel.from_pretrained`` work on their checkpoints unchanged.
"""

from fairseq.models import register_model_architecture
from fairseq.models.roberta.model import base_architecture
from fairseq.utils import safe_getattr

from .defaults import MAX_POSITIONS


def _set_defaults(args, **defaults):
    for name, value in defaults.items():
        setattr(args, name, safe_getattr(args, name, value))


@register_model_architecture("roberta", "genemask_dnabert_base")
def genemask_dnabert_base(args):
    """DNABERT (BERT-base): 12 layers, 768 hidden, 12 heads, FFN 3072, dropout 0.1."""
    _set_defaults(
        args,
        encoder_layers=12,
        encoder_embed_dim=768,
        encoder_attention_heads=12,
        encoder_ffn_embed_dim=3072,
        dropout=0.1,
        attention_dropout=0.1,
        max_positions=MAX_POSITIONS,
    )
    base_architecture(args)


@register_model_architecture("roberta", "genemask_logo")
def genemask_logo(args):
    """LOGO: 2 layers, 256 hidden, 8 heads, FFN 3072, no dropout."""
    _set_defaults(
        args,
        encoder_layers=2,
        encoder_embed_dim=256,
        encoder_attention_heads=8,
        encoder_ffn_embed_dim=3072,
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        max_positions=MAX_POSITIONS,
    )
    base_architecture(args)


@register_model_architecture("roberta", "genemask_tiny")
def genemask_tiny(args):
    """For tests and the demo: 2 layers, 64 hidden, 2 heads, FFN 128."""
    _set_defaults(
        args,
        encoder_layers=2,
        encoder_embed_dim=64,
        encoder_attention_heads=2,
        encoder_ffn_embed_dim=128,
        dropout=0.1,
        attention_dropout=0.1,
        max_positions=MAX_POSITIONS,
    )
    base_architecture(args)
