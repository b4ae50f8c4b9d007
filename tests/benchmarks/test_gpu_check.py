"""benchmarks/gpu_check.py: every command it would run on the GPU parses (fairseq's parsers and ours), its log
reading is right, and its whole path runs on the CPU, so a typo cannot waste the few minutes of a lent GPU."""

import importlib.util
import json
import math
import shlex
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"


def load_gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


gpu_check = load_gpu_check()


def dry_run(*args):
    result = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", *args], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return [shlex.split(line[2:]) for line in result.stdout.splitlines() if line.startswith("+ ")]


def parse_fairseq(argv):
    """Parse as fairseq-train / fairseq-validate would: the task's and the arch's options included."""
    from fairseq import options

    parser = {"fairseq-train": options.get_training_parser,
              "fairseq-validate": options.get_validation_parser}[argv[0]]()
    return options.parse_args_and_arch(parser, input_args=argv[1:])


def parse_ours(argv):
    from genemask_plugin.fewshot.cli import build_parser as fewshot_parser
    from genemask_preprocess.corpus.cli import build_parser as preprocess_parser
    from genemask_preprocess.pmi.cli import build_parser as pmi_parser

    parsers = {"genemask-preprocess": preprocess_parser, "genemask-pmi": pmi_parser,
               "genemask-fewshot": fewshot_parser}
    return parsers[argv[0]]().parse_args(argv[1:])


@pytest.fixture(scope="module")
def gpu_commands():
    commands = dry_run("--work-dir", "/tmp/w")
    parsed = [parse_fairseq(c) if c[0].startswith("fairseq-") else parse_ours(c) for c in commands]
    return commands, parsed


def test_every_command_is_a_known_program(gpu_commands):
    commands, _ = gpu_commands
    assert {c[0] for c in commands} <= set(gpu_check.MODULES)
    assert [c[0] for c in commands] == (["genemask-preprocess", "genemask-pmi", "genemask-pmi"]
                                        + ["fairseq-train"] * 5 + ["fairseq-validate"] + ["genemask-fewshot"] * 3)


def test_pretraining_runs_cover_bf16_fp16_masked_lm_and_logo(gpu_commands):
    _, parsed = gpu_commands
    runs = parsed[3:7]
    assert [(a.arch, a.task, a.bf16, a.fp16) for a in runs] == [
        ("genemask_dnabert_base", "genemask_mlm", True, False),
        ("genemask_dnabert_base", "genemask_mlm", False, True),
        ("genemask_dnabert_base", "masked_lm", True, False),
        ("genemask_logo", "genemask_mlm", True, False),
    ]
    for a in runs:
        assert (a.max_update, a.batch_size, a.tokens_per_sample) == (150, 32, 512)
        assert not a.cpu and a.num_workers >= 1 and a.disable_validation
        assert eval(a.adam_betas) == (0.9, 0.98) and a.adam_eps == 1e-6  # the recipes' optimiser
    assert runs[2].sample_break_mode == "complete" and runs[2].criterion == "masked_lm"
    assert runs[0].mask_strategy == "genemask" and runs[0].criterion == "genemask_mlm"
    assert [a.no_save for a in runs] == [False, True, True, True]  # only the bf16 run keeps a checkpoint


def test_resume_validate_and_fewshot_use_the_bf16_checkpoint(gpu_commands):
    commands, parsed = gpu_commands
    bf16, resume, validate = parsed[3], parsed[7], parsed[8]
    assert resume.save_dir == bf16.save_dir and resume.max_update == 150 + 20
    assert (resume.bf16, resume.arch, resume.no_save) == (True, "genemask_dnabert_base", False)
    checkpoint = str(Path(bf16.save_dir) / "checkpoint_last.pt")
    assert validate.path == checkpoint and validate.task == "genemask_mlm" and validate.valid_subset == "valid"
    prepare, finetune, evaluate = parsed[9:12]
    assert prepare.command == "prepare" and finetune.command == "finetune" and evaluate.command == "evaluate"
    assert finetune.checkpoint == checkpoint and finetune.shots == 10 and finetune.max_updates is None
    assert prepare.dictionary == Path(bf16.data) / "dict.txt"
    assert finetune.data == prepare.out == evaluate.data
    assert evaluate.checkpoint == finetune.out / "checkpoint_last.pt"
    for path in (prepare.train, prepare.test, Path(commands[0][1])):
        assert path.is_file(), path  # bundled data, nothing downloaded


def test_data_commands_build_full_length_blocks(gpu_commands):
    _, parsed = gpu_commands
    preprocess, count, score = parsed[:3]
    assert preprocess.full_chunk_probability == 1 and preprocess.k == 6 and preprocess.reverse_complement
    assert count.max_n >= 6 and score.k == 6
    assert Path(score.out) == Path(parsed[3].pmi_table)


def test_cpu_dry_run_uses_the_tiny_model_on_the_cpu():
    commands = dry_run("--cpu", "--work-dir", "/tmp/w")
    trained = [parse_fairseq(c) for c in commands if c[0] == "fairseq-train"]
    assert [(a.arch, a.task) for a in trained] == [("genemask_tiny", "genemask_mlm"), ("genemask_tiny", "masked_lm"),
                                                   ("genemask_tiny", "genemask_mlm")]  # the last resumes
    assert all(a.cpu for a in trained)
    assert not any(a.bf16 or a.fp16 for a in trained)


def test_updates_must_fit_the_log_interval():
    result = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--updates", "15"], capture_output=True,
                            text=True)
    assert result.returncode == 2 and "--updates must be a multiple of 10" in result.stderr


def inner_line(update, loss, wps=50000.0, wpb=16256.0, bsz=32.0, gb_free=120.5):
    return (f"2026-11-30 12:00:00 | INFO | train_inner | epoch 001:     {update} / 40 loss={loss}, ppl=1, "
            f"wps={wps}, ups=3.1, wpb={wpb}, bsz={bsz}, num_updates={update}, lr=0.0005, gnorm=1.2, "
            f"loss_scale=None, train_wall=3, gb_free={gb_free}, wall=10")


def test_training_stats_read_fairseq_lines():
    log = "\n".join([inner_line(10, 8.2, wps=1000.0, gb_free=100.0), inner_line(20, 7.5, wps=40000.0),
                     inner_line(30, 7.0, wps=50000.0, gb_free=110.0), inner_line(40, 6.9, wps=60000.0)])
    stats = gpu_check.training_stats("run", log, updates=40, log_interval=10)
    assert (stats["loss_first"], stats["loss_last"]) == (8.2, 6.9)
    assert stats["words_per_s"] == 50000.0  # median after the first (warm-up) interval
    assert math.isclose(stats["sequences_per_s"], 50000.0 / 16256.0 * 32)
    assert stats["tokens_per_sequence"] == 508 and stats["min_gb_free"] == 100.0


@pytest.mark.parametrize("losses, message", [
    ([8.0, float("nan")], "non-finite loss"), ([8.0, float("inf")], "non-finite loss"),
    ([7.0, 7.5], "did not decrease"), ([8.0, 7.0], "not 30"),
])
def test_training_stats_fail_on_a_bad_loss(losses, message):
    log = "\n".join(inner_line(10 * (i + 1), loss) for i, loss in enumerate(losses))
    with pytest.raises(gpu_check.CheckFailed, match=message):
        gpu_check.training_stats("run", log, updates=10 * len(losses) + (10 if message == "not 30" else 0),
                                 log_interval=10)


def test_resume_and_validation_lines():
    line = ("2026-11-30 | INFO | fairseq.trainer | Loaded checkpoint /w/checkpoint_last.pt "
            "(epoch 5 @ 150 updates)")
    assert gpu_check.resumed_from(line) == 150
    assert gpu_check.resumed_from("No existing checkpoint found /w/checkpoint_last.pt") is None
    valid = "2026-11-30 | INFO | valid | valid on 'valid' subset | loss 6.512 | ppl 91.2 | wps 1 | wpb 2"
    assert gpu_check.validation_loss(valid) == 6.512
    with pytest.raises(gpu_check.CheckFailed):
        gpu_check.validation_loss("nothing here")


def test_extrapolation_of_the_papers_run():
    # 10 000 updates x 1 000 sequences x 380 tokens at 1 000 000 words/s = 3 800 s
    assert math.isclose(gpu_check.hours_for_paper_run(1_000_000), 3800 / 3600)


@pytest.mark.slow
def test_the_whole_check_runs_on_the_cpu(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    result = subprocess.run([sys.executable, str(SCRIPT), "--cpu", "--out", str(out),
                             "--work-dir", str(work), "--budget-s", "1500"],
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    report = json.loads((out / "summary.json").read_text())
    assert report["status"] == "passed"
    assert list(report["pretrain"]) == ["tiny", "tiny_masked_lm"] and report["resume"]["from_update"] == 20
    assert report["resume"]["to_update"] == 20 + 10
    assert math.isfinite(report["validate"]["loss"]) and 0 <= report["fewshot"]["metrics"]["accuracy"] <= 1
    assert set(report["extrapolated_hours"]) == set()  # tiny has no paper run to extrapolate
    # what comes back from the device: a few files, one folder deep
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.log", "logs.tar.gz", "summary.json", "summary.md"]
    with tarfile.open(out / "logs.tar.gz") as tar:
        names = tar.getnames()
    assert "logs/tiny.log" in names and "logs/resume.log" in names and "logs/fewshot_evaluate.log" in names
    assert "# GPU check: passed" in (out / "summary.md").read_text()


def gpu_run(arch, task, precision, words_per_s):
    return {"arch": arch, "task": task, "precision": precision, "loss_first": 12.0, "loss_last": 11.2,
            "words_per_s": words_per_s, "sequences_per_s": words_per_s / 508, "tokens_per_sequence": 508.0,
            "min_gb_free": 120.0, "peak_allocated_gb": 19.5, "peak_nvidia_smi_gb": 22.1, "wall_s": 40.0}


def test_the_summary_of_a_gpu_run(tmp_path):
    """The table a GPU run ends with, from a report of its shape (formatting bugs would cost the device time)."""
    report = {
        "status": "passed", "total_s": 300.0,
        "settings": {"updates": 150, "batch_size": 32, "num_workers": 8, "cpu": False, "lr": 5e-4},
        "environment": {"python": "3.12.3", "cores": 16, "install_s": {"fairseq_and_plugin": 20.0},
                        "torch": "2.11.0", "cuda": "13.0", "fairseq": "0.12.3", "gpu": "NVIDIA H200",
                        "capability": "9.0", "gpu_memory_gb": 139.8, "gpus": 1},
        "pretrain": {"dnabert_bf16": gpu_run("genemask_dnabert_base", "genemask_mlm", "bf16", 400_000.0),
                     "dnabert_fp16": gpu_run("genemask_dnabert_base", "genemask_mlm", "fp16", 320_000.0),
                     "dnabert_masked_lm_bf16": gpu_run("genemask_dnabert_base", "masked_lm", "bf16", 380_000.0),
                     "logo_bf16": gpu_run("genemask_logo", "genemask_mlm", "bf16", 2_000_000.0)},
        "resume": {"from_update": 150, "to_update": 170, "loss": 11.1, "wall_s": 30.0},
        "validate": {"loss": 11.0, "wall_s": 10.0},
        "fewshot": {"metrics": {"accuracy": 0.61, "macro_f1": 0.6, "mcc": 0.2, "auroc": None, "n": 5920},
                    "prepare_s": 2.0, "finetune_s": 30.0, "evaluate_s": 5.0},
    }
    text = gpu_check.summary_markdown(report)
    assert "# GPU check: passed" in text and "NVIDIA H200" in text
    assert "genemask_mlm / masked_lm (same arch and precision): **1.05**" in text
    assert "bf16 / fp16: **1.25**" in text
    assert "| genemask_dnabert_base | 400000 | 2.6 | 60 h |" in text  # 3.8e9 tokens / 400 000 words/s
    assert "| genemask_logo | 2000000 | 0.5 | 20 h |" in text
    assert "accuracy 0.610" in text and "auroc" not in text  # None metrics are left out
    out, logs = tmp_path / "out", tmp_path / "work" / "logs"
    out.mkdir()
    logs.mkdir(parents=True)
    (logs / "dnabert_bf16.log").write_text("log\n")
    settings = gpu_check.Settings(out=out, work=tmp_path / "work", updates=150, batch_size=32, workers=8,
                                  cpu=False, log_interval=10, lr=5e-4, finetune_max_updates=None)
    gpu_check.finish(settings, report, say=lambda text: None)
    saved = json.loads((out / "summary.json").read_text())
    assert saved["extrapolated_hours"] == {"genemask_dnabert_base": 2.64, "genemask_logo": 0.53}
    assert (out / "summary.md").read_text() == text
