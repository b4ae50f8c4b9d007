"""Tests of genemask_preprocess.motifs.jaspar: offline JASPAR loading and the [motifs] extra check."""

import sys

import numpy as np
import pytest

from genemask_preprocess.errors import InputError
from genemask_preprocess.motifs import MotifAnalysisError
from genemask_preprocess.motifs.jaspar import MOTIFS_EXTRA, jaspar_releases, load_jaspar_motifs
from genemask_preprocess.motifs.pwm_scoring import scoring_matrix


def test_missing_pyjaspar_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyjaspar", None)  # makes `import pyjaspar` fail
    with pytest.raises(MotifAnalysisError) as err:
        load_jaspar_motifs()
    message = str(err.value)
    assert "pyjaspar" in message and "pip install 'genemask-plugin[motifs]'" in message
    assert MOTIFS_EXTRA in message and "\n" not in message
    assert isinstance(err.value, InputError)  # the CLI turns it into one line and exit 1


def test_missing_biopython_names_the_extra(monkeypatch):
    pytest.importorskip("pyjaspar", reason="the [motifs] extra is needed")
    monkeypatch.setitem(sys.modules, "Bio", None)
    with pytest.raises(MotifAnalysisError, match=r"\(Bio is missing\).*genemask-plugin\[motifs\]"):
        load_jaspar_motifs()


def test_jaspar_core_vertebrates_load_offline():
    pytest.importorskip("pyjaspar", reason="the [motifs] extra is needed")
    with pytest.raises(MotifAnalysisError, match="not bundled"):
        load_jaspar_motifs("JASPAR1999")
    releases = jaspar_releases()
    assert releases == sorted(releases) and all(r.startswith("JASPAR") for r in releases)
    release, found = load_jaspar_motifs()
    assert release in releases and len(found) > 500
    ids = [m.matrix_id for m in found]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)  # latest version of each, sorted
    assert all(m.collection == "CORE" and "vertebrates" in m.tax_group for m in found[:20])
    matrix = scoring_matrix(found[0])
    assert np.isfinite(matrix.forward).all()  # pseudocounts keep the log-odds finite


@pytest.mark.filterwarnings(
    "ignore:Zero motifs returned"
)  # pyjaspar's own warning for an empty result
def test_unknown_tax_group_is_an_error():
    pytest.importorskip("pyjaspar", reason="the [motifs] extra is needed")
    with pytest.raises(MotifAnalysisError, match="no CORE motifs for tax group 'martians'"):
        load_jaspar_motifs(tax_group="martians")
