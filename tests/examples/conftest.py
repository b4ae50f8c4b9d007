"""The Python scripts in examples/ are scripts, not a package: their folder goes on sys.path, as when one runs."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
