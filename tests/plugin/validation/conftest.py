"""A skewed corpus and two short pretraining runs (different strategies, same seed) for the validation tests."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="session")
def skewed_corpus(tmp_path_factory):
    """AT-rich random DNA (A, T 0.4; C, G 0.1): a unigram floor near 10.3 bits, far from the 12 of a uniform guess."""
    root = tmp_path_factory.mktemp("validation")
    rng = np.random.default_rng(3)
    with open(root / "genome.fa", "w") as handle:
        for r in range(500):
            dna = rng.choice(list("ACGT"), p=[0.4, 0.1, 0.1, 0.4], size=int(rng.integers(60, 700)))
            handle.write(f">r{r}\n{''.join(dna)}\n")
    subprocess.run([str(BIN / "genemask-preprocess"), str(root / "genome.fa"), "--k", "6", "--out", str(root / "data"),
                    "--seed", "1", "--quiet"], check=True, env=_env())
    return root / "data"


def pretrain(data, save_dir, strategy, updates=3):
    table = REPO / "data" / "pmi" / "human_fragments.pmi.tsv"
    subprocess.run([sys.executable, "-m", "fairseq_cli.train", str(data), "--user-dir", str(REPO / "genemask_plugin"),
                    "--task", "genemask_mlm", "--criterion", "genemask_mlm", "--arch", "genemask_tiny",
                    "--mask-strategy", strategy, "--pmi-table", str(table), "--sample-break-mode", "complete",
                    "--optimizer", "adam", "--lr", "1e-3", "--batch-size", "4", "--max-update", str(updates),
                    "--cpu", "--num-workers", "0", "--seed", "5", "--no-epoch-checkpoints", "--disable-validation",
                    "--save-dir", str(save_dir)], check=True, env=_env(), capture_output=True)
    return save_dir / "checkpoint_last.pt"


@pytest.fixture(scope="session")
def checkpoints(skewed_corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    return {strategy: pretrain(skewed_corpus, root / strategy, strategy, updates)
            for strategy, updates in (("genemask", 3), ("kmer_span", 4))}
