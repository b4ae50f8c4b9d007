"""Session-wide test set-up."""

import os
import sys

# Recipes and scripts under test call our console commands and fairseq's by name. Put the
# interpreter's own bin folder first, so they resolve to this environment even when it is not
# activated (`make test` runs .venv/bin/python directly; CI does the same).
os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
