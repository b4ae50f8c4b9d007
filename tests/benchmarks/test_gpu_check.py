"""benchmarks/gpu_check.py: every command it would run on the GPU parses (fairseq's parsers and ours), and its
whole path runs on the CPU, so a typo cannot waste the few minutes of a lent GPU."""

import json
import math
import shlex
import subprocess
import sys
import tarfile
from pathlib import Path

import gpu_check_runner
import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"


def dry_run(*args):
    result = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", *args], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return [shlex.split(line[2:]) for line in result.stdout.splitlines() if line.startswith("+ ")]


def parse_fairseq(argv):
    """Parse as fairseq-train / fairseq-validate would: the task's and the arch's options included."""
    from fairseq import options

    import genemask_plugin.registration  # noqa: F401  (fairseq skips --user-dir once the package is imported)

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
    assert {c[0] for c in commands} <= set(gpu_check_runner.MODULES)
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
