"""The paper's fine-tuning recipe, one run of it on a prepared folder, and the shell recipe that runs it."""

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest
import torch

from genemask_plugin.checkpoints import ModelShape
from genemask_plugin.fewshot.finetune import (
    PLUGIN_DIR,
    FinetuneError,
    FinetuneRecipe,
    FinetuneRun,
    check_fits,
    cuda_available,
    fairseq_train_args,
    paper_recipe,
    run_finetune,
    schedule,
)
from genemask_plugin.fewshot.prepare import PreparedData

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "examples" / "finetune_fewshot.sh"


def option(args, name):
    return args[args.index(name) + 1]


@pytest.mark.parametrize(
    ("shots", "recipe"),
    [(10, (5, 1e-4, 20)), (50, (5, 1e-4, 20)), (100, (5, 1e-4, 20)),
     (500, (15, 5e-5, 5)), (1000, (15, 5e-5, 5))],
)
def test_paper_recipe_per_regime(shots, recipe):
    r = paper_recipe(shots)
    assert (r.batch_size, r.lr, r.epochs) == recipe
    assert (r.warmup_fraction, r.dropout, r.weight_decay) == (0.1, 0.1, 0.01)
    # the authors' run_finetune.py defaults: AdamW (0.9, 0.999), eps 1e-8, max_grad_norm 1.0, classifier dropout 0.1
    assert (r.adam_betas, r.adam_eps, r.clip_norm, r.pooler_dropout) == ((0.9, 0.999), 1e-8, 1.0, 0.1)


@pytest.mark.parametrize(
    ("n_train", "shots", "epochs", "max_updates", "expected"),
    [
        (20, 10, None, None, (20, 80, 8)),  # Prom-core 10-shot: 4 batches of 5 per epoch
        (21, 10, None, None, (20, 100, 10)),  # a last, smaller batch is still an update
        (300, 10, None, None, (20, 1200, 120)),  # Splice-40 "10": 100 per class x 3
        (1000, 500, None, None, (5, 335, 33)),  # ceil(1000 / 15) = 67 per epoch; int(33.5) = 33, the authors'
        (20, 10, 2, None, (2, 8, 0)),  # int(0.8)
        (20, 10, None, 5, (20, 5, 0)),  # a cap shortens the schedule, warm-up int(0.5) = 0
        (20, 10, None, 500, (20, 80, 8)),  # a cap above the recipe changes nothing
    ],
)
def test_schedule(n_train, shots, epochs, max_updates, expected):
    assert schedule(n_train, paper_recipe(shots), epochs, max_updates) == expected


def test_train_args_from_checkpoint_and_from_scratch():
    pretrained = fairseq_train_args("data", "out", checkpoint="pre.pt", shots=10, seed=3, n_train=20,
                                    num_classes=2, cpu=True)
    assert pretrained[0] == "data"
    assert option(pretrained, "--task") == option(pretrained, "--criterion") == "sentence_prediction"
    assert option(pretrained, "--user-dir") == PLUGIN_DIR and Path(PLUGIN_DIR).is_absolute()
    assert option(pretrained, "--restore-file") == "pre.pt"
    for flag in ("--reset-optimizer", "--reset-dataloader", "--reset-meters", "--disable-validation", "--cpu"):
        assert flag in pretrained
    assert option(pretrained, "--required-batch-size-multiple") == "1"
    assert option(pretrained, "--distributed-world-size") == "1"  # the paper's batch, not x GPUs
    assert option(pretrained, "--init-token") == "0"  # the classification head reads <s>
    assert (option(pretrained, "--batch-size"), option(pretrained, "--lr"), option(pretrained, "--max-epoch")) == ("5", "0.0001", "20")
    assert (option(pretrained, "--warmup-updates"), option(pretrained, "--total-num-update")) == ("8", "80")
    assert (option(pretrained, "--dropout"), option(pretrained, "--weight-decay")) == ("0.1", "0.01")
    assert (option(pretrained, "--adam-betas"), option(pretrained, "--adam-eps")) == ("(0.9,0.999)", "1e-08")
    assert (option(pretrained, "--clip-norm"), option(pretrained, "--pooler-dropout")) == ("1.0", "0.1")
    assert option(pretrained, "--seed") == "3" and option(pretrained, "--num-classes") == "2"

    scratch = fairseq_train_args("data", "out", checkpoint=None, shots=1000, seed=1, n_train=30,
                                 num_classes=3, shape=ModelShape("genemask_logo", 512), extra=["--fp16"])
    assert "--restore-file" not in scratch and "--reset-optimizer" not in scratch and "--cpu" not in scratch
    assert option(scratch, "--arch") == "genemask_logo" and scratch[-1] == "--fp16"
    assert (option(scratch, "--batch-size"), option(scratch, "--lr"), option(scratch, "--max-epoch")) == ("15", "5e-05", "5")


def test_the_authors_optimiser_reaches_fairseq_and_passed_options_override_it():
    from fairseq import options

    def parsed(extra=()):
        arguments = fairseq_train_args("data", "out", checkpoint=None, shots=10, seed=1, n_train=20, num_classes=2,
                                       extra=list(extra))
        return options.parse_args_and_arch(options.get_training_parser(), input_args=arguments)

    authors = parsed()
    assert (eval(authors.adam_betas), authors.adam_eps, authors.clip_norm) == ((0.9, 0.999), 1e-8, 1.0)
    assert (authors.pooler_dropout, authors.dropout, authors.attention_dropout) == (0.1, 0.1, 0.1)
    # the recipe before issue 20, through the pass-through options (finetune -- ..., grid --fairseq-args)
    before = parsed(["--adam-betas", "(0.9,0.98)", "--adam-eps", "1e-6", "--clip-norm", "0", "--pooler-dropout", "0"])
    assert (eval(before.adam_betas), before.adam_eps, before.clip_norm, before.pooler_dropout) == ((0.9, 0.98), 1e-6,
                                                                                                  0.0, 0.0)


def write_meta(directory, rows, labels):
    directory.mkdir(parents=True, exist_ok=True)
    meta = {"dictionary": "d", "k": 6, "labels": labels, "exclude_overlap": False,
            "splits": {"train": {"source": "t", "rows": rows, "per_class": {}, "max_tokens": 66}}}
    (directory / "fewshot.json").write_text(json.dumps(meta))
    return directory


@pytest.mark.parametrize(
    ("model_cfg", "shots", "rows", "labels", "env", "extra"),
    [
        (None, 10, 20, ["0", "1"], {}, []),
        ({"arch": "genemask_logo", "max_positions": 256}, 500, 3000, ["0", "1", "2"], {},
         ["--fp16", "--log-interval", "1"]),
        (None, 1000, 2000, ["0", "1"], {"ARCH": "genemask_logo", "EPOCHS": "2", "MAX_UPDATES": "7"}, []),
    ],
)
def test_shell_recipe_runs_the_python_recipe(tmp_path, model_cfg, shots, rows, labels, env, extra):
    """examples/finetune_fewshot.sh (DRY_RUN=1) prints the command Python builds, options passed through."""
    data = write_meta(tmp_path / "data", rows, labels)
    out = tmp_path / "out"
    checkpoint = "none" if model_cfg is None else str(save_checkpoint(tmp_path / "pre.pt", model_cfg))
    result = subprocess.run(
        ["bash", str(SCRIPT), checkpoint, str(data), str(shots), "7", str(out), *extra],
        env={**os.environ, "DRY_RUN": "1", **env}, capture_output=True, text=True, check=True,
    )
    printed = shlex.split(result.stdout.strip().removeprefix("+ "))
    shape = (ModelShape(env.get("ARCH", "genemask_tiny")) if model_cfg is None
             else ModelShape(model_cfg["arch"], model_cfg["max_positions"]))
    expected = fairseq_train_args(
        data, out, checkpoint=None if model_cfg is None else checkpoint, shots=shots, seed=7,
        n_train=rows, num_classes=len(labels), shape=shape, cpu=not cuda_available(),
        epochs=int(env["EPOCHS"]) if "EPOCHS" in env else None,
        max_updates=int(env["MAX_UPDATES"]) if "MAX_UPDATES" in env else None, extra=extra,
    )
    assert printed == ["fairseq-train", *expected]
    assert not out.exists()


def test_shell_recipe_rejects_unprepared_data(tmp_path):
    result = subprocess.run(["bash", str(SCRIPT), "none", str(tmp_path), "10", "1", str(tmp_path / "o")],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "not a prepared few-shot directory" in result.stderr


def save_checkpoint(path, model_cfg):
    torch.save({"cfg": {"model": model_cfg, "task": {"_name": "genemask_mlm"}}, "model": {}}, path)
    return path


def test_a_run_on_a_prepared_folder_is_the_recipe_with_its_counts(tmp_path):
    """FinetuneRun (what `finetune` and every grid cell run) reads sizes, classes and dev split from the data."""
    data = PreparedData.load(write_meta(tmp_path / "data", 23, ["0", "1", "2"]), check=False)
    shape = ModelShape("genemask_logo", 256, ("--encoder-layers", "1"))
    run = FinetuneRun(data, Path("pre.pt"), shape, shots=50, seed=4, max_updates=9, extra=("--fp16",))
    assert run.train_args(tmp_path / "o") == fairseq_train_args(
        data.out, tmp_path / "o", checkpoint=Path("pre.pt"), shots=50, seed=4, n_train=23, num_classes=3,
        shape=shape, cpu=not cuda_available(), max_updates=9, extra=("--fp16",))
    assert run.updates == 9 and FinetuneRun(data, None, shape, 50, 4).updates == 20 * 5  # 23 rows: 5 batches
    data.splits["valid"] = data.splits["train"]
    selected = run.train_args(tmp_path / "o")
    assert option(selected, "--best-checkpoint-metric") == "mcc" and "--report-mcc" in selected
    data.splits["train"].max_tokens = 256
    with pytest.raises(FinetuneError, match="up to 257 tokens"):
        run.train_args(tmp_path / "o")


def test_failed_training_is_reported_with_its_log(tmp_path):
    args = fairseq_train_args(tmp_path / "no-data", tmp_path / "out", checkpoint=None, shots=10, seed=1,
                              n_train=20, num_classes=2, cpu=True)
    with pytest.raises(FinetuneError, match=r"fairseq-train failed \(exit 1\): .*log: ") as info:
        run_finetune(args, tmp_path / "train.log")
    assert "\n" not in str(info.value)
    assert (tmp_path / "train.log").read_text().startswith("+ fairseq-train ")


def test_recipe_is_frozen():
    with pytest.raises(AttributeError):
        FinetuneRecipe(5, 1e-4, 20).lr = 1.0


def test_sequences_must_fit_the_model_positions():
    check_fits(511, ModelShape(max_positions=512), "d")  # Cohn-enh: 495 6-mers + </s>, and <s>
    with pytest.raises(FinetuneError, match="up to 513 tokens .* do not fit the model's 512 positions"):
        check_fits(512, ModelShape(max_positions=512), "d")


def test_cli_finetune_dry_run_passes_extra_options(tmp_path, capsys):
    from genemask_plugin.fewshot.cli import main

    data = write_meta(tmp_path / "data", 20, ["0", "1"])
    assert main(["finetune", "none", str(data), "--shots", "10", "--out", str(tmp_path / "o"), "--dry-run",
                 "--", "--fp16", "--log-interval", "1"]) == 0
    printed = shlex.split(capsys.readouterr().out.strip().removeprefix("+ "))
    assert printed[-3:] == ["--fp16", "--log-interval", "1"] and option(printed, "--arch") == "genemask_tiny"
    assert not (tmp_path / "o").exists()
    cfg = {"arch": "genemask_tiny", "max_positions": 64}
    checkpoint = save_checkpoint(tmp_path / "p.pt", cfg)
    assert main(["finetune", str(checkpoint), str(data), "--shots", "10", "--out", "o", "--arch", "genemask_logo"]) == 1
    assert "--arch genemask_logo differs from the checkpoint's genemask_tiny" in capsys.readouterr().err
    assert main(["finetune", str(checkpoint), str(data), "--shots", "10", "--out", "o"]) == 1
    assert "do not fit the model's 64 positions" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Continuing a run in --out only with its own settings (issue 21)


@pytest.fixture
def prepared_k3(tmp_path):
    import random

    from genemask_plugin.fewshot.prepare import prepare_fewshot_data
    from genemask_preprocess.formats.fairseq_dictionary import write_kmer_dictionary

    rng = random.Random(0)
    rows = "".join(f"{''.join(rng.choice('ACGT') for _ in range(30))}\t{i % 2}\n" for i in range(8))
    (tmp_path / "train.tsv").write_text("sequence\tlabel\n" + rows)
    write_kmer_dictionary(tmp_path / "dict.txt", 3)
    return prepare_fewshot_data(tmp_path / "train.tsv", tmp_path / "dict.txt", tmp_path / "prep")


def test_an_earlier_run_continues_only_with_the_same_settings(tmp_path, prepared_k3):
    from genemask_plugin.fewshot.finetune import (
        RUN_RECORD,
        earlier_run_conflict,
        run_settings,
        write_run_record,
    )

    out = tmp_path / "ft"
    seed1 = run_settings(FinetuneRun(prepared_k3, None, ModelShape(), shots=10, seed=1))
    seed2 = run_settings(FinetuneRun(prepared_k3, None, ModelShape(), shots=10, seed=2))
    assert earlier_run_conflict(out, seed1) is None  # nothing there yet
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert earlier_run_conflict(out, seed1) is None  # no run there
    (out / "checkpoint_last.pt").write_bytes(b"a run of fairseq-train's own")
    assert earlier_run_conflict(out, seed1) == (
        f"{out} holds checkpoint_last.pt of a run with no record of its settings ({RUN_RECORD}), so it cannot "
        "be continued safely")
    write_run_record(out, seed1)
    assert earlier_run_conflict(out, seed1) is None
    assert earlier_run_conflict(out, seed2) == f"{out} holds a run with --seed 1; this run has --seed 2"
    pretrained = save_checkpoint(tmp_path / "pre.pt", {"arch": "genemask_tiny"})
    from_checkpoint = run_settings(FinetuneRun(prepared_k3, pretrained, ModelShape(), shots=10, seed=1))
    assert earlier_run_conflict(out, from_checkpoint) == (
        f"{out} holds a run with the starting checkpoint none (from scratch); this run has the starting "
        f"checkpoint {pretrained}")
    train_bin = Path(prepared_k3.out) / "input0" / "train.bin"
    train_bin.write_bytes(bytes([train_bin.read_bytes()[0] ^ 1]) + train_bin.read_bytes()[1:])
    assert "holds a run with the prepared data " in earlier_run_conflict(out, run_settings(
        FinetuneRun(prepared_k3, None, ModelShape(), shots=10, seed=1)))  # the same folder, other content
    (out / RUN_RECORD).write_text("{not json")
    assert f"{out / RUN_RECORD} is damaged" in earlier_run_conflict(out, seed1)


def test_another_run_in_out_is_refused_without_force_and_nothing_changes(tmp_path, prepared_k3):
    from genemask_plugin.fewshot.finetune import finetune_into, run_settings, write_run_record

    out = tmp_path / "ft"
    out.mkdir()
    (out / "checkpoint_last.pt").write_bytes(b"seed 1's model")
    write_run_record(out, run_settings(FinetuneRun(prepared_k3, None, ModelShape(), shots=10, seed=1)))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(FinetuneError, match=r"holds a run with --seed 1; this run has --seed 2; pass --force to "
                                            r"replace that run, or choose another --out"):
        finetune_into(FinetuneRun(prepared_k3, None, ModelShape(), shots=10, seed=2), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_failed_run_names_no_log_it_removes(tmp_path):
    args = fairseq_train_args(tmp_path / "no-data", tmp_path / "out", checkpoint=None, shots=10, seed=1,
                              n_train=20, num_classes=2, cpu=True)
    with pytest.raises(FinetuneError, match=r"fairseq-train failed \(exit 1\): ") as info:
        run_finetune(args, tmp_path / "train.log", name_log=False)
    assert "log:" not in str(info.value) and "no-data" in str(info.value)
