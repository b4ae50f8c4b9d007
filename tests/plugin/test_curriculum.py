"""Unit tests of the CM-GEMS mask curricula: the cm_step schedule and the cm_gems switching rule."""

import numpy as np
import pytest

from genemask_plugin.curriculum import MaskCurriculum, cm_step_global_probability


def test_cm_step_probability_rises_in_100_steps_from_0_to_1():
    assert cm_step_global_probability(0, 10_000) == 0.0
    assert cm_step_global_probability(99, 10_000) == 0.0
    assert cm_step_global_probability(100, 10_000) == 0.01
    assert cm_step_global_probability(5_050, 10_000) == 0.5
    assert cm_step_global_probability(9_999, 10_000) == 0.99
    assert cm_step_global_probability(10_000, 10_000) == 1.0
    assert cm_step_global_probability(12_000, 10_000) == 1.0
    # U not a multiple of 100: floor(u / (U / 100)) exactly, e.g. u=3, U=60 -> floor(5.0) = 5 (float: 4.999...).
    assert cm_step_global_probability(3, 60) == 0.05
    steps = [cm_step_global_probability(u, 60) for u in range(60)]
    assert steps == sorted(steps) and len(set(steps)) == 60


def test_cm_step_batch_choice_is_a_pure_function_of_seed_update_and_batch_ids():
    curriculum = MaskCurriculum("cm_step", seed=3, max_update=1000)
    ids = np.array([17, 4, 250, 9])
    choices = [curriculum.batch_uses_global_pmi(500, ids) for _ in range(3)]
    assert len(set(choices)) == 1
    assert curriculum.batch_uses_global_pmi(500, ids[::-1]) == choices[0]  # order within the batch does not matter
    assert MaskCurriculum("cm_step", seed=3, max_update=1000).batch_uses_global_pmi(500, ids) == choices[0]
    # The share of global batches follows the probability.
    for update, p in ((0, 0.0), (300, 0.3), (800, 0.8), (1000, 1.0)):
        share = np.mean([curriculum.batch_uses_global_pmi(update, [b, b + 1]) for b in range(0, 4000, 2)])
        assert share == pytest.approx(p, abs=0.04), update
    # And differs with the seed.
    other = MaskCurriculum("cm_step", seed=4, max_update=1000)
    batches = [[b, b + 1] for b in range(0, 400, 2)]
    assert [curriculum.batch_uses_global_pmi(500, b) for b in batches] != [other.batch_uses_global_pmi(500, b) for b in batches]


def test_cm_gems_switches_once_at_the_first_small_drop_and_never_reverts():
    curriculum = MaskCurriculum("cm_gems", seed=1, threshold=1.0)
    # Validation perplexities at updates 100, 200, ...: drops 20, 5, 1.5, 0.4 (switch), then rises, drops again.
    script = [(100, 40.0), (200, 20.0), (300, 15.0), (400, 13.5), (500, 13.1), (600, 14.0), (700, 9.0), (800, 8.99)]
    switched_at = [update for update, ppl in script if curriculum.observe_validation(update, ppl)]
    assert switched_at == [500]
    assert curriculum.switch_update == 500
    assert [curriculum.global_probability(u) for u in (0, 499, 500, 10_000)] == [0.0, 0.0, 1.0, 1.0]
    assert curriculum.batch_uses_global_pmi(700, [1, 2]) and not curriculum.batch_uses_global_pmi(499, [1, 2])
    assert curriculum.validation_uses_global_pmi()
    assert "since update 500" in curriculum.describe()
    assert len(curriculum.valid_history) == len(script)


def test_cm_step_state_says_where_the_schedule_is():
    curriculum = MaskCurriculum("cm_step", seed=1, max_update=10_000)
    curriculum.num_updates = 2_550
    restored = MaskCurriculum("cm_step", seed=1, max_update=10_000)
    restored.load_state_dict(curriculum.state_dict())
    assert restored.num_updates == 2_550
    assert "cm_step after 2550 of 10000 updates" in restored.describe() and "25%" in restored.describe()


def test_cm_gems_first_validation_cannot_switch_and_a_rise_counts_as_a_small_drop():
    curriculum = MaskCurriculum("cm_gems", seed=1, threshold=1.0)
    assert not curriculum.observe_validation(10, 3.0)  # nothing to compare with
    assert not curriculum.validation_uses_global_pmi()
    assert curriculum.observe_validation(20, 3.5)  # perplexity went up: the drop (-0.5) is below 1.0
    assert MaskCurriculum("cm_gems", seed=1, threshold=0.25).observe_validation(0, 9.0) is False


def test_cm_gems_state_round_trips_and_stays_switched():
    curriculum = MaskCurriculum("cm_gems", seed=1, threshold=2.0)
    for update, ppl in ((10, 30.0), (20, 25.0), (30, 24.0), (40, 10.0)):
        curriculum.observe_validation(update, ppl)
    restored = MaskCurriculum("cm_gems", seed=1, threshold=2.0)
    restored.load_state_dict(curriculum.state_dict())
    assert restored.switch_update == 30 and restored.valid_history == curriculum.valid_history
    assert not restored.observe_validation(50, 9.99)  # never switches again
    assert restored.switch_update == 30 and restored.global_probability(50) == 1.0
    with pytest.raises(ValueError, match="trained with --mask-curriculum cm_gems"):
        MaskCurriculum("cm_step", seed=1, max_update=10).load_state_dict(curriculum.state_dict())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"kind": "cm_gems", "threshold": 0.0}, "positive"),
     ({"kind": "cm_gems", "threshold": -1.0}, "positive"),
     ({"kind": "cm_step", "max_update": None}, "needs --max-update"),
     ({"kind": "cm_step", "max_update": 0}, "needs --max-update"),
     ({"kind": "warmup"}, "unknown mask curriculum")],
)
def test_bad_settings_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MaskCurriculum(seed=1, **kwargs)
