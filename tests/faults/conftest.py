"""The fault suite's shared fixtures: the inputs every command reads, made once per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fault_commands import build_inputs
from fault_harness import run_case


@pytest.fixture(scope="session")
def inputs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fault-inputs")
    (root / ".case-tmp").mkdir()

    def run(entry, argv):
        outcome = run_case(entry, argv, root)
        assert outcome.code == 0, outcome.stderr

    build_inputs(root, run)
    shutil.rmtree(root / ".case-tmp")
    return root


@pytest.fixture(scope="session")
def jaspar_motifs():
    from genemask_preprocess.motifs import cli

    release, motifs = cli.load_jaspar_motifs(None, tax_group="vertebrates")
    return release, motifs, {id(motif): cli.scoring_matrix(motif) for motif in motifs}


@pytest.fixture(scope="module", autouse=True)
def jaspar_loaded_once(jaspar_motifs):
    """genemask-motifs spends ~10 s reading JASPAR and building PWMs, the same every case: do it
    once here, before the cases are forked (the table, outputs and signals are what is tested)."""
    from genemask_preprocess.motifs import cli

    release, motifs, matrices = jaspar_motifs
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "load_jaspar_motifs", lambda release_name, tax_group: (release, motifs))
        patch.setattr(cli, "scoring_matrix", lambda motif: matrices[id(motif)])
        yield


@pytest.fixture
def workspace(inputs, tmp_path) -> Path:
    ws = tmp_path / "ws"
    shutil.copytree(inputs, ws, symlinks=True)
    (ws / ".case-tmp").mkdir()
    return ws
