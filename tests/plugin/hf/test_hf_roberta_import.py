"""genemask-hf export -> import: non-overlapping k-mers and single nucleotides go to transformers and come back.

What is measured, for a stride-6 and a k=1 ``genemask_tiny``: the exported tokenizer reads raw DNA into
exactly the ids ``genemask-fewshot prepare`` writes; the max abs difference of all MLM logits over the
real tokens of real sequences (one masked, padded in one batch) between fairseq and transformers
(export), and between the original and the re-imported fairseq model (import).
"""

import json

import pytest
import torch
from hf_test_helpers import (
    PMI_TABLE,
    fairseq_dictionary,
    fairseq_logits,
    no_leftovers,
    random_fairseq_roberta,
    real_sequences,
    save_fairseq_checkpoint,
)

from genemask_plugin.checkpoints import read_model_shape
from genemask_plugin.fewshot.prepare import token_ids
from genemask_plugin.hf.cli import main
from genemask_preprocess.formats.fairseq_dictionary import (
    load_kmer_vocabulary,
    write_kmer_dictionary,
)

EXPORT_TOLERANCE = 1e-4  # as test_hf_export.py; measured 0.0
IMPORT_TOLERANCE = 1e-3  # as test_hf_import.py (BERT's eps); measured 0.0: same weights, same eps


def exported_model(tmp_path, k, stride):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_kmer_dictionary(corpus / "dict.txt", k, stride)
    model, args = random_fairseq_roberta("genemask_tiny", fairseq_dictionary(corpus / "dict.txt"), seed=k)
    task_cfg = {"_name": "genemask_mlm", "data": str(corpus), "mask_strategy": "random", "pmi_table": str(PMI_TABLE)}
    checkpoint = save_fairseq_checkpoint(tmp_path / "checkpoint.pt", model, args, task_cfg)
    assert main(["export", str(checkpoint), str(tmp_path / "hf")]) == 0
    return model, corpus / "dict.txt"


@pytest.mark.parametrize(("k", "stride", "described"), [(6, 6, "non-overlapping 6-mers"), (1, 1, "single nucleotides")])
def test_export_then_import_round_trips_tokens_and_logits(tmp_path, capsys, k, stride, described):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    model, dict_path = exported_model(tmp_path, k, stride)
    assert f"RobertaForMaskedLM, {described} tokenizer" in capsys.readouterr().out
    assert f"({described}, stride {stride})" in (tmp_path / "hf" / "README.md").read_text()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "hf")
    sequences = [dna[: len(dna) - i] for i, dna in enumerate(real_sequences(6))]  # remainders of several lengths
    batch = tokenizer(sequences, return_tensors="pt", padding=True)
    vocab = load_kmer_vocabulary(dict_path)
    for row, dna in zip(batch["input_ids"].tolist(), sequences, strict=True):
        expected = [0, *token_ids(dna, vocab).tolist()]  # exactly the ids of genemask-fewshot prepare
        assert row[: len(expected)] == expected and set(row[len(expected) :]) <= {1}
        assert tokenizer.decode(row[1 : len(expected) - 1]) == dna  # the Fuse decoder gives the DNA back
    batch["input_ids"][0, 3] = tokenizer.mask_token_id
    real = batch["attention_mask"].bool()
    hf = AutoModelForMaskedLM.from_pretrained(tmp_path / "hf").eval()
    with torch.no_grad():
        hf_logits = hf(**batch).logits
    ours = fairseq_logits(model, batch["input_ids"])
    export_difference = (hf_logits[real] - ours[real]).abs().max().item()

    assert main(["import", str(tmp_path / "hf"), str(tmp_path / "back")]) == 0
    assert f"checkpoint.pt: {described}, --arch genemask_tiny;" in capsys.readouterr().out
    assert (tmp_path / "back" / "dict.txt").read_bytes() == dict_path.read_bytes()  # the stride came back
    record = json.loads((tmp_path / "back" / "import.json").read_text())
    assert (record["k"], record["stride"], record["arch"]) == (k, stride, "genemask_tiny")
    assert read_model_shape(tmp_path / "back" / "checkpoint.pt").arch == "genemask_tiny"
    back, _ = random_fairseq_roberta("genemask_tiny", fairseq_dictionary(tmp_path / "back" / "dict.txt"), seed=99)
    back.load_state_dict(torch.load(tmp_path / "back" / "checkpoint.pt", weights_only=True)["model"])
    import_difference = (fairseq_logits(back.eval(), batch["input_ids"])[real] - ours[real]).abs().max().item()
    print(f"{described}: export {export_difference:.2e}, import {import_difference:.2e}")  # pytest -s shows it
    assert real.sum() > 60 and (~real).sum() > 0
    assert export_difference <= EXPORT_TOLERANCE and import_difference <= IMPORT_TOLERANCE


def test_a_roberta_folder_without_our_tokenizer_is_refused(tmp_path, capsys):
    exported_model(tmp_path, 1, 1)
    (tmp_path / "hf" / "tokenizer.json").unlink()
    capsys.readouterr()
    assert main(["import", str(tmp_path / "hf"), str(tmp_path / "back")]) == 1
    err = capsys.readouterr().err
    assert "tokenizer.json: cannot read a tokenizer vocabulary" in err and err.count("\n") == 1
    assert not (tmp_path / "back").exists() and no_leftovers(tmp_path) == []
