"""Registering the plugin with fairseq in a Python process: ``import genemask_plugin.registration``.

It registers the ``genemask_mlm`` task and criterion and the ``genemask_*`` architectures, and
lets torch >= 2.6 load fairseq checkpoints (which pickle an ``argparse.Namespace``) with its safe
``weights_only`` loader (:mod:`.checkpoints`). Our commands that load models in-process import it;
``fairseq-train --user-dir genemask_plugin`` needs nothing from here (see the package docstring).
"""

import logging

# fairseq's task and model zoo call logging.basicConfig(level=DEBUG) when imported, so a plain
# script that registers the plugin would print fairseq's INFO lines ("Please install
# tensorboardX") before its own output. A NullHandler makes those calls no-ops; the user's
# logging set-up (or none) is left as it was.
_root_logger = logging.getLogger()
_import_guard = logging.NullHandler() if not _root_logger.handlers else None
if _import_guard is not None:
    _root_logger.addHandler(_import_guard)
try:
    from . import checkpoints, criterions, tasks  # noqa: F401  (safe globals, criterion, task)
    from .models import genemask_roberta  # noqa: F401  (the architectures)
finally:
    if _import_guard is not None:
        _root_logger.removeHandler(_import_guard)
