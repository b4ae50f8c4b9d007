"""What every command assumes about our models unless a checkpoint says otherwise.

Plain constants, importable without torch or fairseq (command-line ``--help`` texts use them).
"""

MAX_POSITIONS = 512
"""Learned positions of our architectures: the longest item in tokens, ``<s>`` and ``</s>`` included."""
DEFAULT_ARCH = "genemask_tiny"
"""The architecture trained from scratch when none is named (the demo's and the tests' model)."""
