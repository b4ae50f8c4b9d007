"""``--position-init sinusoidal``: the learned position table of a fresh model starts as a scaled sinusoid."""

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fairseq import options, tasks

from genemask_plugin.checkpoints import load_checkpoint_state
from genemask_plugin.models.position_init import init_positions_sinusoidal, sinusoid_table
from genemask_preprocess.formats.fairseq_dictionary import write_kmer_dictionary

REPO = Path(__file__).resolve().parents[3]
POSITIONS = "encoder.sentence_encoder.embed_positions.weight"
PAD = 1


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_kmer_dictionary(root / "dict.txt", 6)
    return root


def build(data, *flags, seed=7, from_checkpoint=False):
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [
        str(data), "--user-dir", "genemask_plugin", "--task", "genemask_mlm", "--arch", "genemask_tiny",
        "--mask-strategy", "kmer_span", "--seed", str(seed), *flags])
    task = tasks.setup_task(args)
    torch.manual_seed(seed)  # as fairseq-train seeds before building the model
    return task.build_model(args, from_checkpoint=from_checkpoint)


def test_the_table_is_the_transformer_encoding():
    table = sinusoid_table(50, 6).numpy()
    for t in range(50):
        for i in range(3):
            angle = t / 10000 ** (2 * i / 6)
            assert table[t, 2 * i] == pytest.approx(math.sin(angle), abs=1e-6)
            assert table[t, 2 * i + 1] == pytest.approx(math.cos(angle), abs=1e-6)
    assert sinusoid_table(4, 5).shape == (4, 5)  # an odd width ends with a sine column


def test_the_task_starts_a_fresh_model_from_the_scaled_sinusoid(data):
    plain = build(data).state_dict()
    model = build(data, "--position-init", "sinusoidal")
    state = model.state_dict()
    positions = state[POSITIONS]
    assert positions.shape == (514, 64)  # 512 positions after fairseq's offset of padding_idx + 1
    torch.testing.assert_close(positions[PAD + 1 :], 0.3 * sinusoid_table(512, 64), rtol=0, atol=1e-7)
    # <s> (sample position 0) is row padding_idx + 1: sin 0 = 0 and cos 0 = 1, times the scale.
    assert positions[PAD + 1, :4].tolist() == pytest.approx([0.0, 0.3, 0.0, 0.3])
    # The rows below (never looked up for a token) and every other weight: what the seed alone gives.
    assert torch.equal(positions[: PAD + 1], plain[POSITIONS][: PAD + 1]) and not positions[PAD].any()
    assert all(torch.equal(value, plain[name]) for name, value in state.items() if name != POSITIONS)
    scaled = build(data, "--position-init", "sinusoidal", "--position-init-scale", "0.1").state_dict()[POSITIONS]
    torch.testing.assert_close(scaled[PAD + 1 :], positions[PAD + 1 :] / 3, rtol=1e-6, atol=1e-7)


def test_it_is_deterministic_and_the_same_for_every_strategy(data):
    """Pairing: runs of one seed start from the same weights whatever their masking."""
    first = build(data, "--position-init", "sinusoidal").state_dict()
    for strategy in ("random", "kmer_span"):
        other = build(data, "--position-init", "sinusoidal", "--mask-strategy", strategy).state_dict()
        assert all(torch.equal(first[name], other[name]) for name in first)
    assert not torch.equal(build(data, "--position-init", "sinusoidal", seed=8).state_dict()[POSITIONS][:PAD],
                           first[POSITIONS][:PAD])


def test_a_model_built_to_load_a_checkpoint_is_left_alone(data):
    """fairseq builds with from_checkpoint=True before loading a checkpoint's weights (hub, fine-tuning)."""
    loaded = build(data, "--position-init", "sinusoidal", from_checkpoint=True).state_dict()[POSITIONS]
    assert torch.equal(loaded, build(data).state_dict()[POSITIONS])


def test_a_model_without_learned_positions_is_refused(data):
    model = build(data)
    model.encoder.sentence_encoder.embed_positions = torch.nn.Identity()
    with pytest.raises(ValueError, match="learned position embeddings"):
        init_positions_sinusoidal(model)
    with pytest.raises(ValueError, match="scale must be > 0"):
        init_positions_sinusoidal(build(data), 0.0)


def _train(data, save_dir, *flags):
    table = REPO / "data" / "pmi" / "human_fragments.pmi.tsv"
    cmd = [sys.executable, "-m", "fairseq_cli.train", str(data), "--user-dir", str(REPO / "genemask_plugin"),
           "--task", "genemask_mlm", "--criterion", "genemask_mlm", "--arch", "genemask_tiny",
           "--pmi-table", str(table), "--optimizer", "adam", "--lr", "1e-4", "--batch-size", "4", "--cpu",
           "--num-workers", "0", "--seed", "3", "--no-epoch-checkpoints", "--save-dir", str(save_dir), *flags]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    return load_checkpoint_state(save_dir / "checkpoint_last.pt")["model"][POSITIONS].clone()


@pytest.mark.slow
def test_resume_and_restore_file_keep_the_checkpoints_positions(tmp_path):
    genome = tmp_path / "g.fa"
    rng = np.random.default_rng(0)
    genome.write_text("".join(f">r{i}\n{''.join(rng.choice(list('ACGT'), size=400))}\n" for i in range(60)))
    subprocess.run([str(Path(sys.executable).parent / "genemask-preprocess"), str(genome), "--k", "6", "--out",
                    str(tmp_path / "data"), "--quiet"], check=True)
    data = tmp_path / "data"
    first = _train(data, tmp_path / "a", "--max-update", "2")  # random positions
    sinusoid = 0.3 * sinusoid_table(512, 64)
    assert (first[PAD + 1 :] - sinusoid).abs().max() > 0.1
    resumed = _train(data, tmp_path / "a", "--max-update", "4", "--position-init", "sinusoidal")
    restored = _train(data, tmp_path / "b", "--max-update", "2", "--position-init", "sinusoidal",
                      "--restore-file", str(tmp_path / "a" / "checkpoint_last.pt"), "--reset-optimizer",
                      "--reset-dataloader", "--reset-meters", "--reset-lr-scheduler")
    for positions in (resumed, restored):  # two small Adam steps away from the checkpoint's, not the sinusoid
        assert (positions - first).abs().max() < 2e-3
    fresh = _train(data, tmp_path / "c", "--max-update", "1", "--position-init", "sinusoidal")
    assert (fresh[PAD + 1 :] - sinusoid).abs().max() < 2e-3
