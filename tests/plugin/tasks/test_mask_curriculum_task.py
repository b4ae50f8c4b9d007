"""The CM-GEMS mask curricula in the genemask_mlm task: settings, checkpoint state, and end-to-end CPU runs."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fairseq import options, tasks
from test_genemask_mlm_task import BIN, PLUGIN, TABLE, TRAIN_FLAGS, _env, _free_port, write_fasta

from genemask_plugin.data.genemask_mask_dataset import MASK_CANDIDATES
from genemask_plugin.masking.config import MaskingConfig
from genemask_plugin.masking.curricula import (
    BoundarySchedule,
    StepwiseSchedule,
    boundary_stage,
    stepwise_probability,
)
from genemask_plugin.tasks.genemask_mlm import GeneMaskMLMConfig, GeneMaskMLMTask, GeneMaskTaskError
from genemask_preprocess.errors import GeneMaskError


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("curriculum")
    fasta = write_fasta(root / "genome.fa", n_records=10, length=6000, seed=1)
    subprocess.run([str(BIN / "genemask-preprocess"), str(fasta), "--k", "6", "--out", str(root / "data"), "--quiet"],
                   check=True, env=_env())
    return root / "data"


def setup(data, **overrides):
    cfg = GeneMaskMLMConfig(data=str(data), seed=1, **{"pmi_table": str(TABLE), "max_update": 100, **overrides})
    return GeneMaskMLMTask.setup_task(cfg)


# ---------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"mask_strategy": "cm_gems", "pmi_table": None}, "--mask-strategy cm_gems needs --pmi-table"),
     ({"mask_strategy": "cm_step", "pmi_table": None}, "--mask-strategy cm_step needs --pmi-table"),
     ({"mask_curriculum": "cm_step", "pmi_table": None}, "--mask-strategy cm_step needs --pmi-table"),
     ({"mask_strategy": "cm_gems", "cm_gems_threshold": 0.0}, "positive perplexity drop"),
     ({"mask_strategy": "cm_gems", "cm_gems_threshold": -2.0}, "positive perplexity drop"),
     ({"mask_strategy": "cm_step", "max_update": 0}, "--mask-strategy cm_step needs --max-update"),
     ({"mask_strategy": "random_mask", "max_update": 0}, "--mask-strategy random_mask needs --max-update"),
     ({"mask_strategy": "random_mask", "boundary_stages": 8}, "8 boundary stages need a mask boundary of at least 13"),
     ({"mask_strategy": "random_mask", "mask_boundary": 4}, "at least the base span, 6 tokens, got 4"),
     ({"mask_strategy": "random_mask", "boundary_stages": 1}, "boundary stages must be >= 2")],
)
def test_bad_curriculum_settings_are_one_line_task_errors(data, overrides, message):
    with pytest.raises(GeneMaskTaskError, match=message) as caught:
        setup(data, **overrides)
    assert isinstance(caught.value, GeneMaskError) and "\n" not in str(caught.value)


@pytest.mark.parametrize("flag", ["--mask-strategy", "--mask-curriculum"])
def test_cli_flags_build_the_curriculum(data, flag, caplog):
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [
        str(data), "--user-dir", PLUGIN, "--task", "genemask_mlm", "--criterion", "genemask_mlm",
        "--arch", "genemask_tiny", "--pmi-table", str(TABLE), flag, "cm_step", "--max-update", "500",
    ])
    assert args.cm_gems_threshold == 1.0
    with caplog.at_level("WARNING"):
        task = tasks.setup_task(args)
    # The deprecated --mask-curriculum means --mask-strategy, with one warning line.
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    if flag == "--mask-curriculum":
        assert args.mask_curriculum == "cm_step" and args.mask_strategy == "genemask"
        assert warnings == ["--mask-curriculum is deprecated: --mask-curriculum cm_step means --mask-strategy cm_step"]
    else:
        assert args.mask_strategy == "cm_step" and warnings == []
    assert task.masking.strategy == "cm_step" and task.masking.centre_prob == 0.025
    local, global_ = task.masking.candidates()
    assert local.strategy == "kmer_span" and local.centre_prob == 0.025
    assert global_.strategy == "global_pmi" and global_.wide_half_width == 5
    assert isinstance(task.curriculum, StepwiseSchedule) and task.curriculum.max_update == 500
    gems = setup(data, mask_strategy="cm_gems", cm_gems_threshold=2.5)
    assert gems.masking.candidates()[0].strategy == "genemask" and gems.curriculum.threshold == 2.5
    assert gems.curriculum.rule == "change"  # the authors' rule by default
    drop = options.parse_args_and_arch(options.get_training_parser(), [
        str(data), "--user-dir", PLUGIN, "--task", "genemask_mlm", "--criterion", "genemask_mlm",
        "--arch", "genemask_tiny", "--pmi-table", str(TABLE), "--mask-strategy", "cm_gems", "--cm-gems-rule", "drop",
    ])
    assert tasks.setup_task(drop).curriculum.rule == "drop"
    assert setup(data).curriculum is None and "mask_curriculum" not in setup(data).state_dict()


def test_cli_flags_set_random_masks_stages(data):
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [
        str(data), "--user-dir", PLUGIN, "--task", "genemask_mlm", "--criterion", "genemask_mlm",
        "--arch", "genemask_tiny", "--mask-strategy", "random_mask", "--mask-boundary", "9", "--boundary-stages", "3",
        "--max-update", "300",
    ])
    task = tasks.setup_task(args)
    assert isinstance(task.curriculum, BoundarySchedule) and task.curriculum.boundaries == (6, 8, 9)
    assert task.token_scores is None  # RandomMask needs no PMI table
    assert [c.strategy for c in task.masking.candidates()] == ["variable_span"] * 3
    assert task.curriculum.boundary_at(100) == 8


def test_deprecated_curriculum_flag_says_which_strategy_it_replaces(data, caplog):
    with caplog.at_level("WARNING"):
        task = setup(data, mask_strategy="random", mask_curriculum="cm_gems")
    assert task.masking.strategy == "cm_gems"
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["--mask-curriculum is deprecated: --mask-curriculum cm_gems means --mask-strategy cm_gems, "
                        "replacing --mask-strategy random"]


def _train_step_choices(task, batch, updates):
    """Run the task's train step at ``updates`` with a recording criterion; the batches the criterion saw."""
    seen = []

    class Recorder:
        def __call__(self, model, sample):
            seen.append(sample)
            return torch.zeros((), requires_grad=True), 1, {}

    class Model:
        def train(self):
            pass

        def set_num_updates(self, n):
            pass

    class Optimizer:
        def backward(self, loss):
            pass

    for update in updates:
        task.train_step(batch, Model(), Recorder(), Optimizer(), update)
    return seen


def test_train_step_uses_the_candidate_the_rule_picks(data):
    task = setup(data, mask_strategy="cm_step", max_update=100)
    task.load_dataset("train")
    dataset = task.dataset("train")
    batch = dataset.collater([dataset[i] for i in range(6)])
    updates = (0, 30, 70, 100)
    seen = _train_step_choices(task, batch, updates)
    for update, sample in zip(updates, seen, strict=True):
        candidate = task.curriculum.batch_candidate(update, batch["id"].numpy())
        chosen = batch[MASK_CANDIDATES]["masks"][0] if candidate else batch
        assert sample["spans_are_global"] is bool(candidate) and MASK_CANDIDATES not in sample
        assert torch.equal(sample["target"], chosen["target"])
        assert torch.equal(sample["net_input"]["src_tokens"], chosen["net_input"]["src_tokens"])
    assert seen[0]["spans_are_global"] is False and seen[-1]["spans_are_global"] is True


def test_curriculum_state_round_trips_through_the_task_state(data):
    task = setup(data, mask_strategy="cm_gems")
    task.curriculum.observe_validation(100, 50.0)
    task.curriculum.observe_validation(200, 49.5)
    state = task.state_dict()
    assert state["mask_curriculum"]["switch_update"] == 200
    fresh = setup(data, mask_strategy="cm_gems")
    fresh.load_state_dict(state)
    assert fresh.curriculum.switch_update == 200 and fresh.curriculum.valid_history == [(100, 50.0), (200, 49.5)]
    with pytest.raises(GeneMaskTaskError, match="resume with the same strategy"):
        setup(data, mask_strategy="cm_step").load_state_dict(state)


# A checkpoint written before curricula were strategies: its config says --mask-curriculum, and its
# task state holds the curriculum under "mask_curriculum" (both rules wrote every key).
OLD_TASK_STATE = {"mask_curriculum": {"kind": "cm_gems", "num_updates": 230, "switch_update": 200,
                                      "valid_history": [[100, 50.0], [200, 49.5]]}}


@pytest.mark.parametrize("settings", [{"mask_curriculum": "cm_gems"}, {"mask_strategy": "cm_gems"}])
def test_an_old_checkpoint_resumes(data, tmp_path, settings):
    """fairseq-train's resume path: the task reads the old task state from checkpoint_last.pt itself."""
    old = {"model": {}, "cfg": {"task": {"_name": "genemask_mlm", **settings}}, "task_state": OLD_TASK_STATE}
    torch.save(old, tmp_path / "checkpoint_last.pt")
    task = setup(data, save_dir=str(tmp_path), restore_file="checkpoint_last.pt", **settings)
    task.begin_epoch(1, model=None)
    assert task.curriculum.switch_update == 200 and task.curriculum.num_updates == 230
    assert task.curriculum.valid_history == [(100, 50.0), (200, 49.5)]
    assert task.curriculum.describe() == "cm_gems: global_pmi masking since update 200"
    assert task.curriculum.validation_candidate() == 1
    # fairseq-validate's path: the task state is handed to load_state_dict.
    validating = setup(data, **settings)
    validating.load_state_dict(OLD_TASK_STATE)
    assert validating.curriculum.switch_update == 200


def test_a_curriculum_over_three_candidates_is_one_entry(data, monkeypatch):
    """The next curricula (RandomMask) have more than two candidates: the item, batch and train step carry N."""
    from genemask_plugin.masking import strategies
    from genemask_plugin.masking.curricula import MaskCurriculum

    class ByThirds(MaskCurriculum):
        def batch_candidate(self, update, batch_ids):
            return min(2, 3 * update // self.max_update)

        def describe(self):
            return f"{self.name}: by thirds"

    entry = strategies.MaskStrategy(
        name="test_thirds", help="kmer_span, then random, then global_pmi", paper_centre_prob=0.025,
        candidates=(strategies.KMER_SPAN, strategies.RANDOM, strategies.GLOBAL_PMI), curriculum=ByThirds,
    )
    monkeypatch.setitem(strategies.STRATEGIES, entry.name, entry)
    task = setup(data, mask_strategy=entry.name, max_update=90)
    task.load_dataset("train")
    dataset = task.dataset("train")
    batch = dataset.collater([dataset[i] for i in range(4)])
    assert len(batch[MASK_CANDIDATES]["masks"]) == 2
    plain = {}
    for name in ("kmer_span", "random", "global_pmi"):
        plain_task = setup(data, mask_strategy=name)  # the later candidates keep their paper centre probability
        plain_task.load_dataset("train")
        plain[name] = plain_task.dataset("train").collater([plain_task.dataset("train")[i] for i in range(4)])
    seen = _train_step_choices(task, batch, (0, 40, 80))
    for sample, name in zip(seen, ("kmer_span", "random", "global_pmi"), strict=True):
        assert torch.equal(sample["target"], plain[name]["target"]), name
        assert sample["spans_are_global"] is (name == "global_pmi")


def test_random_mask_train_step_uses_the_stage_of_the_update(data):
    task = setup(data, mask_strategy="random_mask", max_update=100)
    assert isinstance(task.curriculum, BoundarySchedule) and task.curriculum.boundaries == (6, 8, 10, 12)
    task.load_dataset("train")
    dataset = task.dataset("train")
    batch = dataset.collater([dataset[i] for i in range(6)])
    assert len(batch[MASK_CANDIDATES]["masks"]) == 3
    updates = (0, 30, 60, 90)
    seen = _train_step_choices(task, batch, updates)
    masks = [batch, *batch[MASK_CANDIDATES]["masks"]]
    for stage, sample in enumerate(seen):
        assert torch.equal(sample["target"], masks[stage]["target"]) and MASK_CANDIDATES not in sample
        assert sample["hidden_bases"] == masks[stage]["hidden_bases"]  # the leak meter of the stage used
    # Stage 1 is DNABERT's masking, item for item; the later stages hide more bases per span.
    plain = setup(data, mask_strategy="kmer_span")
    plain.load_dataset("train")
    plain_batch = plain.dataset("train").collater([plain.dataset("train")[i] for i in range(6)])
    assert torch.equal(plain_batch["target"], batch["target"])
    assert torch.equal(plain_batch["net_input"]["src_tokens"], batch["net_input"]["src_tokens"])
    per_span = [m["hidden_bases"] / m["masked_spans"] for m in masks]
    assert per_span[0] < per_span[-1]


# ---------------------------------------------------------------- end to end


def _train(data, save_dir, record, *extra):
    cmd = [sys.executable, str(Path(__file__).with_name("mask_recording_train.py")), str(record), str(data),
           *TRAIN_FLAGS, "--save-dir", str(save_dir), "--no-epoch-checkpoints", *extra]
    run = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=400)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout + run.stderr


def _records(path):
    """``{(update, id): (masked positions, global, batch ids)}`` of a recorded run."""
    rows = {}
    for line in Path(path).read_text().splitlines():
        row = json.loads(line)
        rows[(row["update"], row["id"])] = (row["masked"], row["global"], tuple(row["batch"]))
    return rows


def _train_inner_global_pct(log):
    return [(int(u), float(g)) for g, u in re.findall(r"global_pct=([\d.]+),.*?num_updates=(\d+)", log)]


@pytest.mark.slow
def test_cm_step_schedule_workers_and_resume(data, tmp_path):
    flags = ["--mask-strategy", "cm_step", "--max-update", "60", "--batch-size", "4", "--update-freq", "2"]
    log = _train(data, tmp_path / "a", tmp_path / "a.jsonl", *flags, "--num-workers", "2",
                 "--save-interval-updates", "30")
    full = _records(tmp_path / "a.jsonl.rank0")
    assert {u for u, _ in full} == set(range(60))

    # Every batch made the choice the pure rule gives for (seed, update, batch ids).
    rule = StepwiseSchedule(MaskingConfig("cm_step"), seed=3, max_update=60)
    batches = {(u, batch): g for (u, _), (_, g, batch) in full.items()}
    assert all(rule.batch_candidate(u, batch) == int(g) for (u, batch), g in batches.items())

    # global_pct rises roughly linearly with the update: each logged interval near the schedule's
    # expected share, and strongly correlated with the update.
    logged = _train_inner_global_pct(log)
    assert [u for u, _ in logged] == [10, 20, 30, 40, 50, 60]
    pcts = [g for _, g in logged]
    assert pcts[0] < 30 and pcts[-1] > 70
    assert np.corrcoef([u for u, _ in logged], pcts)[0, 1] > 0.9
    for u, pct in logged:
        p = np.mean([stepwise_probability(x, 60) for x in range(u - 10, u)])
        assert abs(pct - 100 * p) < 25, (u, pct, p)

    # Resume in the middle (update 30, mid-epoch) with no data-loader workers: the same masks and choices.
    _train(data, tmp_path / "b", tmp_path / "b.jsonl", *flags, "--num-workers", "0",
           "--restore-file", str(tmp_path / "a" / "checkpoint_2_30.pt"))
    resumed = _records(tmp_path / "b.jsonl.rank0")
    assert {u for u, _ in resumed} == set(range(30, 60))
    assert resumed == {key: value for key, value in full.items() if key[0] >= 30}


@pytest.mark.slow
def test_cm_step_choice_is_the_same_rule_on_two_ranks(data, tmp_path):
    """Two CPU ranks (gloo): each rank's batches follow the one rule of (seed, update, batch ids)."""
    port = _free_port()
    procs = []
    for rank in (0, 1):
        cmd = [
            sys.executable, str(Path(__file__).with_name("mask_recording_train.py")), str(tmp_path / "ddp.jsonl"),
            str(data), *TRAIN_FLAGS, "--save-dir", str(tmp_path / "ckpt"), "--no-save", "--mask-strategy", "cm_step",
            "--max-update", "8", "--num-workers", "0", "--distributed-world-size", "2", "--distributed-rank", str(rank),
            "--distributed-init-method", f"tcp://127.0.0.1:{port}", "--distributed-no-spawn",
            "--distributed-backend", "gloo", "--ddp-backend", "legacy_ddp",
        ]
        procs.append(subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=400)[0] for p in procs]
    for p, out in zip(procs, outputs, strict=True):
        assert p.returncode == 0, out[-3000:]
    rule = StepwiseSchedule(MaskingConfig("cm_step"), seed=3, max_update=8)
    choices = []
    for rank in (0, 1):
        records = _records(tmp_path / f"ddp.jsonl.rank{rank}")
        assert {u for u, _ in records} == set(range(8))
        for (update, _), (_, used_global, batch) in records.items():
            assert int(used_global) == rule.batch_candidate(update, batch)
            choices.append(used_global)
    assert any(choices) and not all(choices)


def _valid_ppls(log):
    return [(int(u), float(p)) for p, u in re.findall(r"valid on 'valid' subset \|.*? ppl ([\d.]+) \|.*?num_updates (\d+)", log)]


@pytest.mark.slow
def test_cm_gems_switches_once_and_resumes_switched(data, tmp_path):
    flags = ["--mask-strategy", "cm_gems", "--cm-gems-threshold", "200", "--max-update", "30",
             "--validate-interval-updates", "5", "--save-interval-updates", "5", "--num-workers", "0"]
    log = _train(data, tmp_path / "a", tmp_path / "a.jsonl", *flags)
    ppls = _valid_ppls(log)
    assert len(ppls) >= 6
    # The rule, applied to the logged perplexities, predicts the switch the run logged, and it happened once.
    expected = next(u for (_, prev), (u, ppl) in zip(ppls, ppls[1:], strict=False) if abs(prev - ppl) < 200)
    switches = re.findall(r"global_pmi masking since update (\d+)", log)
    assert switches == [str(expected)], switches
    full = _records(tmp_path / "a.jsonl.rank0")
    regime = {u: g for (u, _), (_, g, _) in full.items()}
    assert all(g == (u >= expected) for u, g in regime.items())  # local before, global after, never back
    assert any(not g for g in regime.values()) and any(regime.values())

    # Resuming from the checkpoint before the switch replays the validation history: same switch, same masks.
    before = max(u for u, _ in ppls if u < expected)
    _train(data, tmp_path / "b", tmp_path / "b.jsonl", *flags, "--max-update", str(expected + 5),
           "--restore-file", str(next((tmp_path / "a").glob(f"checkpoint_*_{before}.pt"))))
    resumed = _records(tmp_path / "b.jsonl.rank0")
    assert resumed and resumed == {k: v for k, v in full.items() if before <= k[0] < expected + 5}

    # Resuming after the switch stays switched, even where the perplexity keeps dropping fast.
    last = tmp_path / "a" / "checkpoint_last.pt"
    log_c = _train(data, tmp_path / "c", tmp_path / "c.jsonl", *flags, "--max-update", "40",
                   "--cm-gems-threshold", "1e-9", "--restore-file", str(last))
    assert f"cm_gems: global_pmi masking since update {expected}" in log_c
    after = _records(tmp_path / "c.jsonl.rank0")
    assert after and all(g for _, g, _ in after.values())

    # fairseq-validate says which regime the checkpoint is in.
    validate = subprocess.run(
        [str(BIN / "fairseq-validate"), str(data), "--user-dir", PLUGIN, "--task", "genemask_mlm",
         "--path", str(last), "--batch-size", "8", "--cpu", "--valid-subset", "valid"],
        env=_env(), capture_output=True, text=True, timeout=120,
    )
    assert validate.returncode == 0, validate.stderr[-3000:]
    assert f"mask curriculum from the checkpoint: cm_gems: global_pmi masking since update {expected}" in (
        validate.stdout + validate.stderr)


def _stage_masks(data, max_update):
    """``(epoch, id, stage) -> masked positions`` as the task's own dataset draws them (seed 3, as TRAIN_FLAGS)."""
    task = GeneMaskMLMTask.setup_task(GeneMaskMLMConfig(data=str(data), seed=3, mask_strategy="random_mask",
                                                         max_update=max_update))
    task.load_dataset("train")
    dataset = task.dataset("train")
    cache = {}

    def masked(epoch, index, stage):
        if (epoch, index) not in cache:
            dataset.set_epoch(epoch)
            item = dataset[index]
            cache[(epoch, index)] = [item["target"], *(c["target"] for c in item[MASK_CANDIDATES])]
        return cache[(epoch, index)][stage].ne(1).nonzero().view(-1).tolist()

    return masked


def _epochs(path):
    return {(row["update"], row["id"]): row["epoch"] for row in map(json.loads, Path(path).read_text().splitlines())}


@pytest.mark.slow
def test_random_mask_stages_workers_and_resume(data, tmp_path):
    """Every training batch uses the stage of its update; 2 data workers, then a mid-epoch resume with none."""
    flags = ["--mask-strategy", "random_mask", "--max-update", "40", "--batch-size", "4", "--update-freq", "2"]
    _train(data, tmp_path / "a", tmp_path / "a.jsonl", *flags, "--num-workers", "2", "--save-interval-updates", "20")
    full = _records(tmp_path / "a.jsonl.rank0")
    assert {u for u, _ in full} == set(range(40))
    epochs = _epochs(tmp_path / "a.jsonl.rank0")
    assert len(set(epochs.values())) >= 2  # the run crosses an epoch: masks change with it
    expected = _stage_masks(data, 40)
    for (update, index), (masked, used_global, _) in full.items():
        assert masked == expected(epochs[(update, index)], index, boundary_stage(update, 40, 4)), (update, index)
        assert not used_global

    _train(data, tmp_path / "b", tmp_path / "b.jsonl", *flags, "--num-workers", "0",
           "--restore-file", str(next((tmp_path / "a").glob("checkpoint_*_20.pt"))))
    resumed = _records(tmp_path / "b.jsonl.rank0")
    assert {u for u, _ in resumed} == set(range(20, 40))
    assert resumed == {key: value for key, value in full.items() if key[0] >= 20}


@pytest.mark.slow
def test_random_mask_stages_are_the_same_on_two_ranks(data, tmp_path):
    """Two CPU ranks (gloo): each rank's batches use the stage of the update, as one rank alone would."""
    port = _free_port()
    procs = []
    for rank in (0, 1):
        cmd = [
            sys.executable, str(Path(__file__).with_name("mask_recording_train.py")), str(tmp_path / "ddp.jsonl"),
            str(data), *TRAIN_FLAGS, "--save-dir", str(tmp_path / "ckpt"), "--no-save", "--mask-strategy",
            "random_mask", "--max-update", "8", "--num-workers", "0", "--distributed-world-size", "2",
            "--distributed-rank", str(rank), "--distributed-init-method", f"tcp://127.0.0.1:{port}",
            "--distributed-no-spawn", "--distributed-backend", "gloo", "--ddp-backend", "legacy_ddp",
        ]
        procs.append(subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=400)[0] for p in procs]
    for p, out in zip(procs, outputs, strict=True):
        assert p.returncode == 0, out[-3000:]
    expected = _stage_masks(data, 8)
    ids = []
    for rank in (0, 1):
        records = _records(tmp_path / f"ddp.jsonl.rank{rank}")
        epochs = _epochs(tmp_path / f"ddp.jsonl.rank{rank}")
        assert {u for u, _ in records} == set(range(8))
        for (update, index), (masked, _, _) in records.items():
            assert masked == expected(epochs[(update, index)], index, boundary_stage(update, 8, 4))
        ids.append({(epochs[key], key[1]) for key in records})
    assert not ids[0] & ids[1]  # the ranks trained on different items
