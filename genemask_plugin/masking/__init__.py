"""GeneMask masking: which tokens of an item to mask, and what the model sees there.

Pure numpy (no fairseq, no torch), so every step is unit-tested on hand-built arrays; the
fairseq glue is :mod:`genemask_plugin.data.genemask_mask_dataset`. One concept per module:

- :mod:`.config`: :class:`MaskingConfig`, the one declaration of every masking setting.
- :mod:`.strategies`: the registry, one :class:`MaskStrategy` entry per strategy.
- :mod:`.spans`: the selection cores (k-spans, random tokens, local and global PMI spans).
- :mod:`.score_lookup`: how a strategy's PMI scores are looked up (by token, by position).
- :mod:`.replacement`: BERT's 80/10/10 replacement of the masked tokens.
- :mod:`.curricula`: the rules that pick one of an item's candidate masks per batch.
"""
