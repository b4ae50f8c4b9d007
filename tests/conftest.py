"""Session-wide test set-up."""

import os
import sys

# Recipes and scripts under test call our console commands and fairseq's by name. Put the
# interpreter's own bin folder first, so they resolve to this environment even when it is not
# activated (`make test` runs .venv/bin/python directly; CI does the same).
os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])

# One torch thread in this process and the commands it starts. The fault suite forks this process to run
# each case; a fork taken after torch has started its OpenMP pool (any earlier in-process test that ran a
# model) deadlocks the child in its first parallel region. One thread never starts the pool, and on the
# 2-core CI machine it is also faster than threads competing with the suite's subprocesses.
os.environ.setdefault("OMP_NUM_THREADS", "1")
