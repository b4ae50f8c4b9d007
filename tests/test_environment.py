"""The environment `make setup` builds: fairseq and transformers import and work in one process."""

import subprocess
import sys


def test_fairseq_and_transformers_import_together():
    probe = (
        "import fairseq, genemask_plugin, transformers; "
        "from transformers import BertConfig, BertForMaskedLM; "
        "m = BertForMaskedLM(BertConfig(vocab_size=16, hidden_size=8, num_hidden_layers=1, "
        "num_attention_heads=2, intermediate_size=8)); print(type(m).__name__)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "BertForMaskedLM"
