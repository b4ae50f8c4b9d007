"""``--sample-break-mode complete`` in the genemask_mlm task: packed blocks, masks, centres, pairing, resume."""

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from fairseq.data import data_utils
from test_genemask_mlm_task import BIN, TABLE, TRAIN_FLAGS, _env

from genemask_plugin.tasks.genemask_mlm import GeneMaskMLMConfig, GeneMaskMLMTask

REPO = Path(__file__).resolve().parents[3]
FRAGMENTS = REPO / "data" / "genomes" / "human_fewshot_fragments.fa.gz"
PAD, EOS = 1, 2


def _preprocess(fasta, out):
    subprocess.run([str(BIN / "genemask-preprocess"), str(fasta), "--k", "6", "--out", str(out), "--seed", "1",
                    "--quiet"], check=True, env=_env())
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Short records of varied lengths (20-400 bp) and a few long ones, as in a fragments corpus."""
    root = tmp_path_factory.mktemp("packing")
    rng = np.random.default_rng(4)
    lengths = [*rng.integers(20, 400, 300), 1500, 3000]
    with open(root / "genome.fa", "w") as handle:
        for r, length in enumerate(lengths):
            handle.write(f">r{r}\n{''.join(rng.choice(list('ACGT'), size=length))}\n")
    return _preprocess(root / "genome.fa", root / "data")


@pytest.fixture(scope="module")
def fragments(tmp_path_factory):
    """The bundled human fragments: 59 tokens per item on average (median 36)."""
    return _preprocess(FRAGMENTS, tmp_path_factory.mktemp("fragments") / "data")


def load(data, split="valid", **overrides):
    cfg = GeneMaskMLMConfig(data=str(data), **{"seed": 1, "pmi_table": str(TABLE), **overrides})
    task = GeneMaskMLMTask.setup_task(cfg)
    task.load_dataset(split)
    return task, task.dataset(split)


def unmasked_tokens(item):
    """The block as it was before masking (the target holds the original token where masked)."""
    return torch.where(item["target"].ne(PAD), item["target"], item["source"])


@pytest.mark.parametrize("strategy", ["genemask", "kmer_span", "random"])
def test_complete_blocks_hold_whole_items_and_no_special_is_masked(corpus, strategy):
    task, dataset = load(corpus, sample_break_mode="complete", mask_strategy=strategy, centre_prob=0.2)
    raw = data_utils.load_indexed_dataset(str(corpus / "valid"), task.dictionary)
    assert max(raw.sizes) <= 511  # every item fits a block, so none may be cut
    blocks = [dataset[i] for i in range(len(dataset))]  # block i, in corpus order
    originals = [unmasked_tokens(b) for b in blocks]
    assert all(o[0] == task.dictionary.bos() and len(o) <= 512 for o in originals)
    # The blocks, <s> removed, are the items end to end: nothing cut, every </s> kept.
    assert torch.equal(torch.cat([o[1:] for o in originals]), torch.cat([raw[i] for i in range(len(raw))]))
    assert sum(int(o.eq(EOS).sum()) for o in originals) == len(raw)
    ends = np.cumsum([len(o) - 1 for o in originals])
    item_ends = set(np.cumsum(raw.sizes).tolist())
    assert set(ends.tolist()) <= item_ends  # a block ends where an item ends
    assert len(blocks) < len(raw) / 2
    masked = torch.cat([b["target"].ne(PAD) for b in blocks])
    tokens = torch.cat(originals)
    assert masked.any() and not (masked & (tokens < task.dictionary.nspecial)).any()
    assert not (masked & tokens.eq(task.mask_idx)).any()
    # A span may run over the </s> between two items: the </s> is skipped, the tokens either side masked.
    if strategy != "random":
        position = torch.arange(len(tokens))
        eos = position[tokens.eq(EOS)][:-1]
        assert (masked[eos - 1] & masked[eos + 1]).any()


def test_eos_mode_is_unchanged_by_default(corpus):
    task, dataset = load(corpus)
    assert task.cfg.sample_break_mode == "eos"
    raw = data_utils.load_indexed_dataset(str(corpus / "valid"), task.dictionary)
    assert len(dataset) == len(raw)
    assert all(torch.equal(unmasked_tokens(dataset[i])[1:], raw[i]) for i in range(len(raw)))


def test_strategies_with_one_seed_see_the_same_blocks_in_the_same_batches(corpus):
    """Pairing: only the masks differ between strategies, never the blocks or the batch order."""
    views = []
    for strategy in ("genemask", "kmer_span", "random"):
        task, dataset = load(corpus, "train", sample_break_mode="complete", mask_strategy=strategy)
        iterator = task.get_batch_iterator(dataset, max_sentences=3, seed=1, epoch=2)
        batches = [b.tolist() for b in iterator.frozen_batches]
        shuffled = [batch["id"].tolist() for batch in iterator.next_epoch_itr(shuffle=True)]
        dataset.set_epoch(2)
        blocks = [unmasked_tokens(dataset[i]).tolist() for i in range(len(dataset))]
        masks = [dataset[i]["target"].ne(PAD).nonzero().view(-1).tolist() for i in range(len(dataset))]
        views.append((batches, shuffled, blocks, masks))
    assert all(view[:3] == views[0][:3] for view in views)
    assert views[0][3] != views[1][3] != views[2][3]


def _mean_centres(dataset):
    return float(np.mean([dataset[i]["centres"] for i in range(len(dataset))]))


def test_packed_blocks_give_genemask_centres_to_rank_on_the_bundled_corpus(fragments):
    """One item per block gives GeneMask about one centre to rank; packed blocks give it about 7.5.

    Greedy packing in corpus order is the fullest packing that keeps items consecutive, and the
    bundled file holds its 296-token Prom-300 fragments together (two never share a block), so the
    blocks average 434 tokens, not 511: 7.5 centres at the paper's 0.0176, not 9.
    """
    _, packed = load(fragments, "train", sample_break_mode="complete")
    _, single = load(fragments, "train")
    assert len(packed) < len(single) / 7
    assert np.mean(packed.sizes) > 420
    centres = _mean_centres(packed)
    assert centres >= 7.0, centres
    assert _mean_centres(single) < 1.2


# ---------------------------------------------------------------- end to end


def _train(data, save_dir, record, *extra):
    cmd = [sys.executable, str(REPO / "tests" / "plugin" / "tasks" / "mask_recording_train.py"), str(record),
           str(data), *TRAIN_FLAGS, "--save-dir", str(save_dir), "--no-epoch-checkpoints",
           "--sample-break-mode", "complete", "--tokens-per-sample", "256", "--batch-size", "16", *extra]
    run = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=400)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout + run.stderr


def _records(path):
    """``{update: {block: (epoch, masked positions)}}`` of a recorded run."""
    rows = defaultdict(dict)
    for line in Path(path).read_text().splitlines():
        row = json.loads(line)
        rows[row["update"]][row["id"]] = (row["epoch"], row["masked"])
    return rows


@pytest.mark.slow
def test_complete_masks_are_the_same_with_workers_and_after_a_mid_epoch_resume(corpus, tmp_path):
    log = _train(corpus, tmp_path / "a", tmp_path / "a.jsonl", "--max-update", "30", "--num-workers", "2",
                 "--save-interval-updates", "10")
    assert "centres_per_block" in log
    full = _records(tmp_path / "a.jsonl.rank0")
    assert set(full) == set(range(30))
    assert {epoch for rows in full.values() for epoch, _ in rows.values()} == {1, 2}
    # What the workers masked is the dataset's pure function of (seed, epoch, block).
    _, dataset = load(corpus, "train", sample_break_mode="complete", tokens_per_sample=256, seed=3)
    for rows in full.values():
        for index, (epoch, masked) in rows.items():
            dataset.set_epoch(epoch)
            assert dataset[index]["target"].ne(PAD).nonzero().view(-1).tolist() == masked
    # Resumed mid-epoch at update 10 with no data workers: the same blocks, batches and masks.
    _train(corpus, tmp_path / "b", tmp_path / "b.jsonl", "--max-update", "30", "--num-workers", "0",
           "--restore-file", str(tmp_path / "a" / "checkpoint_1_10.pt"))
    resumed = _records(tmp_path / "b.jsonl.rank0")
    assert resumed == {update: rows for update, rows in full.items() if update >= 10}
