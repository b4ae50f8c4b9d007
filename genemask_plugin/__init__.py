"""genemask_plugin: the fairseq ``--user-dir`` for GeneMask pretraining.

Importing it registers the ``genemask_mlm`` task and criterion and the
``genemask_*`` architectures, and lets torch >= 2.6 load fairseq checkpoints
(which pickle an ``argparse.Namespace``) with its safe ``weights_only`` loader.
"""

import argparse

import torch.serialization

torch.serialization.add_safe_globals([argparse.Namespace])

from . import criterions, models, tasks  # noqa: E402,F401  (registers with fairseq)
