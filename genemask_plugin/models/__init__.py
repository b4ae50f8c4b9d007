from . import genemask_roberta  # noqa: F401  (registers the architectures)
