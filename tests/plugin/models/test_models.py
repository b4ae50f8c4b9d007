"""Tests of the genemask_* architectures (contract #4): sizes, 512 positions, sentence_prediction loading."""

import pytest
import torch
from fairseq import options, tasks

import genemask_plugin.registration  # noqa: F401  (fairseq skips --user-dir once the package is imported)
from genemask_preprocess.formats.fairseq_dictionary import write_kmer_dictionary

PAPER = {
    # arch: (layers, hidden, heads, ffn, dropout)
    "genemask_dnabert_base": (12, 768, 12, 3072, 0.1),
    "genemask_logo": (2, 256, 8, 3072, 0.0),
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_kmer_dictionary(root / "dict.txt", 6)
    for sub in ("input0", "label"):
        (root / sub).mkdir()
    write_kmer_dictionary(root / "input0" / "dict.txt", 6)
    (root / "label" / "dict.txt").write_text("0 1\n1 1\n")
    return root


def build(data, arch, task="genemask_mlm", *extra):
    parser = options.get_training_parser()
    argv = [str(data), "--user-dir", "genemask_plugin", "--task", task, "--arch", arch, "--mask-strategy", "random"]
    if task == "sentence_prediction":
        argv = [str(data), "--user-dir", "genemask_plugin", "--task", task, "--arch", arch, "--num-classes", "2",
                "--criterion", "sentence_prediction"]
    args = options.parse_args_and_arch(parser, [*argv, *extra])
    t = tasks.setup_task(args)
    return args, t.build_model(args)


@pytest.mark.parametrize("arch", sorted(PAPER))
def test_paper_architectures(data, arch):
    layers, hidden, heads, ffn, dropout = PAPER[arch]
    args, model = build(data, arch)
    encoder = model.encoder.sentence_encoder
    assert len(encoder.layers) == layers
    assert encoder.embed_tokens.weight.shape == (4101, hidden)  # 4^6 k-mers + 4 specials + <mask>
    layer = encoder.layers[0]
    assert layer.self_attn.num_heads == heads
    assert layer.fc1.out_features == ffn
    assert (args.dropout, args.attention_dropout) == (dropout, dropout)
    assert model.max_positions() == 512
    assert encoder.embed_positions.num_embeddings == 512 + 2  # fairseq offsets learned positions by pad + 1


def test_tiny_is_small_and_user_flags_override_arch_defaults(data):
    args, model = build(data, "genemask_tiny")
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    assert model.max_positions() == 512
    args, model = build(data, "genemask_logo", "genemask_mlm", "--encoder-layers", "3", "--dropout", "0.2")
    assert len(model.encoder.sentence_encoder.layers) == 3 and args.dropout == 0.2


def test_pretrained_weights_load_into_sentence_prediction(data):
    _, mlm = build(data, "genemask_tiny")
    args, classifier = build(data, "genemask_tiny", "sentence_prediction")
    assert "sentence_classification_head" in classifier.classification_heads
    state = mlm.state_dict()
    # What `--restore-file CKPT --reset-optimizer ...` does: strict loading; RoBERTa keeps the new head.
    classifier.load_state_dict(state, strict=True, model_cfg=args)
    name = "encoder.sentence_encoder.layers.0.fc1.weight"
    assert torch.equal(classifier.state_dict()[name], state[name])
