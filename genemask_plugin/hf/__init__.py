"""Hugging Face interop (``genemask-hf``, extra ``[hf]``): export to transformers, import DNABERT.

Nothing else in ``genemask_plugin`` or ``genemask_preprocess`` imports transformers, so the fairseq
training path stays light; ``import genemask_plugin`` does not import this package. It reads
checkpoints and dictionaries through the shared readers (:mod:`genemask_plugin.checkpoints`,
:mod:`genemask_preprocess.formats.fairseq_dictionary`) and imports nothing from ``fewshot``.
"""
