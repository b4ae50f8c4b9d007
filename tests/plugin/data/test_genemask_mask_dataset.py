"""Tests of the fairseq masking dataset and the block dataset under it."""

import numpy as np
import pytest
import torch
from fairseq.data import Dictionary, ListDataset

import genemask_plugin.data.genemask_mask_dataset as mask_dataset_module
from genemask_plugin.data.genemask_mask_dataset import MASK_CANDIDATES, GeneMaskMaskDataset, regular_token_ids
from genemask_plugin.data.item_block_dataset import ItemBlockDataset
from genemask_plugin.masking.config import MaskingConfig
from genemask_plugin.masking.leakage import measure_leakage
from genemask_preprocess.kmers import all_kmers

K = 3
BOS, PAD, EOS, UNK = 0, 1, 2, 3


@pytest.fixture(scope="module")
def vocab():
    d = Dictionary()
    for kmer in all_kmers(K):
        d.add_symbol(kmer)
    d.add_symbol("<mask>")
    return d


def make_items(n=60, seed=0, unk_every=0):
    """``<s>`` + k-mer ids + ``</s>`` items of varied lengths (up to 512), optionally with ``<unk>``s."""
    rng = np.random.default_rng(seed)
    items = []
    for _ in range(n):
        length = int(rng.integers(3, 511))
        body = rng.integers(4, 4 + 4**K, length)
        if unk_every:
            body[::unk_every] = UNK
        items.append(torch.from_numpy(np.concatenate([[BOS], body, [EOS]]).astype(np.int64)))
    return ListDataset(items, np.array([len(t) for t in items]))


def make_dataset(vocab, items, strategy="genemask", seed=1, **knobs):
    mask_idx = vocab.index("<mask>")
    scores = np.random.default_rng(5).standard_normal(len(vocab)).astype(np.float32)
    scores[: vocab.nspecial] = scores[mask_idx] = -np.inf
    config = MaskingConfig(strategy=strategy, k=K, **knobs)
    return GeneMaskMaskDataset(items, vocab, mask_idx, config, token_scores=scores, seed=seed)


def test_regular_token_ids_exclude_specials_mask_and_padding_symbols(vocab):
    symbols = [*vocab.symbols, "madeupword0000"]
    ids = regular_token_ids(symbols, vocab.nspecial, vocab.index("<mask>"))
    assert ids.tolist() == list(range(4, 4 + 4**K))


@pytest.mark.parametrize("strategy", ["genemask", "kmer_span", "random", "genemask_position", "global_pmi"])
def test_no_special_is_masked_or_injected(vocab, strategy):
    items = make_items(unk_every=17)
    dataset = make_dataset(vocab, items, strategy, centre_prob=0.2, leave_unmasked_prob=0.2, random_token_prob=0.4)
    mask_idx = vocab.index("<mask>")
    n_masked = 0
    for epoch in (1, 2):
        dataset.set_epoch(epoch)
        for i in range(len(dataset)):
            tokens = items[i]
            item = dataset[i]
            source, target, wide = item["source"], item["target"], item["wide"]
            special = tokens < vocab.nspecial
            masked = target.ne(PAD)
            n_masked += int(masked.sum())
            assert not (masked & special).any()
            assert torch.equal(source[special], tokens[special])
            assert not (source[~special] < vocab.nspecial).any()  # no special injected
            assert torch.equal(source[~masked], tokens[~masked])  # <mask>/random only where masked
            assert torch.equal(target[masked], tokens[masked])
            assert not (wide & ~masked).any()
            assert (source == mask_idx).sum() <= masked.sum()
    assert n_masked > 1000


def test_mask_is_a_pure_function_of_seed_epoch_and_index(vocab):
    items = make_items()
    a, b = make_dataset(vocab, items), make_dataset(vocab, items)
    a.set_epoch(3)
    b.set_epoch(3)
    forward = [a[i]["source"] for i in range(len(a))]
    backward = [b[i]["source"] for i in reversed(range(len(b)))][::-1]  # read order does not matter
    assert all(torch.equal(x, y) for x, y in zip(forward, backward, strict=True))
    b.set_epoch(4)
    assert sum(torch.equal(a[i]["target"], b[i]["target"]) for i in range(len(a))) < 5
    other_seed = make_dataset(vocab, items, seed=2)
    other_seed.set_epoch(3)
    assert sum(torch.equal(a[i]["target"], other_seed[i]["target"]) for i in range(len(a))) < 5


def test_global_pmi_mask_is_a_pure_function_of_seed_epoch_and_index_and_changes_by_epoch(vocab):
    items = make_items()
    a, b = make_dataset(vocab, items, "global_pmi"), make_dataset(vocab, items, "global_pmi")
    a.set_epoch(2)
    b.set_epoch(2)
    assert all(torch.equal(a[i]["target"], b[i]["target"]) for i in reversed(range(len(a))))
    batch = a.collater([a[i] for i in range(4)])
    assert batch["spans_are_global"] is True
    assert torch.equal(batch["masked_in_wide_span"], batch["target"].ne(PAD))  # every span is global
    b.set_epoch(3)
    # The spans follow the item's top tokens, so only their number m (drawn per epoch) moves them;
    # the replacement is drawn afresh too.
    long_items = [i for i in range(len(a)) if len(items[i]) > 300]
    assert len(long_items) > 20
    same_mask = sum(torch.equal(a[i]["target"].ne(PAD), b[i]["target"].ne(PAD)) for i in long_items)
    assert same_mask < 0.4 * len(long_items)
    assert not any(torch.equal(a[i]["source"], b[i]["source"]) for i in long_items)


@pytest.mark.parametrize(("curriculum", "local"), [("cm_step", "kmer_span"), ("cm_gems", "genemask")])
def test_curriculum_items_carry_both_candidates_each_the_plain_strategys_mask(vocab, curriculum, local):
    items = make_items(n=20)
    both = make_dataset(vocab, items, curriculum)
    local_, global_ = make_dataset(vocab, items, local), make_dataset(vocab, items, "global_pmi")
    for dataset in (both, local_, global_):
        dataset.set_epoch(5)
    for i in range(len(items)):
        item = both[i]
        assert torch.equal(item["source"], local_[i]["source"]) and torch.equal(item["target"], local_[i]["target"])
        assert len(item[MASK_CANDIDATES]) == 1
        assert torch.equal(item[MASK_CANDIDATES][0]["source"], global_[i]["source"])
        assert torch.equal(item[MASK_CANDIDATES][0]["target"], global_[i]["target"])
    batch = both.collater([both[i] for i in (3, 0, 7)])
    others = batch[MASK_CANDIDATES]
    assert batch["spans_are_global"] is False and others["masks"][0]["spans_are_global"] is True
    assert isinstance(others["batch_ids"], np.ndarray)  # stays on the host
    assert others["batch_ids"].tolist() == [3, 0, 7]
    plain = global_.collater([global_[i] for i in (3, 0, 7)])
    for key in ("target", "masked_in_wide_span", "mask_centres"):
        assert torch.equal(torch.as_tensor(others["masks"][0][key]), torch.as_tensor(plain[key]))
    assert torch.equal(others["masks"][0]["net_input"]["src_tokens"], plain["net_input"]["src_tokens"])
    assert MASK_CANDIDATES not in local_.collater([local_[0]])
    # Choosing a candidate gives exactly the plain strategy's batch.
    chosen = GeneMaskMaskDataset.batch_with_candidate(batch, 1)
    assert MASK_CANDIDATES not in chosen and chosen["spans_are_global"] is True
    assert torch.equal(chosen["target"], plain["target"]) and torch.equal(chosen["id"], plain["id"])
    first = GeneMaskMaskDataset.batch_with_candidate(batch, 0)
    assert first.keys() == local_.collater([local_[0]]).keys() and torch.equal(first["target"], batch["target"])


def test_batch_counts_the_mask_centres_drawn(vocab):
    items = make_items(n=8)
    dataset = make_dataset(vocab, items, "kmer_span", centre_prob=0.05)
    samples = [dataset[i] for i in range(8)]
    # Every centre is drawn with the item's own generator, as the selector draws them.
    expected = [
        int(((np.random.default_rng([1, 1, i]).random(len(items[i])) < 0.05) & (items[i].numpy() >= 4)).sum())
        for i in range(8)
    ]
    assert [s["centres"] for s in samples] == expected and sum(expected) > 0
    assert dataset.collater(samples)["mask_centres"] == sum(expected)


@pytest.mark.parametrize("strategy", ["kmer_span", "random", "cm_step"])
def test_batch_carries_the_leak_meters_counts_for_each_candidate(vocab, strategy):
    items = make_items(n=12)
    dataset = make_dataset(vocab, items, strategy)
    batch = dataset.collater([dataset[i] for i in range(12)])
    masks = [batch, *batch.get(MASK_CANDIDATES, {}).get("masks", [])]
    for mask in masks:
        reading = measure_leakage(mask["net_input"]["src_tokens"].numpy(), mask["target"].numpy(),
                                  dataset._is_regular, PAD, K)
        assert mask["leaked_tokens"] == reading.num_leaked
        assert mask["masked_spans"] == len(reading.span_lengths) > 0
        assert mask["hidden_bases"] == reading.hidden_bases
    # The criterion reads the counts of the candidate the train step keeps.
    chosen = GeneMaskMaskDataset.batch_with_candidate(batch, len(masks) - 1)
    assert chosen["hidden_bases"] == masks[-1]["hidden_bases"]


def test_leak_meter_of_non_overlapping_tokens_counts_bases_from_the_symbols(vocab):
    items = make_items(n=6)
    mask_idx = vocab.index("<mask>")
    dataset = GeneMaskMaskDataset(items, vocab, mask_idx, MaskingConfig("random", k=None, centre_prob=0.3), seed=1)
    batch = dataset.collater([dataset[i] for i in range(6)])
    source, target = batch["net_input"]["src_tokens"], batch["target"]
    masked = target.ne(PAD)
    unchanged = masked & source.eq(target)
    assert batch["leaked_tokens"] == int(unchanged.sum()) > 0  # non-overlapping: leaked only when unchanged
    assert batch["hidden_bases"] == K * int((masked & ~unchanged).sum())  # each hidden 3-mer hides 3 bases
    assert batch["masked_spans"] > 0


def test_seed_uses_the_full_seed_space(vocab):
    items = make_items(n=5)
    # fairseq's MaskTokensDataset squeezes seeds to hash % 1e6; seeds 1e6 apart must still differ.
    a, b = make_dataset(vocab, items, seed=7), make_dataset(vocab, items, seed=7 + 10**6)
    assert not all(torch.equal(a[i]["target"], b[i]["target"]) for i in range(5))


def test_mask_is_computed_once_per_item(vocab, monkeypatch):
    calls = []
    real = mask_dataset_module.select_mask_spans

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(mask_dataset_module, "select_mask_spans", counting)
    dataset = make_dataset(vocab, make_items(n=10))
    batch = dataset.collater([dataset[i] for i in range(10)])
    assert len(calls) == 10
    assert batch["net_input"]["src_tokens"].shape == batch["target"].shape


def test_collater_builds_the_mlm_batch(vocab):
    items = make_items(n=6)
    dataset = make_dataset(vocab, items)
    samples = [dataset[i] for i in (4, 1, 2)]
    batch = dataset.collater(samples)
    lengths = [len(items[i]) for i in (4, 1, 2)]
    assert batch["id"].tolist() == [4, 1, 2]
    assert batch["nsentences"] == 3
    assert batch["ntokens"] == sum(lengths)
    assert batch["net_input"]["src_lengths"].tolist() == lengths
    src = batch["net_input"]["src_tokens"]
    assert src.shape == (3, max(lengths))
    for row, (sample, length) in enumerate(zip(samples, lengths, strict=True)):
        assert torch.equal(src[row, :length], sample["source"])
        assert (src[row, length:] == PAD).all()
        assert torch.equal(batch["masked_in_wide_span"][row, :length], sample["wide"])
    assert batch["masked_in_wide_span"].dtype == torch.bool
    assert dataset.collater([]) == {}


def test_batches_respect_max_tokens_counting_bos(vocab):
    items = make_items(n=60)
    dataset = make_dataset(vocab, items)
    indices = np.argsort(dataset.sizes, kind="stable")
    batches = dataset.batch_by_size(indices, max_tokens=1024)
    assert sorted(np.concatenate(batches).tolist()) == list(range(60))
    for batch in batches:
        padded = len(batch) * max(dataset.sizes[batch])
        assert padded <= 1024
    kept, dropped = dataset.filter_indices_by_size(indices, 200)
    assert set(kept.tolist()) == {i for i in range(60) if len(items[i]) <= 200}
    assert len(dropped) == 60 - len(kept)


def test_pmi_strategies_need_matching_scores(vocab):
    items = make_items(n=3)
    config = MaskingConfig(k=K)
    with pytest.raises(ValueError, match="needs PMI token scores"):
        GeneMaskMaskDataset(items, vocab, vocab.index("<mask>"), config)
    with pytest.raises(ValueError, match="token scores for a dictionary"):
        GeneMaskMaskDataset(items, vocab, vocab.index("<mask>"), config, token_scores=np.zeros(10))


def _block_items(sizes):
    items = [torch.cat([torch.arange(10, 10 + s - 1), torch.tensor([EOS])]) for s in sizes]
    return ListDataset(items, np.array(sizes))


def test_item_blocks_keep_short_items_whole_and_split_long_ones():
    sizes = [5, 8, 9, 20, 1]
    blocks = ItemBlockDataset(_block_items(sizes), sizes, block_size=8, eos=EOS)
    got = [blocks[i].tolist() for i in range(len(blocks))]
    assert got == [
        [10, 11, 12, 13, EOS],
        [10, 11, 12, 13, 14, 15, 16, EOS],
        [10, 11, 12, 13, 14, 15, 16, EOS],  # 8 k-mers + </s>: split 7 + 1
        [17, EOS],
        [10, 11, 12, 13, 14, 15, 16, EOS],  # 19 k-mers: 7 + 7 + 5
        [17, 18, 19, 20, 21, 22, 23, EOS],
        [24, 25, 26, 27, 28, EOS],
        [EOS],
    ]
    assert blocks.sizes.tolist() == [len(b) for b in got]
    assert max(blocks.sizes) <= 8
    assert blocks.num_split_items == 2
