"""The shell recipes in examples/: their --dry-run prints commands that our CLIs and fairseq accept."""

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def dry_run(script, *args, env=None):
    """The commands a recipe prints with --dry-run, each as an argv list."""
    result = subprocess.run(
        ["bash", str(EXAMPLES / script), *map(str, args)],
        capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [shlex.split(line[2:]) for line in result.stdout.splitlines() if line.startswith("+ ")]


def parse_fairseq_train(argv):
    """Parse a fairseq-train command line exactly as fairseq-train would (task and arch options included)."""
    from fairseq import options

    assert argv[0] == "fairseq-train" or argv[:3] == ["torchrun", "--nnodes", argv[2]]
    args = argv[argv.index("fairseq_cli.train") + 1 :] if "torchrun" in argv[0] else argv[1:]
    parser = options.get_training_parser()
    return options.parse_args_and_arch(parser, input_args=args)


def parse_own_cli(argv):
    from genemask_plugin.fewshot.cli import build_parser as fewshot_parser
    from genemask_preprocess.corpus.cli import build_parser as preprocess_parser
    from genemask_preprocess.pmi.cli import build_parser as pmi_parser

    parsers = {"genemask-preprocess": preprocess_parser, "genemask-pmi": pmi_parser,
               "genemask-fewshot": fewshot_parser}
    return parsers[argv[0]]().parse_args(argv[1:])


def check_commands(commands):
    """Every printed command is ours or fairseq's, and parses; returns the parsed fairseq-train args."""
    trained = []
    for argv in commands:
        if argv[0] in ("fairseq-train", "torchrun"):
            trained.append(parse_fairseq_train(argv))
        else:
            parse_own_cli(argv)
    return trained


def test_pretrain_human_uses_the_paper_hyperparameters():
    commands = dry_run("pretrain_human.sh", "GRCh38.fa.gz", "/tmp/out", "--gpus", "2", "--dry-run")
    assert [c[0] for c in commands] == ["genemask-preprocess", "genemask-pmi", "genemask-pmi", "fairseq-train"]
    (args,) = check_commands(commands)
    assert args.task == "genemask_mlm" and args.arch == "genemask_dnabert_base"
    assert args.mask_strategy == "genemask"
    assert (args.max_update, args.lr, args.warmup_updates) == (10000, [8e-4], 500)
    assert args.batch_size * 2 * args.update_freq[0] == 1000  # the paper's 1 000 sequences per update
    assert eval(args.adam_betas) == (0.9, 0.98) and args.adam_eps == 1e-6


def fake_gpu_node(tmp_path, capabilities, cores=16):
    """A PATH on which nvidia-smi reports GPUs of these compute capabilities and nproc reports CORES."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    caps = " ".join(capabilities)
    (bin_dir / "nvidia-smi").write_text(
        "#!/bin/sh\n"
        f'case "$*" in *compute_cap*) for c in {caps}; do echo "$c"; done ;;\n'
        f'  *-L*) i=0; for c in {caps}; do echo "GPU $i: Fake (UUID: GPU-$i)"; i=$((i+1)); done ;; esac\n'
    )
    (bin_dir / "nproc").write_text(f"#!/bin/sh\necho {cores}\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "CUDA_VISIBLE_DEVICES": ""}


def pretrain_human_args(env, *options):
    commands = dry_run("pretrain_human.sh", "g.fa", "/tmp/out", "--skip-data", *options, "--dry-run", env=env)
    (args,) = check_commands(commands)
    return args


@pytest.mark.parametrize("capabilities, flag", [
    (["9.0"], "bf16"), (["8.0", "8.0"], "bf16"), (["7.5"], "fp16"), (["6.1"] * 4, "fp16"),
    (["9.0", "7.0"], "fp16"),  # the weakest GPU decides
])
def test_pretrain_human_picks_bf16_from_ampere_on(tmp_path, capabilities, flag):
    args = pretrain_human_args(fake_gpu_node(tmp_path, capabilities))
    assert (args.bf16, args.fp16) == (flag == "bf16", flag == "fp16")
    assert not args.cpu and args.distributed_world_size == len(capabilities)


@pytest.mark.parametrize("option, capability, flag", [
    (["--precision", "fp16"], "9.0", "fp16"), (["--fp16"], "8.6", "fp16"),
    (["--precision", "bf16"], "7.5", "bf16"), (["--bf16"], "7.0", "bf16"),
])
def test_pretrain_human_precision_can_be_forced(tmp_path, option, capability, flag):
    args = pretrain_human_args(fake_gpu_node(tmp_path, [capability]), *option)
    assert (args.bf16, args.fp16) == (flag == "bf16", flag == "fp16")


def test_pretrain_human_without_a_known_capability_uses_fp16():
    args = pretrain_human_args({"PATH": "/usr/bin:/bin"}, "--gpus", "2")
    assert args.fp16 and not args.bf16


@pytest.mark.parametrize("gpus", [1, 2, 4, 8])
def test_pretrain_human_gives_the_papers_1000_sequences_on_any_gpu_count(tmp_path, gpus):
    args = pretrain_human_args(fake_gpu_node(tmp_path, ["8.0"] * gpus))
    assert args.distributed_world_size == gpus
    assert gpus * args.batch_size * args.update_freq[0] == 1000
    assert args.batch_size >= 5  # never a wastefully small per-GPU batch


def test_pretrain_human_sequences_per_update_is_an_option():
    args = pretrain_human_args({}, "--gpus", "4", "--seqs-per-update", "250")
    # 4 GPUs cannot hold exactly 250 with 5..10 per GPU: the nearest count above, 9 x 4 x 7 = 252
    assert (args.batch_size, args.update_freq) == (9, [7])
    args = pretrain_human_args({}, "--gpus", "4", "--seqs-per-update", "240", "--seqs-per-gpu", "12")
    assert (args.batch_size, args.update_freq) == (12, [5])


@pytest.mark.parametrize("gpus, cores, workers", [(1, 16, 8), (2, 16, 7), (4, 16, 3), (8, 16, 1), (1, 2, 1)])
def test_pretrain_human_sets_data_workers_from_the_cores(tmp_path, gpus, cores, workers):
    args = pretrain_human_args(fake_gpu_node(tmp_path, ["9.0"] * gpus, cores=cores))
    assert args.num_workers == workers
    forced = pretrain_human_args(fake_gpu_node(tmp_path, ["9.0"] * gpus, cores=cores), "--num-workers", "3")
    assert forced.num_workers == 3


def test_pretrain_human_data_only_stops_before_training():
    commands = dry_run("pretrain_human.sh", "g.fa", "/tmp/out", "--data-only", "--dry-run")
    assert [c[0] for c in commands] == ["genemask-preprocess", "genemask-pmi", "genemask-pmi"]
    check_commands(commands)


def test_pretrain_human_multinode_goes_through_torchrun():
    commands = dry_run("pretrain_human.sh", "g.fa", "/tmp/out", "--gpus", "8", "--nnodes", "2",
                       "--node-rank", "1", "--master", "host1:29500", "--skip-data", "--dry-run")
    (argv,) = commands
    assert argv[:2] == ["torchrun", "--nnodes"] and "--node_rank" in argv
    (args,) = check_commands(commands)
    # 16 GPUs cannot hold exactly 1 000: the nearest count above, 9 x 16 x 7 = 1 008
    assert args.distributed_world_size == 16 and (args.batch_size, args.update_freq) == (9, [7])


def test_pretrain_human_rejects_unknown_strategy():
    result = subprocess.run(["bash", str(EXAMPLES / "pretrain_human.sh"), "g.fa", "o", "--strategy", "bogus",
                             "--dry-run"], capture_output=True, text=True)
    assert result.returncode == 2 and "unknown --strategy" in result.stderr


def test_baselines_cover_dnabert_and_bert_settings():
    commands = dry_run("pretrain_baselines.sh", "g.fa", "/tmp/out", "--arch", "genemask_logo", "--dry-run")
    trained = check_commands(commands)
    settings = {(a.mask_strategy, a.max_update, a.lr[0], a.warmup_updates) for a in trained}
    assert settings == {("kmer_span", 10000, 8e-4, 500), ("kmer_span", 120000, 4e-4, 10000),
                        ("random", 10000, 8e-4, 500)}
    assert {a.arch for a in trained} == {"genemask_logo"}


def test_quickstart_dry_run():
    commands = dry_run("quickstart.sh", env={"DRY_RUN": "1", "OUT": "/tmp/demo"})
    (args,) = check_commands(commands)
    assert args.arch == "genemask_tiny" and args.mask_strategy == "genemask"
    assert commands[-1][:2] == ["genemask-fewshot", "grid"]


def test_cpu_experiment_pretrains_every_strategy_at_equal_compute():
    commands = dry_run("cpu_experiment.sh", "--dry-run")
    trained = check_commands(commands)
    assert sorted(a.mask_strategy for a in trained) == sorted(
        ["genemask", "kmer_span", "random", "genemask_position"])
    assert len({(a.max_update, a.batch_size, a.seed, a.arch, a.lr[0]) for a in trained}) == 1
    grid = parse_own_cli(commands[-1])
    assert len(grid.checkpoints) == 5 and grid.checkpoints[-1].endswith("=none")


def test_sample_efficiency_scores_each_checkpoint_of_one_schedule():
    commands = dry_run("sample_efficiency.sh", "--dry-run")
    trained = check_commands(commands)
    assert sorted(a.mask_strategy for a in trained) == ["genemask", "kmer_span"]
    assert {(a.max_update, a.save_interval_updates, a.seed) for a in trained} == {(4000, 500, 1)}
    labels = [spec.split("=")[0] for spec in parse_own_cli(commands[-1]).checkpoints]
    assert labels == [f"{s}@{n}" for s in ("genemask", "kmer_span") for n in (500, 1000, 2000, 4000)]


def test_cpu_experiment_defaults_to_the_bundled_fewshot_data():
    grid = parse_own_cli(dry_run("cpu_experiment.sh", "--dry-run")[-1])
    assert grid.datasets == ["Prom-core"] and grid.roots == [REPO / "data" / "fewshot"]
    full = parse_own_cli(dry_run("cpu_experiment.sh", "--fewshot-root", "/sets", "--dry-run")[-1])
    assert full.datasets == ["Prom-core", "Prom-300", "Cohn-enh", "Splice-40"] and full.roots == [Path("/sets")]
    result = subprocess.run(["bash", str(EXAMPLES / "cpu_experiment.sh"), "--datasets", "Prom-300", "--dry-run"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "pass --fewshot-root" in result.stderr


def test_every_pretraining_goes_through_the_one_shared_command():
    """The genemask_mlm command is written once (examples/_common.sh: pretrain_args)."""
    for script in EXAMPLES.glob("*.sh"):
        assert script.read_text().count("--criterion genemask_mlm") == (script.name == "_common.sh"), script.name


def test_reproduce_fewshot_needs_the_full_sets():
    result = subprocess.run(["bash", str(EXAMPLES / "reproduce_fewshot.sh"), "ckpt.pt", "/tmp/out", "--dry-run"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "--fewshot-root DIR is required" in result.stderr


def test_reproduce_fewshot_follows_the_protocol():
    commands = dry_run("reproduce_fewshot.sh", "ckpt.pt", "/tmp/out", "--fewshot-root", "/sets", "--dry-run")
    grids = {tuple(a.datasets): a.shots for a in map(parse_own_cli, commands)}
    assert grids == {("Prom-core",): [10, 50, 100, 500, 1000], ("Prom-300",): [10, 50, 100, 500],
                     ("Cohn-enh",): [10, 50, 100], ("Splice-40",): [10, 50, 100, 500]}


@pytest.mark.parametrize("script", ["pretrain_human.sh", "reproduce_fewshot.sh"])
def test_help(script):
    result = subprocess.run(["bash", str(EXAMPLES / script), "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "Usage:" in result.stdout


def test_scripts_are_valid_bash():
    for script in EXAMPLES.glob("*.sh"):
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, (script, result.stderr)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
