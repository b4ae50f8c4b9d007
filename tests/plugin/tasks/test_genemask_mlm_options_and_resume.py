"""The genemask_mlm task's option ranges, and what it says when a run resumes from a checkpoint trained otherwise."""

import dataclasses
import logging
import math
import shutil
import typing

import numpy as np
import pytest
import torch
from fairseq import options
from test_genemask_mlm_task import PLUGIN, TABLE, corpus, setup_task  # noqa: F401  (corpus: a fixture)

from genemask_plugin.checkpoints import UNTRAINED_LM_HEAD
from genemask_plugin.tasks.genemask_mlm import (
    MASKING_STATE,
    PMI_TABLE_STATE,
    GeneMaskMLMConfig,
    GeneMaskMLMTask,
    GeneMaskTaskError,
)


def numeric_options() -> list[tuple[str, type]]:
    """Every int or float option of the task (fairseq's own, interpolated here, excluded)."""
    out = []
    for f in dataclasses.fields(GeneMaskMLMConfig):
        kinds = set(typing.get_args(f.type)) - {type(None)} or {f.type}
        if isinstance(f.default, str) and f.default.startswith("${"):
            continue
        if kinds & {int, float}:
            out.append((f.name, float if float in kinds else int))
    return out


def bad_values(kind) -> list:
    return [-1, -0.5, math.nan, math.inf, -math.inf] if kind is float else [-1, -(10**6)]


@pytest.mark.parametrize(("name", "kind"), numeric_options())
def test_every_numeric_option_is_range_checked(corpus, name, kind):  # noqa: F811
    """No option takes a negative number or NaN: each such value is one line naming the problem."""
    assert {"tokens_per_sample", "centre_prob", "wide_half_width", "cm_gems_threshold"} <= {n for n, _ in numeric_options()}
    for value in bad_values(kind):
        with pytest.raises(GeneMaskTaskError) as caught:
            setup_task(corpus, mask_strategy="kmer_span", **{name: value})
        assert "\n" not in str(caught.value), (name, value)


@pytest.mark.parametrize(("setting", "message"), [
    ({"tokens_per_sample": 0}, r"--tokens-per-sample must be in 3\.\.1048576 .* got 0"),
    ({"tokens_per_sample": 2}, r"--tokens-per-sample must be in 3\.\..* got 2"),
    ({"tokens_per_sample": 10**20}, r"--tokens-per-sample must be in .* got 100000000000000000000"),
    ({"wide_half_width": 10**9}, r"--wide-half-width 1000000000 is wider than a sample \(--tokens-per-sample 512\)"),
    ({"centre_prob": 2.0}, r"centre probability must be in \(0, 1\], got 2.0"),
    ({"cm_gems_threshold": math.inf}, "positive perplexity drop"),
    ({"random_token_prob": 1.5}, r"random_token_prob must be in \[0, 1\]"),
    ({"position_init_scale": 0.0}, r"--position-init-scale must be a positive finite number, got 0.0"),
])
def test_out_of_range_values_name_the_option_and_the_range(corpus, setting, message):  # noqa: F811
    with pytest.raises(GeneMaskTaskError, match=message):
        setup_task(corpus, mask_strategy="kmer_span", **setting)
    setup_task(corpus, mask_strategy="kmer_span", tokens_per_sample=3, wide_half_width=2)  # the smallest sample works


def test_a_sample_longer_than_the_model_s_positions_is_refused_when_the_model_is_built(corpus):  # noqa: F811
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [
        str(corpus), "--user-dir", PLUGIN, "--task", "genemask_mlm", "--criterion", "genemask_mlm",
        "--arch", "genemask_tiny", "--mask-strategy", "kmer_span", "--tokens-per-sample", "1024"])
    from fairseq import tasks

    task = tasks.setup_task(args)
    with pytest.raises(GeneMaskTaskError, match=r"--tokens-per-sample 1024 is more than the model's 512 positions"):
        task.build_model(args)


# ---------------------------------------------------------------------------------------------
# Resuming from a checkpoint trained with other settings


def saved_checkpoint(path, task_state):
    torch.save({"model": {}, "cfg": {"task": {"_name": "genemask_mlm"}}, "task_state": task_state}, path)
    return path


def warnings_on_resume(task, checkpoint, caplog):
    task.cfg.restore_file = str(checkpoint)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="genemask_plugin.tasks.genemask_mlm"):
        task.begin_epoch(1, None)
    return [record.getMessage() for record in caplog.records]


def test_the_task_state_records_the_masking_and_the_table(corpus):  # noqa: F811
    state = setup_task(corpus).state_dict()
    assert state[MASKING_STATE]["strategy"] == "genemask" and state[MASKING_STATE]["centre_prob"] > 0
    assert state[PMI_TABLE_STATE]["path"] == str(TABLE) and len(state[PMI_TABLE_STATE]["fingerprint"]) == 16
    assert PMI_TABLE_STATE not in setup_task(corpus, mask_strategy="kmer_span").state_dict()


def test_resuming_with_another_strategy_table_or_curriculum_warns_once_naming_both(corpus, tmp_path, caplog):  # noqa: F811
    trained = setup_task(corpus, mask_strategy="kmer_span").state_dict()
    checkpoint = saved_checkpoint(tmp_path / "kmer_span.pt", trained)
    lines = warnings_on_resume(setup_task(corpus), checkpoint, caplog)
    assert len(lines) == 1 and "--mask-strategy kmer_span (now genemask)" in lines[0], lines

    curriculum = saved_checkpoint(tmp_path / "genemask.pt", setup_task(corpus).state_dict())
    lines = warnings_on_resume(setup_task(corpus, mask_strategy="cm_gems"), curriculum, caplog)
    assert len(lines) == 1 and "--mask-strategy genemask (now cm_gems)" in lines[0], lines

    other_table = tmp_path / "other.tsv"  # another table: one score changed
    rows = TABLE.read_text().splitlines(keepends=True)
    at = next(i for i, row in enumerate(rows[1:], 1) if row.split("\t")[1] == "6")
    fields = rows[at].split("\t")
    fields[5] = str(float(fields[5]) / 2)
    rows[at] = "\t".join(fields)
    other_table.write_text("".join(rows))
    lines = warnings_on_resume(setup_task(corpus, pmi_table=str(other_table)), curriculum, caplog)
    assert len(lines) == 1 and f"--pmi-table {TABLE} (scores " in lines[0] and f"now {other_table}, scores" in lines[0]


def test_the_same_settings_a_moved_table_or_an_old_checkpoint_give_no_warning(corpus, tmp_path, caplog):  # noqa: F811
    checkpoint = saved_checkpoint(tmp_path / "c.pt", setup_task(corpus).state_dict())
    assert warnings_on_resume(setup_task(corpus), checkpoint, caplog) == []
    moved = shutil.copy(TABLE, tmp_path / "moved.tsv")  # the same scores at another path
    assert warnings_on_resume(setup_task(corpus, pmi_table=str(moved)), checkpoint, caplog) == []
    old = saved_checkpoint(tmp_path / "old.pt", {})  # from before the task stored its settings
    assert warnings_on_resume(setup_task(corpus, mask_strategy="random"), old, caplog) == []


def test_an_imported_checkpoint_without_a_masked_lm_head_is_said_once(corpus, tmp_path, caplog):  # noqa: F811
    reason = "imported from bert/, a BertModel without a masked-LM head"
    checkpoint = saved_checkpoint(tmp_path / "imported.pt", {UNTRAINED_LM_HEAD: reason})
    task = setup_task(corpus)
    lines = warnings_on_resume(task, checkpoint, caplog)
    assert lines == [f"{checkpoint}: {reason}; its masked-LM head is trained from scratch here"]
    assert warnings_on_resume(task, checkpoint, caplog) == []  # once per run, not once per epoch
    task = setup_task(corpus)
    task.load_state_dict({UNTRAINED_LM_HEAD: reason, MASKING_STATE: {}})  # what fairseq may hand back: not state
    assert UNTRAINED_LM_HEAD not in task.state_dict()


def test_the_task_class_is_the_registered_one():
    from fairseq.tasks import TASK_REGISTRY

    assert TASK_REGISTRY["genemask_mlm"] is GeneMaskMLMTask


def test_the_pmi_fingerprint_reads_token_scores_and_pmi_span_collocations():
    """A resumed run compares the table's fingerprint; pmi_span's table is collocations, not scores."""
    from genemask_plugin.tasks.genemask_mlm import pmi_fingerprint
    from genemask_preprocess.formats.pmi_table import Collocations

    scores = np.linspace(-1, 1, 7)
    assert pmi_fingerprint(scores) == pmi_fingerprint(scores.copy()) != pmi_fingerprint(scores[::-1])
    one = Collocations({2: np.array([3, 17]), 3: np.array([40])}, base=10, source="a.tsv")
    same = Collocations({2: np.array([3, 17]), 3: np.array([40])}, base=10, source="b.tsv")
    other = Collocations({2: np.array([3, 18]), 3: np.array([40])}, base=10, source="a.tsv")
    assert pmi_fingerprint(one) == pmi_fingerprint(same) != pmi_fingerprint(other)
    assert len(pmi_fingerprint(one)) == 16
