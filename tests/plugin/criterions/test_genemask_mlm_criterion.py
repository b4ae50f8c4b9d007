"""Tests of the genemask_mlm criterion: the loss on masked positions and metrics reduced as ratios of sums."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fairseq import options, tasks
from fairseq.logging import metrics

import genemask_plugin.registration  # noqa: F401  (fairseq skips --user-dir once the package is imported)
from genemask_plugin.criterions.genemask_mlm import GeneMaskMLMLoss
from genemask_preprocess.formats.fairseq_dictionary import write_kmer_dictionary

PLUGIN_ARGS = ["--user-dir", "genemask_plugin", "--task", "genemask_mlm", "--criterion", "genemask_mlm"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    data = tmp_path_factory.mktemp("dict")
    write_kmer_dictionary(data / "dict.txt", 3)
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(
        parser, [str(data), *PLUGIN_ARGS, "--arch", "genemask_tiny", "--mask-strategy", "kmer_span", "--seed", "1"]
    )
    task = tasks.setup_task(args)
    torch.manual_seed(0)
    model = task.build_model(args).eval()
    return task, model, task.build_criterion(args)


def make_batch(task, rows=3, length=40, mask_every=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(4, 4 + 64, (rows, length), generator=g)
    tokens[:, 0], tokens[:, -1] = 0, 2
    tokens[-1, -5:] = 1  # a shorter, padded row
    target = torch.full_like(tokens, 1)
    masked = torch.zeros_like(tokens, dtype=torch.bool)
    masked[:, 1:-5:mask_every] = True
    target[masked] = tokens[masked]
    source = tokens.clone()
    source[masked] = task.mask_idx
    wide = masked & (torch.arange(length) < 12)
    return {
        "id": torch.arange(rows),
        "nsentences": rows,
        "ntokens": int(tokens.ne(1).sum()),
        "net_input": {"src_tokens": source, "src_lengths": tokens.ne(1).sum(1)},
        "target": target,
        "masked_in_wide_span": wide,
    }, tokens, masked


def test_loss_is_cross_entropy_on_masked_positions(setup):
    task, model, criterion = setup
    batch, tokens, masked = make_batch(task)
    with torch.no_grad():
        loss, sample_size, log = criterion(model, batch)
        logits = model(**batch["net_input"])[0]
    expected = F.cross_entropy(logits[masked], tokens[masked], reduction="sum")
    assert sample_size == masked.sum()
    torch.testing.assert_close(loss, expected, rtol=1e-4, atol=1e-4)
    assert log["n_correct"] == (logits[masked].argmax(-1) == tokens[masked]).sum()
    assert log["n_regular"] == (tokens >= 4).sum()
    assert log["n_wide"] == batch["masked_in_wide_span"].sum()


def test_batch_without_masked_tokens_gives_zero_loss(setup):
    task, model, criterion = setup
    batch, _, _ = make_batch(task)
    batch["target"].fill_(1)
    batch["masked_in_wide_span"].fill_(False)
    with torch.no_grad():
        loss, sample_size, log = criterion(model, batch)
    assert sample_size == 0 and float(loss) == 0.0 and log["n_correct"] == 0


def _reduce(logs):
    with metrics.aggregate() as agg:
        GeneMaskMLMLoss.reduce_metrics(logs)
        return agg.get_smoothed_values()


def test_metrics_are_ratios_of_sums_across_workers():
    logs = [
        {"loss": 10.0, "sample_size": 5, "n_correct": 1, "n_regular": 50, "n_wide": 2, "n_global": 0,
         "ntokens": 52, "nsentences": 1},
        {"loss": 30.0, "sample_size": 15, "n_correct": 9, "n_regular": 50, "n_wide": 12, "n_global": 15,
         "ntokens": 52, "nsentences": 1},
    ]
    values = _reduce(logs)
    # Means of per-worker ratios would give acc 40, wide 60, loss (2 + 2) / 2.
    assert values["acc"] == pytest.approx(50.0)
    assert values["wide_pct"] == pytest.approx(70.0)
    assert values["mask_pct"] == pytest.approx(20.0)
    assert values["global_pct"] == pytest.approx(75.0)  # 15 of 20 masked tokens, not the mean 50
    assert values["loss"] == pytest.approx(round(40 / 20 / math.log(2), 3))
    assert values["ppl"] == pytest.approx(2 ** values["loss"], rel=1e-3)
    assert GeneMaskMLMLoss.logging_outputs_can_be_summed()
    summed = {key: sum(log[key] for log in logs) for key in logs[0]}
    assert _reduce([summed]) == values
    assert "leak_pct" in values and "hidden_bases" not in values  # no spans measured


def test_leak_metrics_are_ratios_of_sums_across_workers():
    logs = [
        {"loss": 10.0, "sample_size": 10, "n_regular": 50, "n_leaked": 1, "n_spans": 1, "n_hidden_bases": 6},
        {"loss": 30.0, "sample_size": 30, "n_regular": 50, "n_leaked": 9, "n_spans": 4, "n_hidden_bases": 4},
    ]
    values = _reduce(logs)
    # Means of per-worker ratios would give leak 20 and hidden (6 + 1) / 2.
    assert values["leak_pct"] == pytest.approx(25.0)  # 10 of 40 masked tokens
    assert values["hidden_bases"] == pytest.approx(2.0)  # 10 bases over 5 spans
    summed = {key: sum(log[key] for log in logs) for key in logs[0]}
    assert _reduce([summed]) == values


def test_criterion_passes_the_batchs_leak_counts_on(setup):
    task, model, criterion = setup
    batch, _, _ = make_batch(task)
    with torch.no_grad():
        _, _, bare = criterion(model, batch)
        _, _, log = criterion(model, {**batch, "leaked_tokens": 3, "masked_spans": 7, "hidden_bases": 11})
    assert (bare["n_leaked"], bare["n_spans"], bare["n_hidden_bases"]) == (0, 0, 0)
    assert (log["n_leaked"], log["n_spans"], log["n_hidden_bases"]) == (3, 7, 11)


def test_centres_per_block_is_a_ratio_of_sums_across_workers():
    logs = [
        {"loss": 10.0, "sample_size": 5, "n_regular": 50, "ntokens": 52, "nsentences": 1, "n_centres": 1},
        {"loss": 30.0, "sample_size": 15, "n_regular": 150, "ntokens": 160, "nsentences": 3, "n_centres": 27},
    ]
    values = _reduce(logs)
    assert values["centres_per_block"] == pytest.approx(7.0)  # 28 / 4, not the mean of 1 and 9
    summed = {key: sum(log[key] for log in logs) for key in logs[0]}
    assert _reduce([summed])["centres_per_block"] == values["centres_per_block"]


def test_criterion_counts_the_centres_the_batch_reports(setup):
    task, model, criterion = setup
    batch, _, _ = make_batch(task, rows=3)
    with torch.no_grad():
        _, _, log = criterion(model, {**batch, "mask_centres": 13})
    assert log["n_centres"] == 13
    assert _reduce([log])["centres_per_block"] == pytest.approx(round(13 / 3, 2))


def test_metrics_of_a_trained_batch_match_its_mask(setup):
    task, model, criterion = setup
    batch, tokens, masked = make_batch(task, mask_every=3)
    with torch.no_grad():
        _, _, log = criterion(model, batch)
    values = _reduce([log])
    assert values["mask_pct"] == pytest.approx(100 * masked.sum().item() / (tokens >= 4).sum().item(), abs=0.01)
    wide = batch["masked_in_wide_span"].sum().item()
    assert values["wide_pct"] == pytest.approx(100 * wide / masked.sum().item(), abs=0.01)
    assert values["global_pct"] == 0.0
    with torch.no_grad():
        _, _, log = criterion(model, {**batch, "spans_are_global": True})
    assert log["n_global"] == log["sample_size"] == masked.sum().item()
    assert _reduce([log])["global_pct"] == 100.0
    assert np.isfinite(values["loss"])
