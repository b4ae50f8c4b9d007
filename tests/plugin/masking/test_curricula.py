"""Unit tests of the mask curricula: the cm_step schedule and the cm_gems switching rule."""

import numpy as np
import pytest

from genemask_plugin.masking.config import MaskingConfig
from genemask_plugin.masking.curricula import (
    BoundarySchedule,
    PerplexityPlateauSwitch,
    StepwiseSchedule,
    boundary_stage,
    boundary_stage_configs,
    plateaued,
    stepwise_probability,
)
from genemask_plugin.masking.spans import select_variable_spans


def cm_step(seed, max_update):
    return StepwiseSchedule(MaskingConfig("cm_step"), seed=seed, max_update=max_update)


def cm_gems(seed, threshold=1.0, rule="change"):
    return PerplexityPlateauSwitch(MaskingConfig("cm_gems", cm_gems_threshold=threshold, cm_gems_rule=rule), seed=seed)


def authors_switch_index(perplexities, threshold):
    """The authors' test, as their code runs it before every batch: the smallest |difference| between
    consecutive lines of eval_results.txt below the threshold. Returns the first validation after which it holds."""
    for n in range(2, len(perplexities) + 1):
        history = perplexities[:n]
        if min(abs(b - a) for a, b in zip(history, history[1:], strict=False)) < threshold:
            return n - 1
    return None


def test_cm_step_probability_rises_in_100_steps_from_0_to_1():
    assert stepwise_probability(0, 10_000) == 0.0
    assert stepwise_probability(99, 10_000) == 0.0
    assert stepwise_probability(100, 10_000) == 0.01
    assert stepwise_probability(5_050, 10_000) == 0.5
    assert stepwise_probability(9_999, 10_000) == 0.99
    assert stepwise_probability(10_000, 10_000) == 1.0
    assert stepwise_probability(12_000, 10_000) == 1.0
    # U not a multiple of 100: floor(u / (U / 100)) exactly, e.g. u=3, U=60 -> floor(5.0) = 5 (float: 4.999...).
    assert stepwise_probability(3, 60) == 0.05
    steps = [stepwise_probability(u, 60) for u in range(60)]
    assert steps == sorted(steps) and len(set(steps)) == 60


def test_cm_step_batch_choice_is_a_pure_function_of_seed_update_and_batch_ids():
    curriculum = cm_step(seed=3, max_update=1000)
    ids = np.array([17, 4, 250, 9])
    choices = [curriculum.batch_candidate(500, ids) for _ in range(3)]
    assert len(set(choices)) == 1 and type(choices[0]) is int
    assert curriculum.batch_candidate(500, ids[::-1]) == choices[0]  # order within the batch does not matter
    assert cm_step(seed=3, max_update=1000).batch_candidate(500, ids) == choices[0]
    # The share of global batches follows the probability.
    for update, p in ((0, 0.0), (300, 0.3), (800, 0.8), (1000, 1.0)):
        share = np.mean([curriculum.batch_candidate(update, [b, b + 1]) for b in range(0, 4000, 2)])
        assert share == pytest.approx(p, abs=0.04), update
    # And differs with the seed.
    other = cm_step(seed=4, max_update=1000)
    batches = [[b, b + 1] for b in range(0, 400, 2)]
    assert [curriculum.batch_candidate(500, b) for b in batches] != [other.batch_candidate(500, b) for b in batches]


def test_cm_gems_switches_once_at_the_first_small_drop_and_never_reverts():
    curriculum = cm_gems(seed=1, threshold=1.0)
    # Validation perplexities at updates 100, 200, ...: drops 20, 5, 1.5, 0.4 (switch), then rises, drops again.
    script = [(100, 40.0), (200, 20.0), (300, 15.0), (400, 13.5), (500, 13.1), (600, 14.0), (700, 9.0), (800, 8.99)]
    switched_at = [update for update, ppl in script if curriculum.observe_validation(update, ppl)]
    assert switched_at == [500]
    assert curriculum.switch_update == 500
    assert [curriculum.second_probability(u) for u in (0, 499, 500, 10_000)] == [0.0, 0.0, 1.0, 1.0]
    assert curriculum.batch_candidate(700, [1, 2]) == 1 and curriculum.batch_candidate(499, [1, 2]) == 0
    assert curriculum.validation_candidate() == 1
    assert "since update 500" in curriculum.describe()
    assert len(curriculum.valid_history) == len(script)


def test_cm_step_state_says_where_the_schedule_is():
    curriculum = cm_step(seed=1, max_update=10_000)
    curriculum.num_updates = 2_550
    restored = cm_step(seed=1, max_update=10_000)
    restored.load_state_dict(curriculum.state_dict())
    assert restored.num_updates == 2_550
    assert "cm_step after 2550 of 10000 updates" in restored.describe() and "25%" in restored.describe()


def test_cm_gems_first_validation_cannot_switch():
    curriculum = cm_gems(seed=1, threshold=1.0)
    assert not curriculum.observe_validation(10, 3.0)  # nothing to compare with
    assert curriculum.validation_candidate() == 0
    assert cm_gems(seed=1, threshold=0.25).observe_validation(0, 9.0) is False


@pytest.mark.parametrize(
    ("perplexities", "change_switch", "drop_switch"),
    [
        ([40.0, 20.0, 15.0, 13.5, 13.1], 4, 4),  # a steady fall: both rules switch at the first small drop
        ([40.0, 30.0, 36.0, 30.5, 30.2], 4, 2),  # a rise of 6: only the drop rule switches on it
        ([40.0, 39.4, 30.0], 1, 1),  # a small drop right away
        ([40.0, 40.8, 20.0, 19.5], 1, 1),  # a small rise: both rules (|change| and drop are both < 1)
        ([40.0, 50.0, 35.0, 45.0, 44.5], 4, 1),  # swings: the change rule waits for a small move
        ([40.0, 30.0, 20.0, 10.0], None, None),  # never below the threshold
    ],
)
def test_cm_gems_rules_on_scripted_perplexities(perplexities, change_switch, drop_switch):
    assert authors_switch_index(perplexities, 1.0) == change_switch  # the default is the authors' rule
    for rule, expected in (("change", change_switch), ("drop", drop_switch)):
        curriculum = cm_gems(seed=1, threshold=1.0, rule=rule)
        switched = [i for i, ppl in enumerate(perplexities) if curriculum.observe_validation(100 * i, ppl)]
        assert switched == ([] if expected is None else [expected]), rule
        assert curriculum.switch_update == (None if expected is None else 100 * expected)


def test_plateaued_is_symmetric_only_for_the_change_rule():
    assert plateaued(10.0, 10.5, 1.0) and plateaued(10.0, 9.5, 1.0) and not plateaued(10.0, 11.5, 1.0)
    assert plateaued(10.0, 11.5, 1.0, "drop") and not plateaued(10.0, 8.0, 1.0, "drop")
    assert not plateaued(10.0, 9.0, 1.0) and not plateaued(10.0, 9.0, 1.0, "drop")  # exactly the threshold: not below


def test_cm_gems_state_round_trips_and_stays_switched():
    curriculum = cm_gems(seed=1, threshold=2.0)
    for update, ppl in ((10, 30.0), (20, 25.0), (30, 24.0), (40, 10.0)):
        curriculum.observe_validation(update, ppl)
    restored = cm_gems(seed=1, threshold=2.0)
    restored.load_state_dict(curriculum.state_dict())
    assert restored.switch_update == 30 and restored.valid_history == curriculum.valid_history
    assert not restored.observe_validation(50, 9.99)  # never switches again
    assert restored.switch_update == 30 and restored.second_probability(50) == 1.0
    with pytest.raises(ValueError, match="trained with --mask-strategy cm_gems, not cm_step"):
        cm_step(seed=1, max_update=10).load_state_dict(curriculum.state_dict())


@pytest.mark.parametrize("max_update", [None, 0, -5])
def test_cm_step_needs_max_update(max_update):
    with pytest.raises(ValueError, match="--mask-strategy cm_step needs --max-update"):
        cm_step(seed=1, max_update=max_update)


def test_old_checkpoint_states_load():
    """States as the curricula wrote them before they were strategies (both rules saved every key)."""
    gems = cm_gems(seed=1)
    gems.load_state_dict({"kind": "cm_gems", "num_updates": 300, "switch_update": 200,
                          "valid_history": [[100, 50.0], [200, 49.5]]})
    assert gems.switch_update == 200 and gems.valid_history == [(100, 50.0), (200, 49.5)] and gems.num_updates == 300
    step = cm_step(seed=1, max_update=1000)
    step.load_state_dict({"kind": "cm_step", "num_updates": 250, "switch_update": None, "valid_history": []})
    assert step.num_updates == 250 and "cm_step after 250 of 1000 updates: kmer_span, global_pmi for 25%" in step.describe()


# ---------------------------------------------------------------- random_mask (RandomMask)


def random_mask(max_update, **settings):
    return BoundarySchedule(MaskingConfig("random_mask", **settings), seed=1, max_update=max_update)


def test_random_mask_boundary_widens_by_stage_over_the_updates():
    schedule = random_mask(10_000)
    assert schedule.boundaries == (6, 8, 10, 12)
    expected = {0: 6, 2_499: 6, 2_500: 8, 4_999: 8, 5_000: 10, 7_499: 10, 7_500: 12, 9_999: 12, 10_000: 12, 20_000: 12}
    assert {u: schedule.boundary_at(u) for u in expected} == expected
    # The same stage for every batch at an update: no draw, no dependence on the batch.
    assert {schedule.batch_candidate(5_000, ids) for ids in ([1, 2], [9], [])} == {2}
    assert random_mask(10_000).batch_candidate(5_000, [3]) == 2 and schedule.validation_candidate() == 0
    # U not a multiple of S: floor(S * u / U) in integers.
    assert [boundary_stage(u, 10, 4) for u in range(11)] == [0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 3]
    assert random_mask(30, mask_boundary=9, boundary_stages=3).boundaries == (6, 8, 9)  # round(1.5) -> 8 (half up)
    assert random_mask(30, k=3).boundaries == (3, 4, 5, 6)
    # Non-overlapping tokens: a base span of one token, so the default boundary 2 leaves no room for 4 stages.
    assert random_mask(30, k=None, mask_boundary=4).boundaries == (1, 2, 3, 4)
    with pytest.raises(ValueError, match="4 boundary stages need a mask boundary of at least 4 tokens"):
        random_mask(30, k=None)


def test_random_mask_stages_keep_the_first_stages_mask_share():
    stages = boundary_stage_configs(MaskingConfig("random_mask", centre_prob=0.025))
    assert [c.strategy for c in stages] == ["variable_span"] * 4
    assert [c.mask_boundary for c in stages] == [6, 8, 10, 12]
    # centre probability x mean span length is the first stage's 0.025 x 6 = 0.15 tokens per position.
    assert [c.centre_prob * (6 + c.mask_boundary) / 2 for c in stages] == pytest.approx([0.15] * 4)


def _stationary_masked_share(config) -> float:
    """P(a position far from the ends is masked): centres i.i.d., each covering its span's offsets."""
    lengths = np.arange(config.k, config.mask_boundary + 1)
    offsets = np.arange(-config.mask_boundary, config.mask_boundary + 1)
    covers = [np.mean((o >= -((lengths - 1) // 2)) & (o <= lengths - 1 - (lengths - 1) // 2)) for o in offsets]
    return 1.0 - float(np.prod(1.0 - config.centre_prob * np.asarray(covers)))


def test_random_mask_masks_its_target_share_at_every_stage():
    """The target is the first stage's, DNABERT's k-span at 0.025: 1 - 0.975^6 = 14.1% of the tokens."""
    target = 1 - 0.975**6
    n, items = 510, 300
    maskable = np.ones(n, dtype=bool)
    for config in boundary_stage_configs(MaskingConfig("random_mask")):
        expected = _stationary_masked_share(config)
        assert expected == pytest.approx(target, abs=0.005), config.mask_boundary
        share = np.mean([select_variable_spans(maskable, np.random.default_rng([1, 1, i]), config).masked.mean()
                         for i in range(items)])
        # Spans truncated at the item's ends mask a little less than far from them.
        assert expected - 0.01 < share < expected + 0.003, (config.mask_boundary, share, expected)


def test_random_mask_settings_are_checked():
    with pytest.raises(ValueError, match="--mask-strategy random_mask needs --max-update"):
        random_mask(None)
    with pytest.raises(ValueError, match="5 boundary stages need a mask boundary of at least 10 tokens"):
        random_mask(100, mask_boundary=9, boundary_stages=5)
    schedule = random_mask(1_000)
    schedule.num_updates = 600
    restored = random_mask(1_000)
    restored.load_state_dict(schedule.state_dict())
    assert restored.describe() == ("random_mask after 600 of 1000 updates: stage 3 of 4, spans of 6..10 tokens "
                                   "(boundaries 6, 8, 10, 12)")
