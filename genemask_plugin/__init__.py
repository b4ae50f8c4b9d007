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

from . import criterions, models, tasks  # noqa: E402,F401  (registers with fairseq)
