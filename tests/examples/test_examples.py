"""The shell recipes in examples/: their --dry-run prints commands that our CLIs and fairseq accept."""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
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

    import genemask_plugin.registration  # noqa: F401  (fairseq skips --user-dir once the package is imported)

    assert argv[0] == "fairseq-train" or argv[:3] == ["torchrun", "--nnodes", argv[2]]
    args = argv[argv.index("fairseq_cli.train") + 1 :] if "torchrun" in argv[0] else argv[1:]
    parser = options.get_training_parser()
    return options.parse_args_and_arch(parser, input_args=args)


def parse_own_cli(argv):
    from genemask_plugin.fewshot.cli import build_parser as fewshot_parser
    from genemask_plugin.hf.cli import build_parser as hf_parser
    from genemask_plugin.validation.cli import build_parser as validate_parser
    from genemask_preprocess.corpus.cli import build_parser as preprocess_parser
    from genemask_preprocess.pmi.cli import build_parser as pmi_parser

    parsers = {"genemask-preprocess": preprocess_parser, "genemask-pmi": pmi_parser,
               "genemask-fewshot": fewshot_parser, "genemask-hf": hf_parser, "genemask-validate": validate_parser}
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
    # no nvidia-smi on this PATH, only our interpreter (the recipes build their command with it)
    args = pretrain_human_args({"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}, "--gpus", "2")
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


def test_pretrain_human_checks_the_strategy_against_the_masking_registry():
    from genemask_plugin.masking.strategies import STRATEGIES

    result = subprocess.run(["bash", str(EXAMPLES / "pretrain_human.sh"), "g.fa", "o", "--strategy", "bogus",
                             "--dry-run"], capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == ""  # before any command is printed
    (line,) = result.stderr.splitlines()
    assert "--strategy" in line and "'bogus'" in line and all(f"'{name}'" in line for name in STRATEGIES)


def test_baselines_cover_dnabert_and_bert_settings():
    commands = dry_run("pretrain_baselines.sh", "g.fa", "/tmp/out", "--arch", "genemask_logo", "--dry-run")
    trained = check_commands(commands)
    settings = {(a.mask_strategy, a.max_update, a.lr[0], a.warmup_updates) for a in trained}
    assert settings == {("kmer_span", 10000, 8e-4, 500), ("kmer_span", 120000, 4e-4, 10000),
                        ("random", 10000, 8e-4, 500)}
    assert {a.arch for a in trained} == {"genemask_logo"}


def test_curricula_recipe_runs_the_cm_gems_paper_settings():
    commands = dry_run("pretrain_curricula.sh", "GRCh38.fa.gz", "/tmp/out", "--gpus", "2", "--dry-run")
    assert [c[0] for c in commands].count("genemask-preprocess") == 1
    trained = check_commands(commands)
    runs = {a.mask_strategy: a for a in trained}
    assert set(runs) == {"global_pmi", "cm_gems", "cm_step"}
    for args in trained:  # the paper's schedule, as pretrain_human.sh runs genemask
        assert (args.max_update, args.lr, args.warmup_updates, args.arch) == (10000, [8e-4], 500, "genemask_dnabert_base")
        assert args.pmi_table == "/tmp/out/pmi/pmi.tsv" and args.fp16
    gems = runs["cm_gems"]
    assert gems.cm_gems_threshold == 1.0 and gems.validate_interval_updates == 500
    assert runs["cm_step"].validate_interval_updates == 0
    assert len({a.save_dir for a in trained}) == 3


def test_pretrain_human_passes_curriculum_options():
    commands = dry_run("pretrain_human.sh", "g.fa", "/tmp/out", "--curriculum", "cm_gems", "--cm-gems-threshold",
                       "2.5", "--validate-every", "250", "--skip-data", "--gpus", "1", "--dry-run")
    (args,) = check_commands(commands)
    assert (args.mask_strategy, args.cm_gems_threshold, args.validate_interval_updates) == ("cm_gems", 2.5, 250)
    assert args.save_dir.endswith("genemask_dnabert_base_cm_gems_10000")
    result = subprocess.run(["bash", str(EXAMPLES / "pretrain_human.sh"), "g.fa", "o", "--curriculum", "warm",
                             "--dry-run"], capture_output=True, text=True)
    assert result.returncode == 2 and "--strategy: invalid choice: 'warm'" in result.stderr


def test_quickstart_dry_run():
    commands = dry_run("quickstart.sh", env={"DRY_RUN": "1", "OUT": "/tmp/demo"})
    (args,) = check_commands(commands[:-1])
    assert args.arch == "genemask_tiny" and args.mask_strategy == "genemask"
    assert commands[-3][:2] == ["genemask-fewshot", "grid"]
    # it ends by exporting the pretrained model and predicting a masked k-mer through transformers
    assert commands[-2] == ["genemask-hf", "export", "/tmp/demo/pretrain/checkpoint_last.pt", "/tmp/demo/hf", "--force"]
    assert commands[-1][0] == "python" and commands[-1][1].endswith("examples/hf_fill_mask.py")


def assert_cpu_scale_task_options(trained):
    """Packed blocks, so GeneMask has centres to rank, and sinusoid-started positions (docs/genemask_mlm.md)."""
    assert {(a.sample_break_mode, a.position_init, a.tokens_per_sample) for a in trained} == {
        ("complete", "sinusoidal", 512)}
    assert {a.batch_size for a in trained} == {2}  # 2 packed blocks: about the tokens of 16 single items


def test_cpu_experiment_pretrains_every_strategy_at_equal_compute():
    commands = dry_run("cpu_experiment.sh", "--dry-run")
    trained = check_commands(commands)
    assert sorted(a.mask_strategy for a in trained) == sorted(
        ["genemask", "kmer_span", "random", "genemask_position"])
    assert len({(a.max_update, a.batch_size, a.seed, a.arch, a.lr[0]) for a in trained}) == 1
    assert_cpu_scale_task_options(trained)
    grid = parse_own_cli(commands[-1])
    assert len(grid.checkpoints) == 5 and grid.checkpoints[-1].endswith("=none")


def test_sample_efficiency_scores_each_checkpoint_of_one_schedule():
    commands = dry_run("sample_efficiency.sh", "--dry-run")
    trained = check_commands(commands)
    assert sorted(a.mask_strategy for a in trained) == ["genemask", "kmer_span"]
    assert {(a.max_update, a.save_interval_updates, a.seed) for a in trained} == {(4000, 500, 1)}
    assert_cpu_scale_task_options(trained)
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
        for arg in argv:
            if skip:
                skip = False
            elif arg in ("--mask-strategy", "--seed", "--save-dir"):
                skip = True
            else:
                out.append(arg)
        return out
    assert len({tuple(without_differences(c)) for c in commands if c[0] == "fairseq-train"}) == 1
    assert len({(a.max_update, a.batch_size, a.arch, a.lr[0], a.warmup_updates) for a in trained}) == 1
    assert_cpu_scale_task_options(trained)
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
                       "cm_gems=cm_gems", "--dry-run")
    probe = parse_own_cli(commands[-3])
    assert probe.datasets == ["Prom-core"] and probe.shots == [10, 50] and probe.roots == [REPO / "data" / "fewshot"]
    cm_gems = [c for c in commands if c[0] == "fairseq-train" and "cm_gems" in c]
    assert len(cm_gems) == 1 and cm_gems[0][cm_gems[0].index("--mask-strategy") + 1] == "cm_gems"
    assert "cm_gems@1=" in " ".join(commands[-3])
    result = subprocess.run(["bash", str(EXAMPLES / "settle_experiment.sh"), "--probe-datasets", "Splice-40",
                             "--dry-run"], capture_output=True, text=True)
    assert result.returncode == 2 and "pass --fewshot-root" in result.stderr


def test_random_mask_joins_the_settle_experiment_as_a_variant_with_its_options():
    commands = dry_run("settle_experiment.sh", "--pretrain-seeds", "1", "--strategies", "kmer_span", "--variant",
                       "random_mask=random_mask", "--variant", "rm8=random_mask --mask-boundary 8 --boundary-stages 2",
                       "--only-pretrain", "--dry-run")
    trainings = [c for c in commands if c[0] == "fairseq-train"]
    assert [c[c.index("--mask-strategy") + 1] for c in trainings] == ["kmer_span", "random_mask", "random_mask"]
    assert all(c[c.index("--max-update") + 1] == "1000" for c in trainings)  # the schedule runs over the updates
    assert "--mask-boundary" not in trainings[1]
    rm8 = trainings[2]
    assert rm8[rm8.index("--mask-boundary") + 1] == "8" and rm8[rm8.index("--boundary-stages") + 1] == "2"
    assert rm8[rm8.index("--save-dir") + 1].endswith("pretrain/rm8/seed1")


def test_every_pretraining_goes_through_the_one_builder():
    """The recipes write no fairseq-train arguments: _common.sh's pretrain_args gets them from
    genemask_plugin/pretraining_command.py, and every fairseq-train runs what it built."""
    trainings = []
    for script in EXAMPLES.glob("*.sh"):
        text = "\n".join(line for line in script.read_text().splitlines() if not line.lstrip().startswith("#"))
        assert "--criterion" not in text and "--mask-strategy" not in text, script.name
        trainings += re.findall(r"(?:run(?:_logged \S+)? fairseq-train|-m fairseq_cli\.train) (.*)$", text, re.M)
    assert len(trainings) == 5 and set(trainings) == {'"${PRETRAIN_ARGS[@]}"'}
    # Each one logged: through run_logged, or (the ladder, one log per budget segment) redirected to its log.
    assert "run fairseq-train" not in "".join(p.read_text() for p in EXAMPLES.glob("*.sh") if p.name != "compute_ladder.sh")
    assert 'train_segment >>"$log" 2>&1' in (EXAMPLES / "compute_ladder.sh").read_text()
    assert "-m genemask_plugin.pretraining_command" in (EXAMPLES / "_common.sh").read_text()


@pytest.mark.parametrize("script", ["settle_experiment.sh", "compute_ladder.sh"])
@pytest.mark.parametrize("options, message", [(["--dry-run", "--jobs"], "--jobs needs a value"),
                                              (["--dry-run", "--bogus", "1"], "unknown option --bogus")])
def test_experiment_recipes_refuse_a_bad_shared_option_in_one_line(script, options, message):
    result = subprocess.run(["bash", str(EXAMPLES / script), *options], capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", f"error: {message} (--help lists them)\n"
                                                                   if "bogus" in message else f"error: {message}\n")


def test_reproduce_fewshot_needs_the_full_sets():
    result = subprocess.run(["bash", str(EXAMPLES / "reproduce_fewshot.sh"), "ckpt.pt", "/tmp/out", "--dry-run"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "--fewshot-root DIR is required" in result.stderr


def test_reproduce_fewshot_follows_the_protocol():
    commands = dry_run("reproduce_fewshot.sh", "ckpt.pt", "/tmp/out", "--fewshot-root", "/sets", "--dry-run")
    grids = {tuple(a.datasets): a.shots for a in map(parse_own_cli, commands)}
    assert grids == {("Prom-core",): [10, 50, 100, 500, 1000], ("Prom-300",): [10, 50, 100, 500],
                     ("Cohn-enh",): [10, 50, 100], ("Splice-40",): [10, 50, 100, 500]}


@pytest.mark.parametrize("script", ["pretrain_human.sh", "reproduce_fewshot.sh", "pmi_sharded.sh", "settle_experiment.sh"])
def test_help(script):
    result = subprocess.run(["bash", str(EXAMPLES / script), "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "Usage:" in result.stdout


def _tiny_genome(tmp_path):
    rng = np.random.default_rng(11)
    path = tmp_path / "g.fa"
    path.write_text("".join(f">r{i}\n{''.join(rng.choice(list('ACGT'), size=n))}\n" for i, n in enumerate([900, 2500])))
    return path


def _assert_counts_equal(a, b):
    with np.load(a) as x, np.load(b) as y:
        assert sorted(x.files) == sorted(y.files)
        assert all(x[key].tobytes() == y[key].tobytes() for key in x.files)


def _with_our_bin():
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def test_pmi_sharded_local_dry_run_prints_every_shard_then_the_merge():
    commands = dry_run("pmi_sharded.sh", "/tmp/out", "a.fa", "b.fa.gz", "--shards", "7", "--jobs", "3",
                       "--max-n", "9", "--both-strands", "--dry-run")
    assert [c[0] for c in commands] == ["mkdir", "seq", "genemask-pmi", "genemask-pmi"]
    # the shard numbers are part of the printed line: copied alone, it does not wait on stdin
    seq, xargs = commands[1][:commands[1].index("|")], commands[1][commands[1].index("|") + 1 :]
    assert seq == ["seq", "0", "6"] and xargs[:4] == ["xargs", "-P", "3", "-I{}"]
    shards = [parse_own_cli([a.replace("{}", str(i)) for a in xargs[4:]]) for i in range(7)]
    assert [s.shard for s in shards] == [f"{i}/7" for i in range(7)]
    assert {(tuple(s.genome), s.max_n, s.both_strands, s.workers) for s in shards} == {
        (tuple(shards[0].genome), 9, True, 1)}
    assert [Path(g).name for g in shards[0].genome] == ["a.fa", "b.fa.gz"]
    assert all(Path(g).is_absolute() for g in shards[0].genome)
    merge, score = map(parse_own_cli, commands[2:])
    assert merge.shards == [s.out for s in shards] and score.counts == merge.out and score.k == 6


def test_pmi_sharded_slurm_dry_run_submits_an_array_and_a_dependent_merge(tmp_path):
    """The printed sbatch lines, run as SLURM would run them, give the counts of one plain count."""
    genome = _tiny_genome(tmp_path)
    out = tmp_path / "out"
    commands = dry_run("pmi_sharded.sh", out, genome, "--shards", "3", "--max-n", "7", "--slurm", "--dry-run")
    assert [c[0] for c in commands] == ["mkdir", "sbatch", "sbatch"]
    count, merge = ({a.split("=")[0]: a.split("=", 1)[-1] for a in c[1:] if a.startswith("--")} for c in commands[1:])
    assert count["--array"] == "0-2" and merge["--dependency"] == "afterok:COUNT_JOB_ID"
    count_wrap, merge_wrap = (c[c.index("--wrap") + 1] for c in commands[1:])
    env = _with_our_bin()
    subprocess.run(commands[0], check=True)
    for task in range(3):  # what each array task runs
        subprocess.run(["bash", "-c", count_wrap], check=True, env={**env, "SLURM_ARRAY_TASK_ID": str(task)})
    subprocess.run(["bash", "-c", merge_wrap], check=True, env=env)
    single = tmp_path / "single.npz"
    subprocess.run(["genemask-pmi", "count", str(genome), "--max-n", "7", "--out", str(single), "--quiet"],
                   check=True, env=env)
    _assert_counts_equal(out / "counts.npz", single)
    assert (out / "pmi_k6.tsv").read_text().startswith("ngram")  # the merge job also scores


def test_pmi_sharded_local_run_merges_to_one_count(tmp_path):
    genome = _tiny_genome(tmp_path)
    out = tmp_path / "out"
    env = _with_our_bin()
    result = subprocess.run(["bash", str(EXAMPLES / "pmi_sharded.sh"), str(out), str(genome), "--shards", "4",
                             "--jobs", "2", "--max-n", "6", "--k", "3"], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    single = tmp_path / "single.npz"
    subprocess.run(["genemask-pmi", "count", str(genome), "--max-n", "6", "--out", str(single), "--quiet"],
                   check=True, env=env)
    _assert_counts_equal(out / "counts.npz", single)
    assert sorted(p.name for p in (out / "shards").iterdir()) == [f"shard-{i}.npz" for i in range(4)]
    assert (out / "pmi_k3.tsv").read_text().startswith("ngram")


def test_scripts_are_valid_bash():
    for script in EXAMPLES.glob("*.sh"):
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, (script, result.stderr)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))


def _printed_wraps(stdout: bytes) -> list[bytes]:
    """The --wrap argument of each printed sbatch line, unquoted by bash (the lines are bash's printf %q)."""
    wraps = []
    for line in stdout.splitlines():
        if line.startswith(b"+ sbatch "):
            done = subprocess.run(["bash", "-c", 'eval "set -- $1"; while [ "$1" != --wrap ]; do shift; done; '
                                   'printf %s "$2"', "-", line[2:]], capture_output=True, check=True)
            wraps.append(done.stdout)
    return wraps


def test_pmi_sharded_slurm_wrap_is_read_back_by_dash_under_lc_all_c(tmp_path):
    """sbatch --wrap runs its command with /bin/sh (dash on Debian): a non-ASCII, quoted, spaced path
    under LC_ALL=C reaches genemask-pmi as the same bytes."""
    dash = shutil.which("dash")
    assert dash, "install dash (Debian's /bin/sh) to run this test"
    root = tmp_path / os.fsdecode(b"r\xc3\xa9sultats \xe9 'a b'")
    root.mkdir()
    genome, out = root / "g.fa", root / "out"
    fake = tmp_path / "bin" / "genemask-pmi"  # records its arguments, NUL-separated, one call a line
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nprintf \'%s\\0\' "$@" >> "$ARGV_LOG"\nprintf \'\\n\' >> "$ARGV_LOG"\n')
    fake.chmod(0o755)
    env = {**os.environ, "LC_ALL": "C", "PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}"}
    printed = subprocess.run(["bash", str(EXAMPLES / "pmi_sharded.sh"), out, genome, "--shards", "3", "--max-n", "7",
                              "--slurm", "--dry-run"], capture_output=True, env=env, timeout=60)
    assert printed.returncode == 0, printed.stderr
    count_wrap, merge_wrap = _printed_wraps(printed.stdout)
    log = tmp_path / "argv.log"
    env = {**env, "ARGV_LOG": str(log), "SLURM_ARRAY_TASK_ID": "1"}
    for wrap in (count_wrap, merge_wrap):
        done = subprocess.run([dash, "-c", wrap], env=env, capture_output=True)
        assert done.returncode == 0, done.stderr
    calls = [line.split(b"\0")[:-1] for line in log.read_bytes().splitlines()]
    g, o = os.fsencode(genome), os.fsencode(out)
    assert calls == [
        [b"count", g, b"--max-n", b"7", b"--workers", b"1", b"--quiet", b"--shard", b"1/3", b"--out",
         o + b"/shards/shard-1.npz"],
        [b"merge", *(o + b"/shards/shard-%d.npz" % i for i in range(3)), b"--out", o + b"/counts.npz"],
        [b"score", o + b"/counts.npz", b"--k", b"6", b"--out", o + b"/pmi_k6.tsv"],
    ]
