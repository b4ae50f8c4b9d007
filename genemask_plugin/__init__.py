"""genemask_plugin: the fairseq ``--user-dir`` for GeneMask pretraining.

Importing the package is cheap: it imports neither torch nor fairseq, so the console commands
answer ``--help`` at once and the recipes' command builder runs in a fraction of a second.
Registering with fairseq (the ``genemask_mlm`` task and criterion, the ``genemask_*``
architectures) happens where fairseq needs it:

- ``fairseq-train --user-dir genemask_plugin`` (and every fairseq command given the user dir)
  imports this package, then its ``tasks/`` and ``models/`` folders; the task brings its
  criterion, and :mod:`.checkpoints` lets torch's safe ``weights_only`` loader read fairseq
  checkpoints before any is loaded.
- In Python, ``import genemask_plugin.registration`` does the same (:mod:`.registration`).
  fairseq skips a ``--user-dir`` whose package is already imported, so a script that imports
  anything of ours and then uses fairseq's API should import it first.
"""
