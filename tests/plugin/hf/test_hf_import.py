"""genemask-hf import: a DNABERT-layout BertForMaskedLM -> fairseq checkpoint that matches and trains on."""

import json
import random
import re
import subprocess
import sys

import pytest
import torch
from hf_test_helpers import (
    fairseq_dictionary,
    no_leftovers,
    random_fairseq_roberta,
    real_sequences,
    tiny_pretraining,
)

from genemask_plugin.checkpoints import read_model_shape
from genemask_plugin.fewshot.finetune import PLUGIN_DIR
from genemask_plugin.hf.cli import main
from genemask_plugin.hf.dnabert_import import import_dnabert, read_bert_vocabulary
from genemask_preprocess.kmers import all_kmers, dna_to_kmer_string

BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
DNABERT_DIMS = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                    max_position_embeddings=512)


def dnabert_folder(folder, k=6, seed=0, vocab_k=None, **dims):
    """A local BertForMaskedLM in DNABERT's layout: BERT specials, then the k-mers in a shuffled order.

    The shuffle makes any by-position mapping fail; nothing is downloaded.
    """
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=5 + 4**k, **(dims or DNABERT_DIMS))
    model = BertForMaskedLM(config).eval()
    with torch.no_grad():  # BERT's init leaves biases and token types at 0 and LayerNorms at 1: perturb them
        for name, tensor in model.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name or "token_type" in name:
                tensor.add_(torch.randn_like(tensor) * 0.05)
    model.save_pretrained(folder)
    kmers = all_kmers(vocab_k or k)
    random.Random(seed).shuffle(kmers)
    (folder / "vocab.txt").write_text("\n".join(BERT_SPECIALS + kmers) + "\n")
    return model


def bert_logits_in_our_order(bert, folder, sequences, dictionary):
    """BERT's MLM logits of the sequences, with BERT's ids in and its vocabulary columns put in our order."""
    vocab = read_bert_vocabulary(folder / "vocab.txt")
    index = {token: i for i, token in enumerate(vocab.tokens)}
    rows = vocab.rows_in_our_order()
    ours, theirs = [], []
    for dna in sequences:
        kmers = dna_to_kmer_string(dna).split()
        ours.append([0, *(dictionary.index(km) for km in kmers), 2])
        theirs.append([index["[CLS]"], *(index[km] for km in kmers), index["[SEP]"]])
    ours[0][4], theirs[0][4] = dictionary.index("<mask>"), index["[MASK]"]
    width = max(map(len, ours))
    ours_ids = torch.tensor([r + [1] * (width - len(r)) for r in ours])
    theirs_ids = torch.tensor([r + [index["[PAD]"]] * (width - len(r)) for r in theirs])
    with torch.no_grad():
        logits = bert(input_ids=theirs_ids, attention_mask=(ours_ids != 1).long()).logits[..., rows]
    return ours_ids, logits


@pytest.mark.slow
def test_dnabert_sized_import_matches_bert_logits(tmp_path):
    """What is measured: max abs difference of all MLM logits over the real tokens of 4 real sequences.

    With BERT's own eps (1e-12) against fairseq's fixed 1e-5 it is a few 1e-4 (< 1e-3); with BERT's
    LayerNorms set to 1e-5 it is < 1e-5, so the eps is the only source of difference.
    """
    bert = dnabert_folder(tmp_path / "dnabert")
    result = import_dnabert(tmp_path / "dnabert", tmp_path / "imported")
    assert (result.arch, result.overrides, result.k) == ("genemask_dnabert_base", {}, 6)
    state = torch.load(tmp_path / "imported" / "checkpoint.pt", weights_only=True)
    dictionary = fairseq_dictionary(tmp_path / "imported" / "dict.txt")
    model, _ = random_fairseq_roberta("genemask_dnabert_base", dictionary)
    model.load_state_dict(state["model"])
    model.eval()
    sequences = real_sequences(4)
    ids, expected = bert_logits_in_our_order(bert, tmp_path / "dnabert", sequences, dictionary)
    with torch.no_grad():
        logits, _ = model(ids)
    real = ids != 1
    eps_default = (logits[real] - expected[real]).abs().max().item()
    assert eps_default < 1e-3
    for module in bert.modules():
        if isinstance(module, torch.nn.LayerNorm):
            module.eps = 1e-5
    _, expected_same_eps = bert_logits_in_our_order(bert, tmp_path / "dnabert", sequences, dictionary)
    eps_matched = (logits[real] - expected_same_eps[real]).abs().max().item()
    print(f"import parity, max abs MLM logit difference: eps 1e-12 vs 1e-5 {eps_default:.2e}; "
          f"eps matched {eps_matched:.2e}")  # shown with pytest -s
    assert eps_matched < 1e-5 < eps_default  # the mapping is exact; the eps alone differs
    assert read_model_shape(tmp_path / "imported" / "checkpoint.pt").arch == "genemask_dnabert_base"


@pytest.mark.slow
def test_imported_model_continues_pretraining_and_fine_tunes(tmp_path, capsys):
    dims = dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=2, intermediate_size=128,
                max_position_embeddings=512)
    dnabert_folder(tmp_path / "bert", **dims)
    assert main(["import", str(tmp_path / "bert"), str(tmp_path / "imported"), "--k", "6"]) == 0
    assert "--arch genemask_dnabert_base --encoder-layers 3 --encoder-embed-dim 64" in capsys.readouterr().out
    record = json.loads((tmp_path / "imported" / "import.json").read_text())
    checkpoint = tmp_path / "imported" / "checkpoint.pt"
    shape = read_model_shape(checkpoint)  # what genemask-fewshot finetune rebuilds
    assert shape.arch == "genemask_dnabert_base" and "--encoder-layers" in shape.options

    build_corpus, _ = tiny_pretraining()
    corpus = build_corpus(tmp_path / "corpus", n_records=40)
    command = [
        sys.executable, "-m", "fairseq_cli.train", str(corpus), "--user-dir", PLUGIN_DIR,
        "--task", "genemask_mlm", "--criterion", "genemask_mlm", *record["fairseq_flags"],
        "--mask-strategy", "kmer_span", "--optimizer", "adam", "--lr", "1e-4", "--batch-size", "8",
        "--max-update", "3", "--disable-validation", "--num-workers", "0", "--cpu", "--seed", "1",
        "--restore-file", str(checkpoint), "--reset-optimizer", "--reset-dataloader", "--reset-meters",
        "--reset-lr-scheduler", "--no-epoch-checkpoints", "--save-dir", str(tmp_path / "continued"),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Loaded checkpoint {checkpoint}" in result.stdout + result.stderr
    after = torch.load(tmp_path / "continued" / "checkpoint_last.pt", weights_only=True)
    before = torch.load(checkpoint, weights_only=True)
    assert after["optimizer_history"][-1]["num_updates"] == 3
    name = "encoder.sentence_encoder.embed_tokens.weight"
    change = (after["model"][name] - before["model"][name]).abs().max().item()
    assert 0 < change < 0.01  # trained on from the imported weights, not from a fresh init

    from hf_test_helpers import GUE

    from genemask_plugin.fewshot.cli import main as fewshot

    data = tmp_path / "fewshot"
    assert fewshot(["prepare", str(GUE), "--dict", str(tmp_path / "imported" / "dict.txt"), "--out", str(data)]) == 0
    assert fewshot(["finetune", str(checkpoint), str(data), "--shots", "50", "--out", str(tmp_path / "ft"),
                    "--max-updates", "2"]) == 0
    assert (tmp_path / "ft" / "checkpoint_best.pt").is_file()


# ---------------------------------------------------------------------------------------------
# Bad input


SMALL = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
             max_position_embeddings=64)


def run_import(folder, out, capsys, *extra):
    capsys.readouterr()  # the fixture's own output
    code = main(["import", str(folder), str(out), *extra])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists() and no_leftovers(out.parent) == []
    return err


def test_vocab_of_another_k(tmp_path, capsys):
    dnabert_folder(tmp_path / "bert", k=6, vocab_k=5, **SMALL)  # 4101 rows, 5-mer vocab.txt
    err = run_import(tmp_path / "bert", tmp_path / "out", capsys)
    assert "holds 1029 tokens (5-mers) but the model's embeddings have 4101 rows" in err
    dnabert_folder(tmp_path / "bert6", k=6, **SMALL)
    err = run_import(tmp_path / "bert6", tmp_path / "out", capsys, "--k", "5")
    assert "holds 6-mers, not 5-mers" in err


def test_not_a_kmer_vocabulary(tmp_path, capsys):
    dnabert_folder(tmp_path / "bert", k=3, **SMALL)
    vocab = (tmp_path / "bert" / "vocab.txt").read_text().replace("ACG\n", "##ing\n")
    (tmp_path / "bert" / "vocab.txt").write_text(vocab)
    assert "'##ing' is neither a BERT special nor an A/C/G/T k-mer" in run_import(tmp_path / "bert", tmp_path / "out", capsys)
    (tmp_path / "bert" / "vocab.txt").write_text("\n".join(all_kmers(3)) + "\n")
    assert "lacks the BERT special tokens" in run_import(tmp_path / "bert", tmp_path / "out", capsys)


@pytest.mark.parametrize("missing, message", [
    ("config.json", "config.json not found"),
    ("model.safetensors", "no weights (model.safetensors or pytorch_model.bin) found"),
    ("vocab.txt", "vocab.txt not found"),
])
def test_missing_files(tmp_path, capsys, missing, message):
    dnabert_folder(tmp_path / "bert", k=3, **SMALL)
    (tmp_path / "bert" / missing).unlink()
    assert message in run_import(tmp_path / "bert", tmp_path / "out", capsys)


def test_missing_folder_and_not_bert(tmp_path, capsys):
    assert "no such directory" in run_import(tmp_path / "nope", tmp_path / "out", capsys)
    dnabert_folder(tmp_path / "bert", k=3, **SMALL)
    config = json.loads((tmp_path / "bert" / "config.json").read_text())
    (tmp_path / "bert" / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    assert "model_type 'gpt2', expected 'bert'" in run_import(tmp_path / "bert", tmp_path / "out", capsys)


def test_small_bert_picks_nothing_named_and_rows_map_by_symbol(tmp_path):
    bert = dnabert_folder(tmp_path / "bert", k=3, **SMALL)
    result = import_dnabert(tmp_path / "bert", tmp_path / "out")
    assert result.arch == "genemask_dnabert_base"
    assert result.overrides == {"encoder_layers": 1, "encoder_embed_dim": 16, "encoder_attention_heads": 2,
                                "encoder_ffn_embed_dim": 32, "max_positions": 64}
    state = torch.load(tmp_path / "out" / "checkpoint.pt", weights_only=True)["model"]
    vocab = (tmp_path / "bert" / "vocab.txt").read_text().split()
    words = bert.bert.embeddings.word_embeddings.weight
    ours = state["encoder.sentence_encoder.embed_tokens.weight"]
    ordered = ["[CLS]", "[PAD]", "[SEP]", "[UNK]", *all_kmers(3), "[MASK]"]
    for our_id, token in enumerate(ordered):
        assert torch.equal(ours[our_id], words[vocab.index(token)])
    positions = state["encoder.sentence_encoder.embed_positions.weight"]
    folded = bert.bert.embeddings.position_embeddings.weight + bert.bert.embeddings.token_type_embeddings.weight[0]
    assert positions.shape[0] == 66 and torch.allclose(positions[2:], folded) and not positions[:2].any()
    assert (tmp_path / "out" / "dict.txt").read_text().split()[::2] == all_kmers(3)


# ---------------------------------------------------------------------------------------------
# Mismatched artefacts: a model without a masked-LM head, weights that are not config.json's (issue 21)


def bert_without_head(folder, kind, k=3, seed=0):
    """A local BertForSequenceClassification or bare BertModel in DNABERT's layout."""
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    torch.manual_seed(seed)
    model = {"classifier": BertForSequenceClassification, "base": BertModel}[kind](
        BertConfig(vocab_size=5 + 4**k, **SMALL)).eval()
    model.save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(BERT_SPECIALS + all_kmers(k)) + "\n")
    return model


@pytest.mark.parametrize("kind", ["classifier", "base"])
def test_a_model_without_masked_lm_head_imports_its_encoder_only_and_says_so(tmp_path, capsys, kind):
    model = bert_without_head(tmp_path / "bert", kind)
    capsys.readouterr()
    assert main(["import", str(tmp_path / "bert"), str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err.splitlines()
    expected = {"classifier": "BertForSequenceClassification", "base": "BertModel"}[kind]
    assert len(err) == 1 and err[0].startswith(f"genemask-hf: warning: {tmp_path / 'bert'}, a {expected} without "
                                               "a masked-LM head: imported its encoder only"), err
    state = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    assert "BertForSequenceClassification" in state["task_state"]["untrained_lm_head"] or kind == "base"
    assert json.loads((tmp_path / "a" / "import.json").read_text())["lm_head"].startswith("untrained: ")
    weights = state["model"]
    encoder = model.bert if kind == "classifier" else model
    assert torch.equal(weights["encoder.sentence_encoder.layers.0.fc1.weight"],
                       encoder.encoder.layer[0].intermediate.dense.weight)  # the encoder is the model's
    head = "encoder.lm_head"  # a fresh head, fairseq's initialisation, the same on every import
    assert not weights[f"{head}.bias"].any() and torch.equal(weights[f"{head}.layer_norm.weight"],
                                                             torch.ones_like(weights[f"{head}.layer_norm.weight"]))
    assert weights[f"{head}.weight"].data_ptr() == weights["encoder.sentence_encoder.embed_tokens.weight"].data_ptr()
    assert main(["import", str(tmp_path / "bert"), str(tmp_path / "b")]) == 0
    again = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["model"]
    assert torch.equal(again[f"{head}.dense.weight"], weights[f"{head}.dense.weight"])
    assert 0.015 < weights[f"{head}.dense.weight"].std().item() < 0.025


def test_an_import_with_a_full_head_records_it(tmp_path):
    dnabert_folder(tmp_path / "bert", k=3, **SMALL)
    result = import_dnabert(tmp_path / "bert", tmp_path / "out")
    assert result.untrained_lm_head is None
    assert torch.load(tmp_path / "out" / "checkpoint.pt", weights_only=True)["task_state"] == {}
    assert json.loads((tmp_path / "out" / "import.json").read_text())["lm_head"] == "imported"


def test_export_refuses_an_untrained_head(tmp_path, capsys):
    bert_without_head(tmp_path / "bert", "base")
    assert main(["import", str(tmp_path / "bert"), str(tmp_path / "imported")]) == 0
    capsys.readouterr()
    assert main(["export", str(tmp_path / "imported" / "checkpoint.pt"), str(tmp_path / "hf")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "its masked-LM head is untrained (imported from" in err
    assert not (tmp_path / "hf").exists() and no_leftovers(tmp_path) == []


def _edit_weights(folder, edit):
    from safetensors.torch import load_file, save_file

    weights = load_file(folder / "model.safetensors")
    edit(weights)
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})


@pytest.mark.parametrize(("damage", "message"), [
    ("config", r"bert.encoder.layer.0.intermediate.dense.bias has shape \[32\] in the weights but \[48\] by "
               r"config.json \(and 2 more\): the config is not the weights'"),
    ("encoder", r"the weights lack bert.encoder.layer.0.attention.self.query.weight \(a truncated file"),
    ("half-head", r"the weights hold only part of the masked-LM head \(no cls.predictions.transform.dense.bias\)"),
])
def test_weights_that_are_not_the_model_s_are_refused_with_the_cause(tmp_path, capsys, damage, message):
    """transformers would fill the gaps with random values, or say "look at the above report!" with none shown."""
    dnabert_folder(tmp_path / "bert", k=3, **SMALL)
    if damage == "config":
        config = json.loads((tmp_path / "bert" / "config.json").read_text())
        (tmp_path / "bert" / "config.json").write_text(json.dumps({**config, "intermediate_size": 48}))
    elif damage == "encoder":
        _edit_weights(tmp_path / "bert", lambda w: w.pop("bert.encoder.layer.0.attention.self.query.weight"))
    else:
        _edit_weights(tmp_path / "bert", lambda w: w.pop("cls.predictions.transform.dense.bias"))
    err = run_import(tmp_path / "bert", tmp_path / "out", capsys)
    assert re.search(message, err), err
    assert "above report" not in err and "nothing imported" in err
