from . import genemask_mlm  # noqa: F401  (registers the task)
