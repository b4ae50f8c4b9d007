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
    assert args.batch_size * 2 * args.update_freq[0] >= 250  # 250 sequences per update over the GPUs
    assert args.fp16 and eval(args.adam_betas) == (0.9, 0.98) and args.adam_eps == 1e-6


def test_pretrain_human_multinode_goes_through_torchrun():
    commands = dry_run("pretrain_human.sh", "g.fa", "/tmp/out", "--gpus", "8", "--nnodes", "2",
                       "--node-rank", "1", "--master", "host1:29500", "--skip-data", "--dry-run")
    (argv,) = commands
    assert argv[:2] == ["torchrun", "--nnodes"] and "--node_rank" in argv
    (args,) = check_commands(commands)
    assert args.distributed_world_size == 16 and args.update_freq == [2]


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


def test_settle_experiment_pretrains_every_strategy_and_seed_at_equal_compute():
    commands = dry_run("settle_experiment.sh", "--fewshot-root", "/sets", "--dry-run")
    trained = check_commands(commands)
    strategies = ["genemask", "kmer_span", "random", "genemask_position"]
    assert sorted((a.mask_strategy, a.seed) for a in trained) == sorted(
        (s, seed) for s in strategies for seed in range(1, 6))
    # equal compute: the commands differ only in --mask-strategy, --seed and the save dir
    def without_differences(argv):
        out, skip = [], False
        for i, arg in enumerate(argv):
            if skip:
                skip = False
            elif arg in ("--mask-strategy", "--save-dir") or (arg == "--seed" and i > argv.index("--seed")):
                skip = True
            else:
                out.append(arg)
        return out
    assert len({tuple(without_differences(c)) for c in commands if c[0] == "fairseq-train"}) == 1
    assert len({(a.max_update, a.batch_size, a.arch, a.lr[0], a.warmup_updates) for a in trained}) == 1
    probe, finetune, stats = (parse_own_cli(c) for c in commands[-3:])
    assert (probe.method, probe.draw, finetune.method, finetune.draw) == ("probe", "per-class", "finetune",
                                                                          "per-class")
    assert probe.datasets == ["Prom-core", "Prom-300", "Cohn-enh", "Splice-40"] and probe.shots == [10, 50, 100]
    assert finetune.datasets == ["Prom-core", "Splice-40"] and finetune.shots == [10, 50]
    assert len(probe.seeds) >= 3 and len(finetune.seeds) == 3
    labels = [spec.split("=")[0] for spec in probe.checkpoints]
    assert labels == [f"{s}@{seed}" for seed in range(1, 6) for s in strategies] + ["no pretraining"]
    assert probe.checkpoints == finetune.checkpoints and stats.command == "stats" and stats.reference == "genemask"


def test_settle_experiment_defaults_to_bundled_data_and_takes_more_variants():
    commands = dry_run("settle_experiment.sh", "--pretrain-seeds", "1", "--variant",
                       "cm_gems=genemask --mask-curriculum cm_gems", "--dry-run")
    probe = parse_own_cli(commands[-3])
    assert probe.datasets == ["Prom-core"] and probe.shots == [10, 50] and probe.roots == [REPO / "data" / "fewshot"]
    cm_gems = [c for c in commands if c[0] == "fairseq-train" and "cm_gems" in c]
    assert len(cm_gems) == 1 and cm_gems[0][cm_gems[0].index("--mask-strategy") + 1] == "genemask"
    assert "cm_gems@1=" in " ".join(commands[-3])
    result = subprocess.run(["bash", str(EXAMPLES / "settle_experiment.sh"), "--probe-datasets", "Splice-40",
                             "--dry-run"], capture_output=True, text=True)
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


@pytest.mark.parametrize("script", ["pretrain_human.sh", "reproduce_fewshot.sh", "settle_experiment.sh"])
def test_help(script):
    result = subprocess.run(["bash", str(EXAMPLES / script), "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "Usage:" in result.stdout


def test_scripts_are_valid_bash():
    for script in EXAMPLES.glob("*.sh"):
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, (script, result.stderr)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
