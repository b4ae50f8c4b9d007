"""Tests of the leak meter: hand-built masks with known answers, and a brute-force count over random masks."""

import numpy as np
import pytest

from genemask_plugin.masking.leakage import measure_leakage, token_base_lengths

BOS, PAD, EOS, MASK = 0, 1, 2, 99
VOCAB = 100
CARRIES_BASES = np.zeros(VOCAB, dtype=bool)
CARRIES_BASES[4:MASK] = True  # ids 4..98 are k-mers; 0-3 specials, 99 <mask>


def row(length: int, hidden=(), unchanged=(), replaced=(), eos=True):
    """``(source, target)`` of ``<s>`` + ``length`` k-mer tokens (+ ``</s>``): positions in ``hidden``
    become ``<mask>``, in ``replaced`` a wrong k-mer, in ``unchanged`` stay; all of them are masked."""
    tokens = np.array([BOS, *range(10, 10 + length), *([EOS] if eos else [])], dtype=np.int64)
    source, target = tokens.copy(), np.full_like(tokens, PAD)
    for p in (*hidden, *unchanged, *replaced):
        assert 1 <= p <= length, p
        target[p] = tokens[p]
    source[list(hidden)] = MASK
    source[list(replaced)] = 5  # a regular token, but not the original one
    return source, target


def span(start: int, length: int):
    return tuple(range(start, start + length))


def meter(source, target, k=6, **kwargs):
    return measure_leakage(source, target, CARRIES_BASES, PAD, k, **kwargs)


# ---------------------------------------------------------------- known answers


@pytest.mark.parametrize(("length", "hidden_bases"), [(1, 0), (5, 0), (6, 1), (7, 2), (11, 6)])
def test_a_span_between_visible_neighbours_hides_length_minus_k_plus_one_bases(length, hidden_bases):
    reading = meter(*row(40, hidden=span(10, length)))
    assert reading.span_lengths.tolist() == [length]
    assert reading.span_hidden_bases.tolist() == [hidden_bases]
    # A token is leaked when its neighbours cover it: only spans shorter than k tokens leak.
    expected_leaked = [p for p in span(10, length) if (p - 9) + (10 + length - p) <= 6]
    assert np.flatnonzero(reading.leaked[0]).tolist() == expected_leaked
    assert reading.num_masked == length


def test_dnabert_span_hides_exactly_one_base_and_leaks_nothing():
    reading = meter(*row(40, hidden=span(10, 6)))
    assert reading.hidden_bases == 1 and reading.num_leaked == 0


def test_an_unchanged_token_next_to_a_span_or_inside_it_hides_fewer_bases():
    # 11-token span; the 80/10/10 rule left its first token unchanged: it shows its bases.
    reading = meter(*row(40, hidden=span(11, 10), unchanged=(10,)))
    assert reading.span_lengths.tolist() == [11]  # unchanged tokens do not split a span
    assert reading.span_hidden_bases.tolist() == [5]
    assert reading.leaked[0, 10]  # an unchanged token is itself visible
    # An unchanged token in the middle of a 6-token span reveals the one hidden base.
    middle = meter(*row(40, hidden=(10, 11, 13, 14, 15), unchanged=(12,)))
    assert middle.span_hidden_bases.tolist() == [0]
    # With it, the tokens before it are covered (d + e <= k), those after it too.
    assert np.flatnonzero(middle.leaked[0]).tolist() == [10, 11, 12, 13, 14, 15]


def test_a_random_replacement_next_to_a_span_is_not_visible():
    plain = meter(*row(40, hidden=span(10, 6)))
    replaced = meter(*row(40, hidden=span(10, 6), replaced=(16,)))
    # The replaced neighbour is masked too: the span is now 7 tokens and hides 2 bases.
    assert replaced.span_lengths.tolist() == [7] and replaced.span_hidden_bases.tolist() == [2]
    assert plain.span_hidden_bases.tolist() == [1]
    # A replaced token is not leaked by itself, unlike an unchanged one.
    isolated = meter(*row(40, replaced=(20,), unchanged=(30,)))
    assert isolated.leaked[0, 20]  # neighbours at distance 1 and 1 cover its 6 bases
    assert meter(*row(40, replaced=(20,)), k=1).num_leaked == 0  # single nucleotides: nothing covers it
    assert meter(*row(40, unchanged=(20,)), k=1).num_leaked == 1


@pytest.mark.parametrize("eos", [True, False])
def test_spans_at_the_item_ends_hide_the_bases_nothing_else_shows(eos):
    # After <s> nothing shows the first 5 bases; at the end, nothing shows the 5 bases past the last
    # token. So a 6-token span at either end hides 6 bases, not 1.
    first = meter(*row(40, hidden=span(1, 6), eos=eos))
    assert first.span_hidden_bases.tolist() == [6]
    last = meter(*row(40, hidden=span(35, 6), eos=eos))
    assert last.span_hidden_bases.tolist() == [6]
    whole = meter(*row(8, hidden=span(1, 8), eos=eos))
    assert whole.span_hidden_bases.tolist() == [8 + 5]  # every base of the item: 8 tokens of 6-mers = 13 bases
    assert whole.num_leaked == 0
    # An unchanged last token shows its own bases, the tail included: with the left neighbour, all of them.
    tail_shown = meter(*row(40, hidden=span(35, 5), unchanged=(40,), eos=eos))
    assert tail_shown.span_hidden_bases.tolist() == [0]
    tail_hidden = meter(*row(40, hidden=span(30, 11), eos=eos))
    assert tail_hidden.span_hidden_bases.tolist() == [6 + 5]


def test_specials_inside_a_block_end_the_run_of_bases():
    # Two chunks packed into one block: <s> A... </s> B... </s>; the chunks are different DNA.
    tokens = np.array([BOS, *range(10, 30), EOS, *range(40, 60), EOS])
    source, target = tokens.copy(), np.full_like(tokens, PAD)
    masked = [19, 20, 22, 23]  # the last two tokens of chunk A, the first two of chunk B
    target[masked] = tokens[masked]
    source[masked] = MASK
    reading = meter(source, target)
    assert reading.span_lengths.tolist() == [2, 2]
    # Chunk A's span ends its run: token 18 (visible) reaches 5 bases past itself, so of the span's
    # 2 + 5 bases the last 2 are hidden. Chunk B's span starts its run: nothing shows its first 2 bases.
    assert reading.span_hidden_bases.tolist() == [2, 2]
    assert reading.num_leaked == 0
    # Read as one run (no </s> between them), the two spans would hide nothing.
    joined = meter(np.delete(source, 21), np.delete(target, 21))
    assert joined.span_lengths.tolist() == [4] and joined.span_hidden_bases.tolist() == [0]


def test_padding_rows_and_a_batch_are_measured_row_by_row():
    a = row(30, hidden=span(5, 6))
    b = row(20, hidden=span(10, 6))
    width = len(a[0])
    pad_to = lambda x: np.concatenate([x, np.full(width - len(x), PAD)])  # noqa: E731
    source = np.stack([a[0], pad_to(b[0])])
    target = np.stack([a[1], pad_to(b[1])])
    reading = meter(source, target)
    assert reading.span_hidden_bases.tolist() == [1, 1]
    one = meter(*a)
    assert one.span_hidden_bases.tolist() == [1]


def test_non_overlapping_tokens_leak_only_when_unchanged():
    lengths = np.zeros(VOCAB, dtype=np.int64)
    lengths[4:MASK] = 6
    reading = meter(*row(40, hidden=span(10, 3), unchanged=(13,), replaced=(20,)), k=None, base_lengths=lengths)
    assert np.flatnonzero(reading.leaked[0]).tolist() == [13]
    assert reading.span_lengths.tolist() == [4, 1]
    assert reading.span_hidden_bases.tolist() == [18, 6]
    assert meter(*row(40, hidden=(3,)), k=None).span_hidden_bases is None


def test_token_base_lengths_from_the_symbols():
    symbols = ["<s>", "<pad>", "</s>", "<unk>", "ACGTAC", "\u2581ACG", "T", "madeupword0000", "<mask>"]
    assert token_base_lengths(symbols).tolist() == [0, 0, 0, 0, 6, 3, 1, 0, 0]
    assert token_base_lengths(["<s>", "<pad>", "hello"]) is None


def test_bad_shapes_and_k_are_refused():
    source, target = row(10)
    with pytest.raises(ValueError, match="differ in shape"):
        meter(source, target[:-1])
    with pytest.raises(ValueError, match="k must be >= 1"):
        meter(source, target, k=0)


# ---------------------------------------------------------------- brute force


def brute_force(source, target, k):
    """Per-base coverage by explicit loops: ``(leaked positions, [(span length, hidden bases)])``."""
    leaked, spans = set(), []
    for r in range(source.shape[0]):
        original = [int(t) if t != PAD else int(s) for s, t in zip(source[r], target[r], strict=True)]
        dna = [bool(CARRIES_BASES[t]) for t in original]
        is_masked = [int(t) != PAD for t in target[r]]
        visible = [dna[p] and (not is_masked[p] or source[r, p] == target[r, p]) for p in range(len(dna))]
        p = 0
        while p < len(dna):
            if not dna[p]:
                p += 1
                continue
            run_start = p
            while p < len(dna) and dna[p]:
                p += 1
            run = range(run_start, p)  # token q covers bases q - run_start .. q - run_start + k - 1
            covered = set()
            for q in run:
                if visible[q]:
                    covered.update(range(q - run_start, q - run_start + k))
            for q in run:
                if is_masked[q] and all(b in covered for b in range(q - run_start, q - run_start + k)):
                    leaked.add((r, q))
            q = run_start
            while q < p:
                if not is_masked[q]:
                    q += 1
                    continue
                first = q
                while q < p and is_masked[q]:
                    q += 1
                bases = set()
                for t in range(first, q):
                    bases.update(range(t - run_start, t - run_start + k))
                spans.append((q - first, len(bases - covered)))
    return leaked, spans


@pytest.mark.parametrize("k", [1, 3, 6])
def test_agrees_with_a_brute_force_count_over_random_masks(k):
    rng = np.random.default_rng(k)
    for trial in range(60):
        rows, width = 4, int(rng.integers(8, 60))
        tokens = rng.integers(4, MASK, size=(rows, width))
        tokens[:, 0] = BOS
        # Specials inside and at the end of rows (packed chunks), and padded rows.
        tokens[rng.random((rows, width)) < 0.03] = EOS
        for r in range(rows):
            tokens[r, int(rng.integers(width // 2, width + 1)):] = PAD
        density = rng.choice([0.05, 0.2, 0.5, 0.9])
        masked = (rng.random((rows, width)) < density) & CARRIES_BASES[tokens]
        fate = rng.random((rows, width))
        source = tokens.copy()
        source[masked & (fate < 0.6)] = MASK
        replaced = masked & (fate >= 0.6) & (fate < 0.8)
        source[replaced] = rng.integers(4, MASK, size=int(replaced.sum()))
        target = np.where(masked, tokens, PAD)
        reading = meter(source, target, k=k)
        leaked, spans = brute_force(source, target, k)
        assert set(zip(*np.nonzero(reading.leaked), strict=True)) == leaked, trial
        assert list(zip(reading.span_lengths.tolist(), reading.span_hidden_bases.tolist(), strict=True)) == spans
