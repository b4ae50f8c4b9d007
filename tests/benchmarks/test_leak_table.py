"""Tests of the leak tables' theory (against long simulated samples) and of the docs' tables (regenerated)."""

from pathlib import Path

import numpy as np
import pytest
from leak_table import (
    END,
    START,
    LeakFigures,
    centred_span_theory,
    iid_theory,
    isolated_span_hidden_bases,
    tables,
    theory,
)

from genemask_plugin.masking.config import MaskingConfig
from genemask_plugin.masking.leakage import measure_leakage
from genemask_plugin.masking.replacement import replace_masked_tokens
from genemask_plugin.masking.strategies import select_mask_spans

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "genemask_mlm.md"
PAD, MASK, VOCAB = 1, 4100, 4101
CARRIES_BASES = np.zeros(VOCAB, dtype=bool)
CARRIES_BASES[4:MASK] = True


def simulate(config: MaskingConfig, items: int = 12, length: int = 20_000) -> LeakFigures:
    """The figures of long samples, masked by the selector and 80/10/10 and read by the leak meter."""
    totals = np.zeros(6)
    for index in range(items):
        rng = np.random.default_rng([7, index])
        tokens = np.concatenate([[0], rng.integers(4, MASK, length), [2]])
        maskable = CARRIES_BASES[tokens]
        selection = select_mask_spans(maskable, rng, config)
        source = replace_masked_tokens(tokens, selection.masked, rng, MASK, np.arange(4, MASK),
                                       config.leave_unmasked_prob, config.random_token_prob)
        reading = measure_leakage(source, np.where(selection.masked, tokens, PAD), CARRIES_BASES, PAD, config.k)
        wide = reading.span_lengths[reading.span_lengths > config.k].sum()
        totals += [maskable.sum(), reading.num_masked, reading.num_leaked, len(reading.span_lengths),
                   reading.hidden_bases, wide]
    dna, masked, leaked, spans, hidden, wide = totals
    return LeakFigures(100 * masked / dna, 100 * leaked / masked, hidden / spans, 100 * wide / masked)


def test_the_span_theory_of_one_token_spans_is_the_iid_closed_form():
    for p, k, u in ((0.15, 6, 0.1), (0.3, 3, 0.2), (0.5, 4, 0.0)):
        general, closed = centred_span_theory(p, [1], k, u), iid_theory(p, k, u)
        for a, b in zip(vars(general).values(), vars(closed).values(), strict=True):
            assert a == pytest.approx(b, rel=1e-9, abs=1e-12), (p, k, u)


@pytest.mark.parametrize(
    "config",
    [MaskingConfig("random"), MaskingConfig("kmer_span"), MaskingConfig("kmer_span", centre_prob=0.08),
     MaskingConfig("variable_span"), MaskingConfig("variable_span", centre_prob=0.05, mask_boundary=8),
     MaskingConfig("kmer_span", k=3, centre_prob=0.05, leave_unmasked_prob=0.3)],
    ids=["random", "kmer_span", "kmer_span_dense", "variable_span", "variable_span_8_dense", "kmer_span_k3"],
)
def test_theory_matches_long_simulated_samples(config):
    expected, measured = theory(config), simulate(config)
    assert measured.mask_pct == pytest.approx(expected.mask_pct, abs=0.3)
    assert measured.leak_pct == pytest.approx(expected.leak_pct, abs=1.0)
    assert measured.hidden_bases == pytest.approx(expected.hidden_bases, rel=0.05, abs=0.01)
    assert measured.wide_pct == pytest.approx(expected.wide_pct, abs=1.2)


def test_isolated_spans_hide_what_dnabert_issue_86_says():
    assert isolated_span_hidden_bases(6, 6, 0.0) == 1 and isolated_span_hidden_bases(11, 6, 0.0) == 6
    assert isolated_span_hidden_bases(6, 6, 0.1) == pytest.approx(0.9**6)
    # Sparse k-spans are nearly all isolated: their theory approaches the isolated span's.
    assert theory(MaskingConfig("kmer_span", centre_prob=1e-4)).hidden_bases == pytest.approx(0.9**6, rel=0.01)


def test_the_pmi_strategies_have_no_theory():
    assert theory(MaskingConfig("genemask")) == LeakFigures(None, None, None, None)
    assert theory(MaskingConfig("global_pmi")).leak_pct is None


@pytest.mark.slow
def test_the_docs_leak_tables_are_the_scripts(tmp_path):
    text = DOCS.read_text()
    documented = text[text.index(START) : text.index(END) + len(END)]
    assert documented == tables(tmp_path)
