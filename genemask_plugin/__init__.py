"""genemask_plugin: the fairseq ``--user-dir`` for GeneMask pretraining.

Importing it registers the ``genemask_mlm`` task and criterion and the
``genemask_*`` architectures, and lets torch >= 2.6 load fairseq checkpoints
(which pickle an ``argparse.Namespace``) with its safe ``weights_only`` loader.

Importing the plugin registers with fairseq; the few-shot CLI (``genemask_plugin.fewshot``)
therefore imports fairseq too, and its modules import fairseq and torch at the top rather
than pretending to defer them. The masking core (:mod:`genemask_plugin.masking`) is numpy only.
"""

import argparse

import torch.serialization

torch.serialization.add_safe_globals([argparse.Namespace])

import logging  # noqa: E402

# fairseq calls logging.basicConfig(level=DEBUG) when its model zoo is imported, so a plain
# script that imports the plugin would print fairseq's INFO lines ("Please install
# tensorboardX") before its own output. A NullHandler makes those calls no-ops; the user's
# logging set-up (or none) is left as it was.
_root_logger = logging.getLogger()
_import_guard = logging.NullHandler() if not _root_logger.handlers else None
if _import_guard is not None:
    _root_logger.addHandler(_import_guard)
try:
    from . import criterions, models, tasks  # noqa: E402,F401  (registers with fairseq)
finally:
    if _import_guard is not None:
        _root_logger.removeHandler(_import_guard)
