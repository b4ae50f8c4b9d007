"""Hugging Face interop (``genemask-hf``, extra ``[hf]``): export to transformers, import DNABERT.

Nothing outside this package imports transformers, so the fairseq training path stays light;
``import genemask_plugin`` does not import this package.
"""
