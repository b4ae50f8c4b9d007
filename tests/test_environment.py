"""The environment `make setup` builds: fairseq and transformers import and work in one process; `make setup`
and `make test` say what each stage does."""

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_fairseq_and_transformers_import_together():
    probe = (
        "import fairseq, genemask_plugin.registration, transformers; "
        "from transformers import BertConfig, BertForMaskedLM; "
        "m = BertForMaskedLM(BertConfig(vocab_size=16, hidden_size=8, num_hidden_layers=1, "
        "num_attention_heads=2, intermediate_size=8)); print(type(m).__name__)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "BertForMaskedLM"


def test_make_setup_and_test_announce_each_stage(tmp_path):
    """One line per stage, in order, before the stage runs (``make -n`` lists what would run, silent lines too)."""
    planned = subprocess.run(["make", "-n", "-B", "test", f"VENV={tmp_path / 'venv'}"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.splitlines()
    said = [re.sub(r'^echo "== |"$', "", line) for line in planned if line.startswith('echo "== ')]
    stages = ["creating the virtual environment", "installing torch==", "installing this package",
              "removing torchaudio", "ruff check", "pytest: the whole suite, about"]
    assert [next(i for i, line in enumerate(said) if stage in line) for stage in stages] == sorted(
        next(i for i, line in enumerate(said) if stage in line) for stage in stages)
    pip = next(i for i, line in enumerate(planned) if "pip install -q \"torch==" in line)
    assert "installing torch==" in planned[pip - 1]  # said just before it runs
