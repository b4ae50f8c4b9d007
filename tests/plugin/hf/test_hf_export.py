"""genemask-hf export: fairseq RoBERTa -> transformers, same logits, same token ids, same classes."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from hf_test_helpers import (
    GUE,
    PMI_TABLE,
    REPO,
    fairseq_dictionary,
    fairseq_logits,
    hf_batch,
    no_leftovers,
    random_fairseq_roberta,
    real_sequences,
    save_fairseq_checkpoint,
    tiny_pretraining,
)

from genemask_plugin.checkpoints import load_checkpoint_state
from genemask_plugin.fewshot.prepare import token_ids
from genemask_plugin.hf import export as export_module
from genemask_plugin.hf.cli import main
from genemask_plugin.hf.export import ExportError, export_checkpoint
from genemask_plugin.hf.tokenizer import build_kmer_tokenizer
from genemask_preprocess.formats.fairseq_dictionary import (
    load_kmer_vocabulary,
    write_kmer_dictionary,
)
from genemask_preprocess.kmers import FAIRSEQ_SPECIALS, MASK_SYMBOL, all_kmers

TOLERANCE = 1e-4  # fp32, max abs over every logit of every real token


@pytest.fixture
def corpus(tmp_path):
    """A data folder holding only the 6-mer dict.txt (the exporter reads nothing else)."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    write_kmer_dictionary(folder / "dict.txt", 6)
    return folder


def mlm_task_cfg(data):
    return {"_name": "genemask_mlm", "data": str(data), "mask_strategy": "genemask", "pmi_table": str(PMI_TABLE)}


def assert_same_mlm_logits(export_dir, fairseq_model, sequences, dict_path):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(export_dir)
    model = AutoModelForMaskedLM.from_pretrained(export_dir).eval()
    batch = hf_batch(tokenizer, sequences)
    # the tokenizer gives exactly the ids genemask-fewshot prepare gives, with <s> in front
    vocab = load_kmer_vocabulary(dict_path)
    for row, dna in zip(batch["input_ids"].tolist(), sequences, strict=True):
        expected = [0, *token_ids(dna, vocab).tolist()]
        assert row[: len(expected)] == expected and set(row[len(expected):]) <= {1}
    batch["input_ids"][0, 3] = tokenizer.mask_token_id  # a masked position too
    with torch.no_grad():
        hf = model(**batch).logits
    ours = fairseq_logits(fairseq_model, batch["input_ids"])
    real = batch["attention_mask"].bool()
    assert real.sum() > 200 and (~real).sum() > 0  # several lengths, so padding is exercised
    difference = (hf[real] - ours[real]).abs().max().item()
    print(f"export parity, max abs logit difference: {difference:.2e}")  # shown with pytest -s
    assert difference <= TOLERANCE, difference
    return difference


def test_tokenizer_ids_equal_dictionary_ids_specials_included(tmp_path):
    from fairseq.data import Dictionary

    # a frequency-ordered dictionary (e.g. fairseq-preprocess's): ids follow its rows, not our order
    kmers = all_kmers(6)[::-1]
    path = tmp_path / "dict.txt"
    path.write_text("".join(f"{kmer} {1000 - i}\n" for i, kmer in enumerate(kmers)))
    dictionary = Dictionary.load(str(path))
    dictionary.add_symbol(MASK_SYMBOL)
    tokenizer = build_kmer_tokenizer(list(dictionary.symbols), 512)
    sequences = real_sequences(4)
    from genemask_preprocess.kmers import dna_to_kmer_string

    for dna in sequences:
        text = dna_to_kmer_string(dna)
        expected = [dictionary.bos()] + dictionary.encode_line(text, add_if_not_exist=False).tolist()
        assert tokenizer(text)["input_ids"] == expected
    assert tokenizer("<mask> AAAAAA NNNNNN")["input_ids"] == [
        0, dictionary.index(MASK_SYMBOL), dictionary.index("AAAAAA"), dictionary.unk(), 2]
    assert [tokenizer.convert_tokens_to_ids(s) for s in FAIRSEQ_SPECIALS] == [0, 1, 2, 3]
    assert tokenizer.pad_token_id == dictionary.pad() and tokenizer.mask_token_id == len(dictionary) - 1
    padded = tokenizer(["AAAAAA", "AAAAAA AAAAAC"], padding=True)["input_ids"]
    assert padded[0][-1] == 1


def test_sinusoid_initialised_positions_export_with_identical_logits(tmp_path, corpus):
    """--position-init sinusoidal leaves a plain RoBERTa: its position table exports like any other."""
    from genemask_plugin.models.position_init import init_positions_sinusoidal

    model, args = random_fairseq_roberta("genemask_tiny", fairseq_dictionary(corpus / "dict.txt"))
    init_positions_sinusoidal(model, 0.3)
    checkpoint = save_fairseq_checkpoint(tmp_path / "checkpoint.pt", model, args, mlm_task_cfg(corpus))
    export_checkpoint(checkpoint, tmp_path / "hf")
    assert assert_same_mlm_logits(tmp_path / "hf", model, real_sequences(4), corpus / "dict.txt") <= TOLERANCE


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["genemask_dnabert_base", "genemask_logo"])
def test_random_model_exports_with_identical_logits(tmp_path, corpus, arch):
    model, args = random_fairseq_roberta(arch, fairseq_dictionary(corpus / "dict.txt"))
    checkpoint = save_fairseq_checkpoint(tmp_path / "checkpoint.pt", model, args, mlm_task_cfg(corpus))
    export_checkpoint(checkpoint, tmp_path / "hf")
    assert assert_same_mlm_logits(tmp_path / "hf", model, real_sequences(4), corpus / "dict.txt") <= TOLERANCE
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"]) == ((12, 768) if arch.endswith("base") else (2, 256))
    assert config["max_position_embeddings"] == 514 and config["layer_norm_eps"] == 1e-5


@pytest.mark.slow
def test_trained_tiny_model_exports_through_the_cli(tmp_path, capsys):
    build_corpus, pretrain = tiny_pretraining()
    corpus = build_corpus(tmp_path / "corpus", n_records=60)
    checkpoint = pretrain(corpus, tmp_path / "pretrain")  # genemask_tiny, 5 updates
    out = tmp_path / "hf"
    assert main(["export", str(checkpoint), str(out)]) == 0  # dict.txt found via the checkpoint's data path
    assert "RobertaForMaskedLM, overlapping 6-mers tokenizer" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == sorted(export_module.EXPORT_FILES)

    from fairseq import checkpoint_utils

    models, _, _ = checkpoint_utils.load_model_ensemble_and_task([str(checkpoint)])
    assert assert_same_mlm_logits(out, models[0].eval(), real_sequences(6), corpus / "dict.txt") <= TOLERANCE
    card = (out / "README.md").read_text()
    state = load_checkpoint_state(checkpoint)
    assert state["optimizer_history"][-1]["num_updates"] == 5
    for fact in ("k: **6**", "masking strategy: `genemask`", f"PMI table: `{PMI_TABLE}`", "updates: `5`",
                 "space-separated overlapping 6-mers", "dna_to_kmer_string"):
        assert fact in card
    # the README's five lines run as written on this export and print a 6-mer
    import re

    readme = (REPO / "README.md").read_text()
    snippet = re.search(r"## Use your model in Hugging Face.*?```python\n(.*?)```", readme, re.S).group(1)
    assert snippet.count('"./demo_out/hf"') == 1  # the demo's export, read locally
    capsys.readouterr()
    exec(snippet.replace('"./demo_out/hf"', repr(str(out))), {})
    predicted = capsys.readouterr().out.strip()
    assert len(predicted) == 6 and set(predicted) <= set("ACGT")
    # a masked-token prediction through the fill-mask pipeline
    from transformers import pipeline

    fill = pipeline("fill-mask", model=str(out), tokenizer=str(out))
    predictions = fill("ACGTAC CGTACG <mask> TACGTA ACGTAC")
    assert len(predictions) == 5 and all(len(p["token_str"].strip()) == 6 for p in predictions)


@pytest.mark.slow
def test_fine_tuned_classifier_predicts_the_same_classes(tmp_path, capsys):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from genemask_plugin.fewshot.cli import main as fewshot
    from genemask_plugin.fewshot.evaluate import predict_split
    from genemask_plugin.fewshot.prepare import read_fewshot_tsv

    write_kmer_dictionary(tmp_path / "dict.txt", 6)
    data, run = tmp_path / "data", tmp_path / "ft"
    assert fewshot(["prepare", str(GUE), "--dict", str(tmp_path / "dict.txt"), "--out", str(data)]) == 0
    assert fewshot(["finetune", "none", str(data), "--shots", "50", "--out", str(run), "--max-updates", "30"]) == 0
    checkpoint = run / "checkpoint_best.pt"
    assert main(["export", str(checkpoint), str(tmp_path / "hf")]) == 0
    assert "RobertaForSequenceClassification, overlapping 6-mers tokenizer, classes 0, 1" in capsys.readouterr().out

    expected = predict_split(checkpoint, data, "test", device="cpu")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "hf")
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "hf").eval()
    assert model.config.id2label == {0: "0", 1: "1"}
    sequences = [row.dna for row in read_fewshot_tsv(GUE / "test.csv", 6)]
    with torch.no_grad():
        probs = torch.softmax(model(**hf_batch(tokenizer, sequences)).logits.double(), -1).numpy()
    np.testing.assert_array_equal(probs.argmax(1), expected.predicted)
    assert np.abs(probs - expected.probs).max() <= TOLERANCE
    assert len(set(np.round(probs[:, 1], 6))) > 10  # the outputs depend on the input


# ---------------------------------------------------------------------------------------------
# Bad input: one line, nothing left behind


def test_non_roberta_checkpoint(tmp_path, corpus, capsys):
    import argparse

    args = argparse.Namespace(arch="transformer_lm", _name="transformer_lm")
    path = tmp_path / "lm.pt"
    torch.save({"cfg": {"model": args, "task": {"_name": "language_modeling"}},
                "model": {"decoder.embed_tokens.weight": torch.zeros(3, 2)}}, path)
    assert main(["export", str(path), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a RoBERTa checkpoint (architecture 'transformer_lm')" in err
    assert not (tmp_path / "out").exists() and no_leftovers(tmp_path) == []


def test_sentencepiece_dictionary_is_refused(tmp_path, capsys):
    folder = tmp_path / "sp"
    folder.mkdir()
    pieces = ["▁A", "ACG", "TTGA", "CC", "G"]
    (folder / "dict.txt").write_text("".join(f"{p} 1\n" for p in pieces))
    from fairseq.data import Dictionary

    dictionary = Dictionary.load(str(folder / "dict.txt"))
    dictionary.add_symbol(MASK_SYMBOL)
    model, args = random_fairseq_roberta("genemask_tiny", dictionary)
    checkpoint = save_fairseq_checkpoint(tmp_path / "sp.pt", model, args, mlm_task_cfg(folder))
    assert main(["export", str(checkpoint), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a k-mer dictionary" in err and "SentencePiece" in err
    assert not (tmp_path / "out").exists()


def test_missing_files(tmp_path, corpus, capsys):
    assert main(["export", str(tmp_path / "nope.pt"), str(tmp_path / "out")]) == 1
    assert "checkpoint not found" in capsys.readouterr().err
    model, args = random_fairseq_roberta("genemask_tiny", fairseq_dictionary(corpus / "dict.txt"))
    model.register_classification_head("sentence_classification_head", num_classes=2)
    checkpoint = save_fairseq_checkpoint(tmp_path / "cls.pt", model, args,
                                         {"_name": "sentence_prediction", "data": str(tmp_path / "gone")})
    assert main(["export", str(checkpoint), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot find its dictionary" in err and "--data PREPARED_DIR" in err
    assert not (tmp_path / "out").exists() and no_leftovers(tmp_path) == []


def test_export_is_atomic(tmp_path, corpus, monkeypatch):
    model, args = random_fairseq_roberta("genemask_tiny", fairseq_dictionary(corpus / "dict.txt"))
    checkpoint = save_fairseq_checkpoint(tmp_path / "c.pt", model, args, mlm_task_cfg(corpus))

    def fail(*_, **__):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export_module, "save_kmer_tokenizer", fail)  # dies after the weights are written
    with pytest.raises(OSError):
        export_checkpoint(checkpoint, tmp_path / "out")
    assert not (tmp_path / "out").exists() and no_leftovers(tmp_path) == []
    monkeypatch.undo()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("keep")
    with pytest.raises(Exception, match="already holds files; pass --force"):
        export_checkpoint(checkpoint, tmp_path / "out")
    export_checkpoint(checkpoint, tmp_path / "out", force=True)
    assert (tmp_path / "out" / "mine.txt").read_text() == "keep" and (tmp_path / "out" / "model.safetensors").is_file()


def test_importing_the_plugin_does_not_import_transformers():
    probe = ("import sys, genemask_plugin, genemask_plugin.fewshot.cli, genemask_plugin.hf.cli; "
             "print('transformers' in sys.modules, 'tokenizers' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_export_error_is_an_input_error():
    from genemask_preprocess.errors import InputError

    assert issubclass(ExportError, InputError)
