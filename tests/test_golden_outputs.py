"""Every output users see is byte-identical to the digests recorded before the restructure.

``tests/golden/digests.json`` was written by ``python tests/golden/compute_digests.py`` on the
code as it stood before the layout changed. A deliberate change of output updates the file
in the same commit, with its reason in the commit message.
"""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "golden"))
from compute_digests import compute_digests  # noqa: E402

EXPECTED = json.loads((Path(__file__).resolve().parent / "golden" / "digests.json").read_text())


@pytest.mark.slow
def test_outputs_match_the_recorded_digests():
    actual = compute_digests()
    assert actual.keys() == EXPECTED.keys()
    assert {k: v for k, v in actual.items() if v != EXPECTED[k]} == {}
