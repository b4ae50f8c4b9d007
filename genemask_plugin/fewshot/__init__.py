"""Few-shot classification tooling (``genemask-fewshot``): prepare, fine-tune, evaluate, grid."""
