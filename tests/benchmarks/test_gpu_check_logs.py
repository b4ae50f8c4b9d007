"""benchmarks/gpu_check_logs.py: reading fairseq's training, resume and validation lines."""

import math

import pytest
from gpu_check_logs import resumed_from, training_stats, validation_loss
from gpu_check_runner import CheckFailed


def inner_line(update, loss, wps=50000.0, wpb=16256.0, bsz=32.0, gb_free=120.5):
    return (f"2026-11-30 12:00:00 | INFO | train_inner | epoch 001:     {update} / 40 loss={loss}, ppl=1, "
            f"wps={wps}, ups=3.1, wpb={wpb}, bsz={bsz}, num_updates={update}, lr=0.0005, gnorm=1.2, "
            f"loss_scale=None, train_wall=3, gb_free={gb_free}, wall=10")


def test_training_stats_read_fairseq_lines():
    log = "\n".join([inner_line(10, 8.2, wps=1000.0, gb_free=100.0), inner_line(20, 7.5, wps=40000.0),
                     inner_line(30, 7.0, wps=50000.0, gb_free=110.0), inner_line(40, 6.9, wps=60000.0)])
    stats = training_stats("run", log, updates=40, log_interval=10)
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
    with pytest.raises(CheckFailed, match=message):
        training_stats("run", log, updates=10 * len(losses) + (10 if message == "not 30" else 0),
                                 log_interval=10)


def test_resume_and_validation_lines():
    line = ("2026-11-30 | INFO | fairseq.trainer | Loaded checkpoint /w/checkpoint_last.pt "
            "(epoch 5 @ 150 updates)")
    assert resumed_from(line) == 150
    assert resumed_from("No existing checkpoint found /w/checkpoint_last.pt") is None
    valid = "2026-11-30 | INFO | valid | valid on 'valid' subset | loss 6.512 | ppl 91.2 | wps 1 | wpb 2"
    assert validation_loss(valid) == 6.512
    with pytest.raises(CheckFailed):
        validation_loss("nothing here")
