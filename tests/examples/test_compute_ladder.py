"""examples/compute_ladder.sh (--dry-run) and examples/compute_ladder_report.py (on made-up results)."""

import csv
import functools
import importlib.util
import subprocess
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from test_examples import EXAMPLES, REPO, dry_run, parse_fairseq_train, parse_own_cli

from genemask_plugin.fewshot.cell_record import CellRecord, write_cell_record
from genemask_plugin.validation.cli import build_parser as validate_parser

BUDGETS = [500, 1000, 2000, 4000, 8000]
VARYING = ("--mask-strategy", "--seed", "--save-dir", "--max-update")


@functools.cache
def ladder(*options):
    """The printed commands, and each fairseq-train command with its parsed arguments (one dry run per options)."""
    commands = dry_run("compute_ladder.sh", *options, "--dry-run")
    trainings = [(c, parse_fairseq_train(c)) for c in commands if c[0] == "fairseq-train"]
    return commands, trainings


def without(argv, flags):
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in flags:
            skip = True
        else:
            out.append(arg)
    return out


def test_runs_differ_only_in_strategy_and_seed_and_train_budget_by_budget():
    commands, trainings = ladder("--fewshot-root", "/sets")
    runs = defaultdict(list)
    for argv, args in trainings:
        runs[(args.mask_strategy, args.seed)].append((argv, args))
    assert set(runs) == {(s, seed) for s in ("genemask", "kmer_span", "random") for seed in range(1, 6)}
    # Equal compute: every command is the same but for the strategy, the seed, the run's folder and the budget.
    assert len({tuple(without(argv, VARYING)) for argv, _ in trainings}) == 1
    for (strategy, seed), segments in runs.items():
        assert [args.max_update for _, args in segments] == BUDGETS  # one run, resumed budget by budget
        assert {args.save_dir for _, args in segments} == {str(REPO / "work/compute_ladder/pretrain" / strategy /
                                                              f"seed{seed}")}
    args = trainings[0][1]
    assert (args.arch, args.batch_size, args.lr, args.warmup_updates) == ("genemask_tiny", 2, [2e-3], 500)
    assert args.lr_scheduler == "inverse_sqrt"  # no decay to 0: intermediate checkpoints are not schedule artefacts
    assert (args.sample_break_mode, args.position_init, args.position_init_scale) == ("complete", "sinusoidal", 0.3)
    assert args.save_interval_updates == 500 and args.keep_interval_updates == 1 and args.no_epoch_checkpoints


def test_budget_checkpoints_line_up_with_the_segments_and_every_evaluation():
    commands, _ = ladder("--fewshot-root", "/sets")
    kept = {}
    for i, argv in enumerate(commands):
        if argv[0] == "fairseq-train":
            args = parse_fairseq_train(argv)
            save = Path(args.save_dir)
            # right after the segment: checkpoint_last.pt copied aside, then renamed into place (atomic)
            assert commands[i + 1] == ["cp", str(save / "checkpoint_last.pt"),
                                       str(save / f"checkpoint_at_{args.max_update}.pt.tmp")]
            assert commands[i + 2] == ["mv", str(save / f"checkpoint_at_{args.max_update}.pt.tmp"),
                                       str(save / f"checkpoint_at_{args.max_update}.pt")]
            kept[(args.mask_strategy, args.seed, args.max_update)] = str(save / f"checkpoint_at_{args.max_update}.pt")
    (validate,) = [c for c in commands if c[0] == "genemask-validate"]
    parsed = validate_parser().parse_args(validate[1:])
    assert parsed.masks == ["random", "kmer_span"] and parsed.sample_break_mode == "complete"
    assert sorted(str(path) for _, path in parsed.checkpoints) == sorted(kept.values())
    assert {label for label, _ in parsed.checkpoints} == {f"{s}@{seed}" for s, seed, _ in kept}
    grids = [parse_own_cli(c) for c in commands if c[:2] == ["genemask-fewshot", "grid"]]
    probes = [g for g in grids if g.method == "probe"]
    assert [g.out.name for g in probes] == ["probe"] * 5
    assert [g.out.parent.name for g in probes] == [f"updates_{b}" for b in BUDGETS]
    for grid, budget in zip(probes, BUDGETS, strict=True):
        labels = dict(spec.split("=", 1) for spec in grid.checkpoints)
        assert labels.pop("no pretraining") == "none"
        assert labels == {f"{s}@{seed}": kept[(s, seed, budget)] for s, seed, b in kept if b == budget}
        assert grid.datasets == ["Prom-core", "Prom-300", "Cohn-enh"] and grid.shots == [10, 50, 100]
        assert grid.draw == "per-class"
    (finetune,) = [g for g in grids if g.method == "finetune"]  # at the largest budget only
    assert finetune.out.parent.name == "updates_8000" and finetune.checkpoints == probes[-1].checkpoints
    assert finetune.datasets == ["Prom-core", "Splice-40"] and finetune.shots == [10, 50] and finetune.seeds == [1, 2, 3]
    stats = [parse_own_cli(c) for c in commands if c[:2] == ["genemask-fewshot", "stats"]]
    assert [(s.results.name, s.out.name, s.reference) for s in stats] == [
        (f"updates_{b}", f"updates_{b}", "genemask") for b in BUDGETS]
    report = commands[-1]
    assert report[1].endswith("examples/compute_ladder_report.py") and report[2:] == [
        str(REPO / "docs/results/compute_ladder"), "--reference", "genemask", "--baseline", "kmer_span"]
    logs = [c for c in commands if c[0] == "cp" and "/logs/" in c[-1]]
    assert len(logs) == 15 * 5 and all(c[1].endswith(".log") for c in logs)  # logs, never checkpoints


def test_options_budgets_strategies_variants_and_bundled_data():
    commands, trainings = ladder("--budgets", "300 100", "--pretrain-seeds", "2", "--strategies",
                                 "genemask kmer_span random cm_step global_pmi", "--variant",
                                 "wide7=genemask --wide-half-width 7", "--batch-size", "3", "--lr", "1e-3",
                                 "--lr-scheduler", "fixed", "--position-init-scale", "0.1")
    labels = {(args.mask_strategy, args.save_dir.split("/")[-2]) for _, args in trainings}
    assert labels == {("genemask", "genemask"), ("kmer_span", "kmer_span"), ("random", "random"),
                      ("cm_step", "cm_step"), ("global_pmi", "global_pmi"), ("genemask", "wide7")}
    assert {args.max_update for _, args in trainings} == {100, 300}
    wide = [args for _, args in trainings if args.save_dir.endswith("wide7/seed2")]
    assert {a.wide_half_width for a in wide} == {7}
    assert {(a.batch_size, a.lr[0], a.lr_scheduler, a.position_init_scale) for _, a in trainings} == {
        (3, 1e-3, "fixed", 0.1)}
    probe = parse_own_cli(next(c for c in commands if "probe" in c))
    assert probe.datasets == ["Prom-core"] and probe.shots == [10, 50] and probe.roots == [REPO / "data" / "fewshot"]


def test_another_tokenization_builds_its_corpus_and_token_pmi_and_compares_the_named_pair():
    """Issue 22's sanity run: single nucleotides, random against pmi_span, through the same recipe."""
    commands, trainings = ladder("--k", "1", "--strategies", "random", "--variant", "pmi_span=pmi_span",
                                 "--reference", "pmi_span", "--baseline", "random", "--budgets", "500",
                                 "--pretrain-seeds", "1 2", "--skip-finetune")
    preprocess = next(c for c in commands if c[0] == "genemask-preprocess")
    assert preprocess[preprocess.index("--k") + 1] == "1" and "--stride" not in preprocess
    count = next(c for c in commands if c[:2] == ["genemask-pmi", "count"])
    assert count[2:4] == ["--tokens", preprocess[preprocess.index("--out") + 1]]
    assert {a.pmi_table for _, a in trainings} == {count[count.index("--out") + 1].replace("token_counts.npz", "pmi_tokens.tsv")}
    assert sorted((a.mask_strategy, a.seed) for _, a in trainings) == [
        ("pmi_span", 1), ("pmi_span", 2), ("random", 1), ("random", 2)]
    stats = next(c for c in commands if c[:2] == ["genemask-fewshot", "stats"])
    assert stats[stats.index("--reference") + 1] == "pmi_span"
    assert not any(c[-1].endswith("compute_ladder_report.py") or "compute_ladder_report.py" in " ".join(c)
                   for c in commands)  # one budget: no trend to fit


@pytest.mark.parametrize("options, message", [
    (["--strategies", "genemask random"], "must include genemask and kmer_span"),
    (["--strategies", "random", "--reference", "pmi_span", "--baseline", "random"], "must include pmi_span and random"),
    (["--budgets", "500 x"], "--budgets must be positive"),
    (["--probe-datasets", "Cohn-enh"], "pass --fewshot-root"),
])
def test_bad_options_stop_before_any_command(options, message):
    result = subprocess.run(["bash", str(EXAMPLES / "compute_ladder.sh"), *options, "--dry-run"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and message in result.stderr and result.stdout == ""


def test_help():
    result = subprocess.run(["bash", str(EXAMPLES / "compute_ladder.sh"), "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "Usage:" in result.stdout


# ---------------------------------------------------------------- the report, on made-up results


def _report_module():
    spec = importlib.util.spec_from_file_location("compute_ladder_report", EXAMPLES / "compute_ladder_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _made_up_ladder(out, slopes, shift=0.0, loss_offset=0.0):
    """Probe cells per budget: genemask - kmer_span = shift + slope_s * log2(budget / 500) for seed s."""
    for budget in BUDGETS:
        for seed, slope in enumerate(slopes, 1):
            effect = shift + slope * np.log2(budget / 500)
            for label, accuracy in ((f"genemask@{seed}", 0.6 + effect), (f"kmer_span@{seed}", 0.6),
                                    (f"random@{seed}", 0.62)):
                for dataset in ("Prom-core", "Prom-300"):
                    record = CellRecord(
                        checkpoint=label, dataset=dataset, shots=10, seed=1,
                        metrics={"accuracy": accuracy, "macro_f1": accuracy, "mcc": 0.1, "auroc": 0.6},
                        train_per_class={"0": 10, "1": 10}, n_train=20, n_test=100, excluded_overlap=0,
                        predicted_per_class={}, seconds=1.0, settings={}, method="probe", draw="per-class")
                    write_cell_record(out / f"updates_{budget}" / "probe" / "cells" / label.replace("@", "_") / dataset
                                      / "10" / "seed1" / "metrics.json", record)
    with open(out / "losses.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["checkpoint", "trained_strategy", "trained_seed", "updates", "masks", "loss_bits",
                         "floor_bits"])
        for budget in BUDGETS:
            for seed in range(1, len(slopes) + 1):
                for strategy in ("genemask", "kmer_span"):
                    for masks, base in (("random", 11.0), ("kmer_span", 11.5)):
                        loss = base - np.log2(budget / 500) * 0.5 - 0.01 * seed + loss_offset
                        writer.writerow([f"{strategy}@{seed}", strategy, seed, budget, masks, loss, 11.77])


def test_report_applies_the_rule_and_draws_both_plots(tmp_path, capsys):
    _made_up_ladder(tmp_path, slopes=[0.010, 0.012, 0.008, 0.011, 0.009])
    assert _report_module().main([str(tmp_path)]) == 0
    decision = (tmp_path / "decision.md").read_text()
    assert "**emerges with compute**" in decision and "t-interval above 0" in decision
    rows = list(csv.DictReader((tmp_path / "trend.csv").open()))
    assert [r["updates"] for r in rows] == [*map(str, BUDGETS), "slope per log2(updates)"]
    assert float(rows[-1]["mean"]) == pytest.approx(0.010, abs=1e-9)
    assert float(rows[-1]["seed2"]) == pytest.approx(0.012, abs=1e-9)
    assert float(rows[-2]["mean"]) == pytest.approx(4 * 0.010, abs=1e-9)  # 8000 = 500 x 2^4
    for name in ("effects_by_budget.png", "losses.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "unigram floor 11.770" in decision and "the highest 2.800 bits below the floor: every strategy" in decision
    assert "emerges with compute" in capsys.readouterr().out


def test_report_says_so_when_the_effect_does_not_emerge(tmp_path):
    _made_up_ladder(tmp_path, slopes=[0.010, -0.006, 0.012, 0.001, -0.004], loss_offset=3.5)
    assert _report_module().main([str(tmp_path)]) == 0
    decision = (tmp_path / "decision.md").read_text()
    assert "does not emerge with compute" in decision
    assert "the highest 0.700 bits above the floor: not every strategy" in decision  # models at the floor
    assert "**not a finding about the strategies**" in decision


def test_report_gives_no_finding_when_the_slope_rule_holds_but_the_models_did_not_learn(tmp_path):
    _made_up_ladder(tmp_path, slopes=[0.010, 0.012, 0.008, 0.011, 0.009], loss_offset=1.85)
    assert _report_module().main([str(tmp_path)]) == 0
    decision = (tmp_path / "decision.md").read_text()
    assert "**emerges with compute**" not in decision
    assert "emerges with compute by the slope rule" in decision and "**not a finding about the strategies**" in decision
    assert "the highest 0.950 bits below the floor: not every strategy" in decision


def test_report_needs_the_ladders_folders(tmp_path, capsys):
    assert _report_module().main([str(tmp_path)]) == 1
    assert "no updates_N folders" in capsys.readouterr().err
