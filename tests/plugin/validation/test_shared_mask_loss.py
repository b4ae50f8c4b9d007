"""Shared-mask validation: the same masks for every checkpoint, the criterion's loss, the unigram floor."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from genemask_plugin.validation.shared_mask_loss import MASK_EPOCH, SharedMasks
from genemask_preprocess.corpus.unigram_floor import smoothed_unigram, token_counts, unigram_floor

PAD = 1


@pytest.fixture(scope="module")
def random_masks(skewed_corpus):
    return SharedMasks(skewed_corpus, "random", seed=1, batch_size=5)


def _masked_positions(masks):
    return [masks.dataset[i]["target"].ne(PAD).nonzero().view(-1).tolist() for i in range(len(masks.dataset))]


@pytest.mark.slow
def test_masks_do_not_depend_on_the_checkpoint_or_the_batching(skewed_corpus, checkpoints, random_masks):
    # The masks are the dataset's own, block by block; a second draw, batched otherwise, is identical.
    again = SharedMasks(skewed_corpus, "random", seed=1, batch_size=3)
    assert again.digest == random_masks.digest and again.masked_tokens == random_masks.masked_tokens
    assert _masked_positions(again) == _masked_positions(random_masks)
    seen = {}
    for strategy, path in checkpoints.items():  # two checkpoints, trained with different strategies
        batches = [(b["id"].tolist(), b["net_input"]["src_tokens"].clone(), b["target"].clone())
                   for b in random_masks.batches()]
        random_masks.score(random_masks.load_model(path))
        seen[strategy] = batches
    first, second = seen.values()
    assert [ids for ids, _, _ in first] == [ids for ids, _, _ in second]
    assert all(torch.equal(a[1], b[1]) and torch.equal(a[2], b[2]) for a, b in zip(first, second, strict=True))
    assert sum(int(t.ne(PAD).sum()) for _, _, t in first) == random_masks.masked_tokens > 1000


def test_another_seed_or_strategy_gives_other_masks(skewed_corpus, random_masks):
    assert SharedMasks(skewed_corpus, "random", seed=2).digest != random_masks.digest
    spans = SharedMasks(skewed_corpus, "kmer_span", seed=1)
    assert spans.digest != random_masks.digest and spans.blocks == random_masks.blocks


@pytest.mark.slow
def test_loss_is_the_brute_force_cross_entropy_of_a_tiny_model(checkpoints, random_masks):
    model = random_masks.load_model(checkpoints["kmer_span"])
    score = random_masks.score(model)
    total, correct, count = 0.0, 0, 0
    dataset = random_masks.dataset
    dataset.set_epoch(MASK_EPOCH)
    with torch.no_grad():
        for i in range(len(dataset)):  # one block at a time: no batching, no padding
            item = dataset[i]
            logits = model(item["source"][None])[0][0]
            masked = item["target"].ne(PAD)
            total += F.cross_entropy(logits[masked], item["target"][masked], reduction="sum").item()
            correct += int((logits[masked].argmax(-1) == item["target"][masked]).sum())
            count += int(masked.sum())
    assert count == score.masked_tokens
    assert score.loss_bits == pytest.approx(total / count / math.log(2), abs=1e-4)
    assert score.accuracy == pytest.approx(correct / count, abs=1e-12)
    assert 10 < score.loss_bits < 13


def _unigram_checkpoint(source, destination, data):
    """``source``'s checkpoint with an LM head that ignores its input and predicts train's smoothed unigram."""
    state = torch.load(source, map_location="cpu", weights_only=False)
    vocabulary = state["model"]["encoder.lm_head.bias"].numel()
    counts = token_counts(data / "train", vocabulary)
    regular = np.arange(4, vocabulary - 1)  # every k-mer: not the specials, not <mask>
    bias = torch.full((vocabulary,), -30.0)  # specials and <mask>: no mass to speak of
    bias[regular] = torch.from_numpy(np.log(smoothed_unigram(counts[regular]))).float()
    state["model"]["encoder.lm_head.bias"] = bias
    state["model"]["encoder.lm_head.weight"] = torch.zeros_like(state["model"]["encoder.lm_head.weight"])
    torch.save(state, destination)
    return destination, np.log2(smoothed_unigram(counts[regular]))


@pytest.mark.slow
def test_a_model_of_unigram_frequencies_scores_the_floor(skewed_corpus, checkpoints, random_masks, tmp_path):
    path, log2_p = _unigram_checkpoint(checkpoints["genemask"], tmp_path / "unigram.pt", skewed_corpus)
    score = random_masks.score(random_masks.load_model(path))
    # Exactly the unigram cross-entropy of the masked tokens ...
    targets = np.concatenate([random_masks.dataset[i]["target"].numpy() for i in range(len(random_masks.dataset))])
    targets = targets[targets != PAD]
    assert score.loss_bits == pytest.approx(-log2_p[targets - 4].mean(), abs=1e-4)
    # ... which samples the floor: the split's every regular token under the same distribution.
    floor = unigram_floor(skewed_corpus)
    assert 10.0 < floor.cross_entropy_bits < 10.6
    assert abs(score.loss_bits - floor.cross_entropy_bits) < 0.1
    assert abs(random_masks.score(random_masks.load_model(checkpoints["genemask"])).loss_bits
               - floor.cross_entropy_bits) > 0.5  # a barely trained model is not at the floor


def test_a_curriculum_cannot_be_a_set_of_shared_masks(skewed_corpus):
    with pytest.raises(ValueError, match="plain strategy"):
        SharedMasks(skewed_corpus, "cm_step", seed=1, pmi_table=None)
