"""genemask_plugin/pretraining_command.py: the one pretraining command, as fairseq parses it, and the
arithmetic that fits a run to a node's GPUs."""

import math
import subprocess
import sys

import pytest

from genemask_plugin import pretraining_command as pc
from genemask_plugin.masking.strategies import STRATEGIES, strategy_named

SCRIPT = ["-m", "genemask_plugin.pretraining_command"]  # as examples/_common.sh runs it
RUN = {"arch": "genemask_tiny", "updates": 200, "lr": "8e-4", "warmup": 10, "batch_size": 4}


def parse_train(arguments):
    from fairseq import options

    import genemask_plugin.registration  # noqa: F401  (fairseq skips --user-dir once the package is imported)

    return options.parse_args_and_arch(options.get_training_parser(), input_args=arguments)


def test_the_papers_optimiser_and_schedule_by_default():
    args = parse_train(pc.pretraining_arguments("data", "pmi.tsv", "ckpt", **RUN))
    assert (args.task, args.criterion, args.arch) == ("genemask_mlm", "genemask_mlm", "genemask_tiny")
    assert (args.optimizer, eval(args.adam_betas), args.adam_eps, args.weight_decay) == ("adam", (0.9, 0.98), 1e-6,
                                                                                        0.01)
    # clipping at 1.0: the authors' scripts leave --max_grad_norm at its default, 1.0
    assert (args.clip_norm, args.lr_scheduler, args.lr, args.warmup_updates) == (1.0, "polynomial_decay", [8e-4], 10)
    assert int(args.total_num_update) == args.max_update == 200 and args.end_learning_rate == 0.0
    assert (args.batch_size, args.update_freq, args.seed, args.tokens_per_sample) == (4, [1], 1, 512)
    assert args.no_epoch_checkpoints and (args.data, args.pmi_table, args.save_dir) == ("data", "pmi.tsv", "ckpt")
    assert args.mask_strategy == pc.DEFAULT_STRATEGY
    assert args.user_dir == pc.PLUGIN_DIR


def test_named_settings_reach_fairseq():
    arguments = pc.pretraining_arguments(
        "data", "pmi.tsv", "ckpt", **RUN, strategy=list(STRATEGIES)[-1], update_freq=3, num_workers=2,
        device=["--bf16", "--distributed-world-size", "1"], seed=7, clip_norm=0.0, validate_every=50,
        extra=["--log-format", "simple", "--seed", "9"])
    args = parse_train(arguments)
    assert (args.mask_strategy, args.update_freq, args.num_workers, args.bf16) == (list(STRATEGIES)[-1], [3], 2, True)
    assert (args.clip_norm, args.validate_interval_updates, args.log_format) == (0.0, 50, "simple")
    assert args.seed == 9 and arguments[-4:] == ["--log-format", "simple", "--seed", "9"]  # extras come last


def test_numbers_are_passed_as_written():
    arguments = pc.pretraining_arguments("d", "t", "s", **{**RUN, "lr": 5e-4})
    assert arguments[arguments.index("--lr") + 1] == "0.0005"
    assert arguments[arguments.index("--adam-eps") + 1] == "1e-6"  # not Python's 1e-06
    as_written = pc.pretraining_arguments("d", "t", "s", **RUN)
    assert as_written[as_written.index("--lr") + 1] == "8e-4"


def test_another_lr_scheduler_gets_no_polynomial_decay_horizon():
    arguments = pc.pretraining_arguments("d", "t", "s", **RUN, lr_scheduler="inverse_sqrt")
    assert "--total-num-update" not in arguments
    args = parse_train(arguments)
    assert (args.lr_scheduler, args.warmup_updates, args.max_update) == ("inverse_sqrt", 10, 200)


def test_the_strategy_is_checked_against_the_masking_registry():
    assert "bogus" not in STRATEGIES
    with pytest.raises(ValueError, match="unknown mask strategy 'bogus'; choose from " + ", ".join(STRATEGIES)):
        pc.pretraining_arguments("d", "t", "s", **RUN, strategy="bogus")
    for name in STRATEGIES:
        arguments = pc.pretraining_arguments("d", "t", "s", **RUN, strategy=name)
        assert arguments[arguments.index("--mask-strategy") + 1] == name


@pytest.mark.parametrize("name", [name for name in STRATEGIES if strategy_named(name).candidates])
def test_a_curriculum_is_a_strategy(name):
    args = parse_train(pc.pretraining_arguments("d", "t", "s", **RUN, strategy=name))
    assert args.mask_strategy == name


def test_the_masked_lm_baseline_differs_only_in_task_and_masking():
    ours = vars(parse_train(pc.pretraining_arguments("d", "t", "s", **RUN, num_workers=1, device=["--cpu"])))
    theirs = vars(parse_train(pc.masked_lm_arguments("d", "s", **RUN, num_workers=1, device=["--cpu"])))
    assert (theirs["task"], theirs["criterion"], theirs["sample_break_mode"]) == ("masked_lm", "masked_lm", "complete")
    shared = {"arch", "optimizer", "adam_betas", "adam_eps", "weight_decay", "clip_norm", "lr", "lr_scheduler",
              "warmup_updates", "total_num_update", "max_update", "batch_size", "update_freq", "seed",
              "tokens_per_sample", "save_dir", "num_workers", "cpu", "user_dir", "data"}
    assert {k: theirs[k] for k in shared} == {k: ours[k] for k in shared}


@pytest.mark.parametrize("seqs_per_update, seqs_per_gpu, processes, expected", [
    (1000, 10, 1, (10, 100)), (1000, 10, 2, (10, 50)), (1000, 10, 4, (10, 25)),  # the paper's 4 x 10 x 25
    (1000, 10, 8, (5, 25)), (1000, 10, 3, (5, 67)), (1000, 10, 16, (9, 7)),
    (250, 10, 4, (9, 7)), (240, 12, 4, (12, 5)), (16, 16, 1, (16, 1)),
])
def test_split_update(seqs_per_update, seqs_per_gpu, processes, expected):
    assert pc.split_update(seqs_per_update, seqs_per_gpu, processes) == expected


@pytest.mark.parametrize("seqs_per_gpu", [1, 2, 7, 10, 33])
@pytest.mark.parametrize("processes", [1, 3, 8, 24])
def test_split_update_is_the_closest_count_from_above_with_the_largest_batch(seqs_per_gpu, processes):
    for seqs_per_update in (1, 17, 250, 1000, 4099):
        batch, freq = pc.split_update(seqs_per_update, seqs_per_gpu, processes)
        assert math.ceil(seqs_per_gpu / 2) <= batch <= seqs_per_gpu and batch * processes * freq >= seqs_per_update
        counts = {b: b * processes * math.ceil(seqs_per_update / (b * processes))
                  for b in range(math.ceil(seqs_per_gpu / 2), seqs_per_gpu + 1)}
        best = min(counts.values())
        assert batch * processes * freq == best and batch == max(b for b, n in counts.items() if n == best)
    with pytest.raises(ValueError):
        pc.split_update(0, seqs_per_gpu, processes)


@pytest.mark.parametrize("capability, precision", [
    ("9.0", "bf16"), ("8.0", "bf16"), ("8.6", "bf16"), ("10.0", "bf16"), ("12.1", "bf16"),
    ("7.5", "fp16"), ("6.1", "fp16"), ("", "fp16"), (None, "fp16"), ("N/A", "fp16"),
])
def test_mixed_precision_from_ampere_on(capability, precision):
    assert pc.mixed_precision(capability) == precision


@pytest.mark.parametrize("cores, processes, workers", [(16, 1, 8), (16, 2, 7), (16, 4, 3), (16, 8, 1), (2, 1, 1),
                                                       (64, 2, 8), (1, 1, 1), (8, 0, 7)])
def test_data_workers_share_the_cores(cores, processes, workers):
    assert pc.data_workers(cores, processes) == workers


def test_plan_node_on_gpus_and_on_the_cpu():
    plan = pc.plan_node(gpus=4, nnodes=2, capability="8.0", cores=32, seqs_per_gpu=10, seqs_per_update=1000)
    assert (plan.batch_size, plan.update_freq, plan.num_workers) == (5, 25, 7)
    assert plan.device == ("--bf16", "--distributed-world-size", "8")
    assert plan.notes == ("# compute capability 8.0: --bf16 (force with --precision bf16|fp16)",
                          "# 8 process(es) x 5 sequences x update-freq 25 = 1000 sequences per update (asked: 1000); "
                          "7 data workers per process")
    forced = pc.plan_node(gpus=1, capability="9.0", seqs_per_gpu=10, seqs_per_update=1000, precision="fp16",
                          num_workers=3)
    assert forced.device[0] == "--fp16" and forced.num_workers == 3 and len(forced.notes) == 1
    fp32 = pc.plan_node(gpus=2, capability="9.0", seqs_per_gpu=10, seqs_per_update=1000, precision="fp32")
    assert fp32.device == ("--distributed-world-size", "2")  # the authors' precision: no --fp16/--bf16
    cpu = pc.plan_node(gpus=0, capability="9.0", cores=16, seqs_per_gpu=10, seqs_per_update=1000)
    assert (cpu.device, cpu.batch_size, cpu.update_freq, cpu.num_workers) == (("--cpu",), 10, 100, 8)


def run_script(*args):
    return subprocess.run([sys.executable, "-X", "importtime", *SCRIPT, *args], capture_output=True, text=True)


CLI = ["--data", "d", "--pmi-table", "t", "--save-dir", "s", "--arch", "genemask_tiny", "--updates", "200",
       "--lr", "8e-4", "--warmup", "10"]


def test_the_script_prints_the_arguments_nul_separated_without_importing_torch_or_fairseq():
    result = run_script(*CLI, "--batch-size", "4", "--cpu", "--seed", "3", "--", "--log-format", "simple")
    assert result.returncode == 0, result.stderr
    expected = pc.pretraining_arguments("d", "t", "s", **RUN, device=["--cpu"], seed=3,
                                        extra=["--log-format", "simple"])
    assert result.stdout.split("\0") == [*expected, ""]
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time")}
    assert "genemask_plugin.masking" in imported and not {"torch", "fairseq"} & imported


def test_the_script_plans_the_node_and_says_so_on_stderr():
    result = run_script(*CLI, "--gpus", "8", "--capability", "7.0", "--cores", "16")
    assert result.returncode == 0, result.stderr
    args = parse_train(result.stdout.split("\0")[:-1])
    assert (args.fp16, args.distributed_world_size, args.batch_size, args.update_freq, args.num_workers) == (
        True, 8, 5, [25], 1)
    assert "# 8 process(es) x 5 sequences x update-freq 25 = 1000 sequences per update" in result.stderr


@pytest.mark.parametrize("bad, message", [
    (["--batch-size", "4", "--strategy", "bogus"], "argument --strategy: invalid choice: 'bogus'"),
    (["--batch-size", "4", "--gpus", "1"], "give either --batch-size"),
    ([], "give either --batch-size"),
    (["--gpus", "x"], "--gpus: expected a whole number >= 0, got 'x'"),
    (["--batch-size", "4", "--lr", "fast"], "--lr: expected a number, got 'fast'"),
    (["--batch-size", "4", "--curriculum", "cm_step"], "unrecognized arguments: --curriculum"),
])
def test_the_script_rejects_bad_settings_in_one_line(bad, message):
    result = subprocess.run([sys.executable, *SCRIPT, *CLI, *bad], capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("pretraining_command.py: error: ") and message in line
