"""The paper's fine-tuning recipe per shot regime, as plain settings (no torch: grid plans read it).

GeneMask §5: 10/50/100-shot sets with batch 5, lr 1e-4 for 20 epochs, 500/1000-shot sets with
batch 15, lr 5e-5 for 5 epochs; 10% warm-up, dropout 0.1, weight decay 0.01. What the paper does
not state follows the authors' fine-tuning script (docs/genemask_method.md, section 8).
"""

from __future__ import annotations

from dataclasses import dataclass

LARGE_REGIME_SHOTS = 500
"""Shot counts from here on use the 500/1000-shot settings."""

@dataclass(frozen=True)
class FinetuneRecipe:
    batch_size: int
    lr: float
    epochs: int
    warmup_fraction: float = 0.1
    dropout: float = 0.1
    """Encoder and attention dropout (the authors' hidden and attention dropout)."""
    weight_decay: float = 0.01
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    clip_norm: float = 1.0
    pooler_dropout: float = 0.1
    """The classification head's dropout (BERT's classifier dropout; fairseq's head applies it before and
    after its dense layer)."""

    def optimizer_settings(self) -> dict:
        """The optimiser settings a grid cell records, so that cells of another recipe are not taken as finished."""
        return {"adam_betas": list(self.adam_betas), "adam_eps": self.adam_eps, "clip_norm": self.clip_norm,
                "pooler_dropout": self.pooler_dropout}


def paper_recipe(shots: int) -> FinetuneRecipe:
    """The paper's settings for a shot regime (``shots`` is the paper's name of the set)."""
    if shots >= LARGE_REGIME_SHOTS:
        return FinetuneRecipe(batch_size=15, lr=5e-5, epochs=5)
    return FinetuneRecipe(batch_size=5, lr=1e-4, epochs=20)
