"""Tests of MaskingConfig: the papers' defaults, validation, flags and a curriculum's candidates."""

from dataclasses import fields
from types import SimpleNamespace

import pytest

from genemask_plugin.masking.config import MaskingConfig
from genemask_plugin.masking.strategies import STRATEGIES


def test_paper_defaults():
    assert MaskingConfig().centre_prob == 0.0176
    assert MaskingConfig(strategy="kmer_span").centre_prob == 0.025
    assert MaskingConfig(strategy="random").centre_prob == 0.15
    assert MaskingConfig(centre_prob=0.03).centre_prob == 0.03
    config = MaskingConfig()
    # all_wide_below 5 and the cm_gems "change" rule are the authors' code (docs/genemask_method.md, section 8)
    assert (config.wide_half_width, config.high_fraction, config.all_wide_below) == (5, 0.5, 5)
    assert (config.leave_unmasked_prob, config.random_token_prob) == (0.1, 0.1)
    assert (config.cm_gems_threshold, config.cm_gems_rule) == (1.0, "change")
    plain = {"genemask", "kmer_span", "random", "genemask_position", "global_pmi", "variable_span", "pmi_span"}
    assert {name for name, s in STRATEGIES.items() if not s.is_curriculum} == plain
    assert MaskingConfig(strategy="global_pmi").centre_prob == pytest.approx(0.0136, abs=1e-4)
    assert MaskingConfig(strategy="global_pmi").uses_pmi
    assert MaskingConfig(strategy="cm_step").centre_prob == 0.025 and MaskingConfig("cm_gems").centre_prob == 0.0176
    # RandomMask: DNABERT's centre probability for its first stage, boundaries up to 2k in 4 stages.
    assert MaskingConfig("random_mask").centre_prob == 0.025
    assert (config.mask_boundary, config.boundary_stages) == (12, 4)
    assert MaskingConfig(k=3).mask_boundary == 6 and MaskingConfig(k=None).mask_boundary == 2
    assert MaskingConfig(strategy="pmi_span").centre_prob == 0.15 and MaskingConfig("pmi_span").uses_pmi
    assert (config.pmi_span_max_n, config.pmi_span_collocations) == (5, 100_000)  # Levine et al.'s longest n


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "pmi"}, "unknown mask strategy 'pmi'; choose from genemask, kmer_span, random, "),
        ({"centre_prob": 0.0}, "centre probability"),
        ({"centre_prob": 1.5}, "centre probability"),
        ({"wide_half_width": -1}, "wide half-width"),
        ({"high_fraction": 1.2}, "high fraction"),
        ({"all_wide_below": -1}, "all-wide"),
        ({"cm_gems_rule": "rise"}, "unknown cm_gems rule 'rise'; choose from change, drop"),
        ({"strategy": "cm_gems", "later_centre_prob": 0.0}, "later centre probability must be in"),
        ({"leave_unmasked_prob": 0.6, "random_token_prob": 0.6}, "must be <= 1"),
        ({"cm_gems_threshold": 0.0}, "positive perplexity drop"),
        ({"cm_gems_threshold": -1.0}, "positive perplexity drop"),
        ({"cm_gems_threshold": float("inf")}, "positive perplexity drop"),
        ({"mask_boundary": 5}, "at least the base span, 6 tokens"),
        ({"boundary_stages": 1}, "boundary stages must be >= 2"),
        ({"pmi_span_max_n": 1}, "longest collocation must be 2 or more tokens"),
        ({"pmi_span_collocations": 0}, "collocation vocabulary needs 1 or more n-grams"),
    ],
)
def test_bad_config_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message) as caught:
        MaskingConfig(**kwargs)
    assert "\n" not in str(caught.value)


def test_every_setting_but_k_is_a_flag_and_strategy_is_mask_strategy():
    flags = MaskingConfig.flags()
    assert list(flags) == ["mask_strategy", "centre_prob", "wide_half_width", "high_fraction", "all_wide_below",
                           "leave_unmasked_prob", "random_token_prob", "cm_gems_threshold", "cm_gems_rule",
                           "later_centre_prob", "mask_boundary", "boundary_stages", "pmi_span_max_n",
                           "pmi_span_collocations"]
    assert {f.name for f in flags.values()} == {f.name for f in fields(MaskingConfig)} - {"k"}
    assert flags["mask_strategy"].metadata["choices"] == tuple(STRATEGIES)
    assert all(f.metadata["help"] for f in fields(MaskingConfig))


def test_from_flags_reads_every_flag_and_takes_overrides():
    parsed = SimpleNamespace(mask_strategy="kmer_span", centre_prob=0.03, wide_half_width=4, high_fraction=0.25,
                             all_wide_below=0, leave_unmasked_prob=0.2, random_token_prob=0.05, cm_gems_threshold=2.0,
                             cm_gems_rule="drop", mask_boundary=9, boundary_stages=3, pmi_span_max_n=3,
                             pmi_span_collocations=7)
    parsed.later_centre_prob = None
    config = MaskingConfig.from_flags(parsed, k=4)
    assert config == MaskingConfig("kmer_span", 4, 0.03, 4, 0.25, 0, 0.2, 0.05, 2.0, "drop", None, 9, 3, 3, 7)
    assert MaskingConfig.from_flags(parsed, strategy="random", k=None).strategy == "random"


def test_a_curriculum_carries_its_candidates_configs():
    config = MaskingConfig("cm_step", k=3, centre_prob=0.04, wide_half_width=2)
    local, global_ = config.candidates()
    assert (local.strategy, local.centre_prob, local.k, local.wide_half_width) == ("kmer_span", 0.04, 3, 2)
    # The first candidate takes --centre-prob; the others keep their paper value.
    assert (global_.strategy, global_.wide_half_width) == ("global_pmi", 2)
    assert global_.centre_prob == pytest.approx(0.15 / 11)
    assert MaskingConfig("cm_gems").candidates()[0] == MaskingConfig("genemask")
    # --later-centre-prob sets the others, e.g. the authors' CM-GEMS with --mlm_probability 0.0176 in both phases
    local, global_ = MaskingConfig("cm_gems", later_centre_prob=0.0176).candidates()
    assert (local.centre_prob, global_.centre_prob) == (0.0176, 0.0176)
    assert MaskingConfig("kmer_span").candidates() == (MaskingConfig("kmer_span"),)
    assert MaskingConfig("cm_gems").uses_pmi and not MaskingConfig("kmer_span").uses_pmi
