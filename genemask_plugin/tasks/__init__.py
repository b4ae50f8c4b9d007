# fairseq imports a --user-dir's tasks/ and models/, not its criterions/: the task brings its criterion.
from .. import criterions  # noqa: F401  (registers the criterion)
from . import genemask_mlm  # noqa: F401  (registers the task)
