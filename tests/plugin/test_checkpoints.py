"""Reading fairseq checkpoints (genemask_plugin.checkpoints): state, config fields, task state, model shape."""

import argparse
from pathlib import Path

import pytest
import torch

from genemask_plugin.checkpoints import (
    CheckpointError,
    ModelShape,
    architecture_options,
    load_checkpoint_state,
    model_config,
    read_model_shape,
    read_task_state,
    task_name,
    training_data,
)
from genemask_preprocess.errors import InputError


def save_checkpoint(path, model_cfg, task_cfg=None, **extra):
    torch.save({"cfg": {"model": model_cfg, "task": task_cfg or {"_name": "genemask_mlm"}}, "model": {}, **extra},
               path)
    return path


def test_config_sections_of_new_and_old_checkpoints(tmp_path):
    new = load_checkpoint_state(save_checkpoint(
        tmp_path / "new.pt", {"arch": "genemask_tiny"}, {"_name": "sentence_prediction", "data": "/d/prep"}))
    assert model_config(new) == {"arch": "genemask_tiny"} and task_name(new) == "sentence_prediction"
    assert training_data(new) == Path("/d/prep")
    args = argparse.Namespace(arch="roberta_base", task="masked_lm", data="/a:/b")  # fairseq < 0.10: flat args
    torch.save({"args": args, "model": {}}, tmp_path / "old.pt")
    old = load_checkpoint_state(tmp_path / "old.pt")
    assert model_config(old).arch == "roberta_base" and task_name(old) == "masked_lm"
    assert training_data(old) == Path("/a")  # the first of fairseq's colon-separated data folders


def test_not_a_checkpoint_is_a_one_line_input_error(tmp_path):
    cases = {
        "missing.pt": "checkpoint not found",
        "junk.pt": "cannot read checkpoint",
        "list.pt": "is not a fairseq checkpoint: it holds list",
        "weights.pt": "is not a fairseq checkpoint: it holds a dict without a model and its config",
        ".": "is a directory",
    }
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    torch.save([1, 2], tmp_path / "list.pt")
    torch.save({"model": {}}, tmp_path / "weights.pt")
    for name, message in cases.items():
        with pytest.raises(CheckpointError, match=message) as info:
            load_checkpoint_state(tmp_path / name)
        assert isinstance(info.value, InputError) and "\n" not in str(info.value)


def test_task_state_is_read_without_the_rest(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", {"arch": "genemask_tiny"},
                           task_state={"mask_curriculum": {"kind": "cm_step", "num_updates": 3}})
    assert read_task_state(path) == {"mask_curriculum": {"kind": "cm_step", "num_updates": 3}}
    assert read_task_state(save_checkpoint(tmp_path / "d.pt", {"arch": "genemask_tiny"})) == {}


def test_architecture_options_fill_in_the_registered_defaults():
    tiny = architecture_options("genemask_tiny")
    assert (tiny.encoder_layers, tiny.encoder_embed_dim, tiny.max_positions) == (2, 64, 512)
    wider = architecture_options("genemask_tiny", encoder_embed_dim=32)
    assert wider.encoder_embed_dim == 32 and wider.encoder_layers == 2
    with pytest.raises(CheckpointError, match="unknown architecture 'no_such_arch'"):
        architecture_options("no_such_arch")


def test_model_shape_copies_what_the_checkpoint_changed(tmp_path):
    cfg = argparse.Namespace(arch="roberta_base", _name="roberta", encoder_layers=1, encoder_embed_dim=32,
                             encoder_ffn_embed_dim=3072, encoder_attention_heads=2, max_positions=128,
                             activation_fn="relu", pooler_activation_fn="tanh",
                             encoder_normalize_before=True, layernorm_embedding=True,
                             untie_weights_roberta=False)
    shape = read_model_shape(save_checkpoint(tmp_path / "a.pt", cfg))
    assert shape.arch == "roberta_base" and shape.max_positions == 128
    assert list(shape.options) == ["--encoder-layers", "1", "--encoder-embed-dim", "32",
                                   "--encoder-attention-heads", "2", "--activation-fn", "relu",
                                   "--encoder-normalize-before"]


def test_model_shape_of_a_named_architecture_needs_no_options(tmp_path):
    cfg = {"_name": "genemask_tiny", "arch": "genemask_tiny", "encoder_layers": 2, "encoder_embed_dim": 64,
           "encoder_ffn_embed_dim": 128, "encoder_attention_heads": 2, "max_positions": 512}
    assert read_model_shape(save_checkpoint(tmp_path / "b.pt", cfg)) == ModelShape("genemask_tiny", 512, ())


def test_model_shape_errors(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        read_model_shape(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="unknown architecture 'no_such_arch'"):
        read_model_shape(save_checkpoint(tmp_path / "c.pt", {"arch": "no_such_arch"}))
    with pytest.raises(CheckpointError, match="has no model architecture"):
        read_model_shape(save_checkpoint(tmp_path / "d.pt", {"encoder_layers": 2}))
