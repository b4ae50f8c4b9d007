"""Tests of the genemask_mlm task: data loading, PMI table checks, CLI flags, and end-to-end training."""

import dataclasses
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from fairseq import options, tasks
from fairseq.data import data_utils
from fairseq.models.roberta import RobertaModel

from genemask_plugin.masking.config import MaskingConfig
from genemask_plugin.masking.spans import centre_first_offsets
from genemask_plugin.tasks.genemask_mlm import (
    GeneMaskMLMConfig,
    GeneMaskMLMTask,
    GeneMaskTaskError,
    MaskingFlags,
)
from genemask_preprocess.corpus.cli import main as preprocess_main
from genemask_preprocess.errors import GeneMaskError
from genemask_preprocess.formats.indexed_dataset import IndexedDatasetWriter
from genemask_preprocess.formats.pmi_table import PMITableError
from genemask_preprocess.kmers import all_kmers

REPO = Path(__file__).resolve().parents[3]
PLUGIN = str(REPO / "genemask_plugin")
TABLE = REPO / "data" / "pmi" / "human_fragments.pmi.tsv"
BIN = Path(sys.executable).parent


def write_fasta(path: Path, n_records: int = 12, length: int = 3000, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    with open(path, "w") as handle:
        for r in range(n_records):
            dna = np.array(list("ACGT"))[rng.integers(0, 4, length)]
            dna[length // 2 : length // 2 + 20] = "N"  # chunks are split at N runs
            handle.write(f">rec{r}\n{''.join(dna)}\n")
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """``genemask-preprocess`` output (k=6) of a small random FASTA."""
    root = tmp_path_factory.mktemp("corpus")
    fasta = write_fasta(root / "genome.fa")
    assert preprocess_main([str(fasta), "--k", "6", "--out", str(root / "data"), "--workers", "1", "--quiet"]) == 0
    return root / "data"


def setup_task(data, **overrides):
    cfg = GeneMaskMLMConfig(data=str(data), seed=1, **{"pmi_table": str(TABLE), **overrides})
    return GeneMaskMLMTask.setup_task(cfg)


def test_config_turns_off_dataloader_reuse():
    cfg = GeneMaskMLMConfig()
    assert cfg.persistent_workers is False and cfg.reuse_dataloader is False
    assert cfg.tokens_per_sample == 512 and cfg.mask_strategy == "genemask"


def test_cli_flags_reach_the_task(corpus):
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(
        parser,
        [
            str(corpus), "--user-dir", PLUGIN, "--task", "genemask_mlm", "--criterion", "genemask_mlm",
            "--arch", "genemask_tiny", "--mask-strategy", "kmer_span", "--centre-prob", "0.03",
            "--wide-half-width", "4", "--high-fraction", "0.25", "--all-wide-below", "5",
            "--leave-unmasked-prob", "0.2", "--random-token-prob", "0.05", "--pmi-table", str(TABLE),
        ],
    )
    assert (args.mask_strategy, args.centre_prob, args.wide_half_width) == ("kmer_span", 0.03, 4)
    assert (args.high_fraction, args.all_wide_below) == (0.25, 5)
    assert (args.leave_unmasked_prob, args.random_token_prob) == (0.2, 0.05)
    assert args.persistent_workers is False and args.reuse_dataloader is False
    task = tasks.setup_task(args)
    assert task.masking.centre_prob == 0.03 and task.masking.strategy == "kmer_span"


def test_loads_genemask_preprocess_output(corpus):
    task = setup_task(corpus)
    assert len(task.dictionary) == 4101 and task.mask_idx == 4100 and task.kmer_size == 6
    assert np.isfinite(task.token_scores).sum() > 3000
    task.load_dataset("train")
    dataset = task.dataset("train")
    raw = data_utils.load_indexed_dataset(str(corpus / "train"), task.dictionary)
    assert len(dataset) == len(raw)
    for i in range(0, len(dataset), 7):
        item = dataset[i]  # SortDataset keeps indices
        tokens = torch.cat([torch.tensor([0]), raw[item["id"]]])
        assert item["source"][0] == 0 and item["source"][-1] == 2
        assert len(item["source"]) == len(tokens) <= 512
        masked = item["target"].ne(1)
        assert torch.equal(item["target"][masked], tokens[masked])
        assert torch.equal(item["source"][~masked], tokens[~masked])


def test_long_items_are_split_into_blocks(corpus):
    task = setup_task(corpus, tokens_per_sample=64)
    task.load_dataset("valid")
    dataset = task.dataset("valid")
    raw = data_utils.load_indexed_dataset(str(corpus / "valid"), task.dictionary)
    assert max(dataset.sizes) <= 64
    assert len(dataset) > len(raw)
    # Blocks cover the corpus: every k-mer exactly once, plus <s> and </s> per block.
    assert dataset.sizes.sum() - 2 * len(dataset) == raw.sizes.sum() - len(raw)


def test_loads_fairseq_preprocess_output_identically(corpus, tmp_path):
    fasta = write_fasta(tmp_path / "genome.fa")
    assert preprocess_main([str(fasta), "--k", "6", "--out", str(tmp_path / "text"), "--format", "text", "--workers", "1", "--quiet"]) == 0
    subprocess.run(
        [
            str(BIN / "fairseq-preprocess"), "--only-source", "--srcdict", str(tmp_path / "text" / "dict.txt"),
            "--validpref", str(tmp_path / "text" / "valid.txt"), "--destdir", str(tmp_path / "fs"), "--workers", "1",
        ],
        check=True,
        capture_output=True,
    )
    shutil.copy(corpus / "dict.txt", tmp_path / "fs" / "dict.txt")
    ours, theirs = setup_task(corpus), setup_task(tmp_path / "fs")
    ours.load_dataset("valid")
    theirs.load_dataset("valid")
    a, b = ours.dataset("valid"), theirs.dataset("valid")
    assert len(a) == len(b) > 0
    for i in range(len(a)):
        assert torch.equal(a[i]["source"], b[i]["source"]) and torch.equal(a[i]["target"], b[i]["target"])


def test_pmi_strategies_require_a_table(corpus):
    with pytest.raises(GeneMaskTaskError, match="needs --pmi-table"):
        GeneMaskMLMTask.setup_task(GeneMaskMLMConfig(data=str(corpus), seed=1))
    with pytest.raises(GeneMaskTaskError, match="needs --pmi-table"):
        GeneMaskMLMTask.setup_task(GeneMaskMLMConfig(data=str(corpus), seed=1, mask_strategy="genemask_position"))
    task = GeneMaskMLMTask.setup_task(GeneMaskMLMConfig(data=str(corpus), seed=1, mask_strategy="kmer_span"))
    assert task.token_scores is None


def test_masking_settings_are_declared_once_in_masking_config():
    """Every masking setting is a task field with MaskingConfig's default, help and type, and nothing more."""
    cfg = GeneMaskMLMConfig(data="d", seed=1)
    task_fields = {f.name: f for f in dataclasses.fields(GeneMaskMLMConfig)}
    settings = {f.name: f for f in dataclasses.fields(MaskingConfig)}
    flags = MaskingConfig.flags()
    assert set(flags) == {"mask_strategy", *(set(settings) - {"strategy", "k"})}
    assert [f.name for f in dataclasses.fields(MaskingFlags)] == ["_name", *flags]
    for name, setting in flags.items():
        assert getattr(cfg, name) == setting.default == settings[setting.name].default, name
        assert task_fields[name].metadata["help"] == setting.metadata["help"] == settings[setting.name].metadata["help"]
        if setting.metadata["choices"]:  # a ChoiceEnum of its choices (mask_strategy: the registry's names)
            assert [choice.value for choice in task_fields[name].type] == list(setting.metadata["choices"]), name
        else:
            assert task_fields[name].type == setting.type, name
    assert [choice.value for choice in task_fields["mask_strategy"].type] == list(settings["strategy"].metadata["choices"])
    assert [choice.value for choice in task_fields["cm_gems_rule"].type] == ["change", "drop"]
    # The parsed task config reads back as the same MaskingConfig, setting by setting.
    assert MaskingConfig.from_flags(cfg, k=6) == MaskingConfig()


@pytest.mark.parametrize(
    ("setting", "message"),
    [({"centre_prob": 1.5}, r"centre probability must be in \(0, 1\]"),
     ({"high_fraction": -0.1}, "high fraction"),
     ({"leave_unmasked_prob": 0.6, "random_token_prob": 0.6}, "must be <= 1")],
)
def test_bad_masking_settings_are_task_errors(corpus, setting, message):
    with pytest.raises(GeneMaskTaskError, match=message) as caught:
        GeneMaskMLMTask.setup_task(GeneMaskMLMConfig(data=str(corpus), seed=1, mask_strategy="kmer_span", **setting))
    assert isinstance(caught.value, GeneMaskError) and "\n" not in str(caught.value)


def test_a_checkpoint_loads_without_its_pmi_table(corpus, tmp_path):
    cfg = GeneMaskMLMConfig(data=str(corpus), seed=1, pmi_table=str(tmp_path / "moved.tsv"))
    task = GeneMaskMLMTask.setup_task(cfg, from_checkpoint=True)  # as from_pretrained / fine-tuning do
    assert task.token_scores is None and len(task.dictionary) == 4101
    with pytest.raises(PMITableError, match="moved.tsv"):
        task.load_dataset("valid")


def test_non_kmer_dictionary_masks_one_token_spans(tmp_path):
    """A SentencePiece-style dictionary: no k, so the base span is the centre token alone."""
    symbols = ["ACGT", "TTGA", "CCA", "G", "AAT", "TGCA", "GGG", "TA"]
    (tmp_path / "dict.txt").write_text("".join(f"{sym} 1\n" for sym in symbols))
    rng = np.random.default_rng(0)
    with IndexedDatasetWriter(tmp_path / "valid") as writer:
        writer.add_many([np.append(rng.integers(4, 12, 300), 2) for _ in range(40)])
    task = GeneMaskMLMTask.setup_task(GeneMaskMLMConfig(data=str(tmp_path), seed=1, mask_strategy="kmer_span"))
    assert task.kmer_size is None and task.masking.k is None and centre_first_offsets(task.masking.k).tolist() == [0]
    task.load_dataset("valid")
    fractions = [task.dataset("valid")[i]["target"].ne(1).float().mean().item() for i in range(40)]
    assert 0.015 < np.mean(fractions) < 0.035  # 0.025 centres, one token each
    with pytest.raises(PMITableError, match="not the fixed k-mer vocabulary"):
        setup_task(tmp_path)


@pytest.fixture(scope="module")
def token_corpus(tmp_path_factory):
    """Non-overlapping 3-mers of a genome with a repeat (real collocations), and its token n-gram table."""
    from genemask_preprocess.pmi.cli import main as pmi_main

    root = tmp_path_factory.mktemp("token_corpus")
    rng = np.random.default_rng(4)
    repeat = "".join(rng.choice(list("ACGT"), 45))
    records = ["".join(rng.choice(list("ACGT"), 300)).join([repeat] * 6) for _ in range(8)]
    (root / "genome.fa").write_text("".join(f">r{i}\n{seq}\n" for i, seq in enumerate(records)))
    argv = [root / "genome.fa", "--k", 3, "--stride", 3, "--out", root / "data", "--workers", 1, "--quiet",
            "--valid-fraction", 0.3]
    assert preprocess_main([str(a) for a in argv]) == 0
    assert pmi_main(["count", "--tokens", str(root / "data"), "--max-n", "4", "--out", str(root / "c.npz"),
                     "--quiet"]) == 0
    assert pmi_main(["score", str(root / "c.npz"), "--min-count", "3", "--out", str(root / "tokens.pmi.tsv")]) == 0
    return root / "data", root / "tokens.pmi.tsv"


def test_pmi_span_masks_whole_collocations_at_its_budget_deterministically(token_corpus):
    from genemask_plugin.masking.collocations import segment_collocations

    data, table = token_corpus
    task = setup_task(data, mask_strategy="pmi_span", pmi_table=str(table), pmi_span_max_n=4)
    collocations = task.token_scores
    assert task.kmer_size is None and max(collocations.codes) == 4 and len(collocations.codes[4]) > 0
    task.load_dataset("valid")
    dataset = task.dataset("valid")
    masked_total = regular_total = in_collocations = 0
    for index in range(len(dataset)):
        item = dataset[index]
        tokens = item["source"].clone()
        masked = item["target"].ne(1)
        tokens[masked] = item["target"][masked]
        units = segment_collocations(tokens.numpy(), collocations)
        per_unit = np.add.reduceat(masked.numpy().astype(int), units.starts)
        assert np.all((per_unit == 0) | (per_unit == units.lengths)), index  # whole units or nothing
        masked_total += int(masked.sum())
        regular_total += len(tokens) - 2
        in_collocations += int(item["wide"].sum())
    assert abs(masked_total / regular_total - 0.15) < 0.02 and in_collocations > 0
    again = setup_task(data, mask_strategy="pmi_span", pmi_table=str(table), pmi_span_max_n=4)
    again.load_dataset("valid")
    first = [dataset[i]["target"] for i in range(5)]
    assert all(torch.equal(a, again.dataset("valid")[i]["target"]) for i, a in enumerate(first))
    dataset.set_epoch(2)
    assert not all(torch.equal(a, dataset[i]["target"]) for i, a in enumerate(first))


def test_each_tokenization_refuses_the_pmi_strategies_not_made_for_it(corpus, token_corpus):
    data, table = token_corpus
    with pytest.raises(PMITableError, match="holds non-overlapping 3-mers: .*--mask-strategy pmi_span") as caught:
        setup_task(data, mask_strategy="genemask")
    assert "\n" not in str(caught.value)
    with pytest.raises(PMITableError, match="pmi_span masks collocations of non-overlapping tokens; this dictionary "
                                            "holds overlapping 6-mers"):
        setup_task(corpus, mask_strategy="pmi_span", pmi_table=str(table))
    span = setup_task(data, mask_strategy="kmer_span")  # defined: no neighbour shares a base, the span is the token
    assert span.kmer_size is None and centre_first_offsets(span.masking.k).tolist() == [0]


def _table(path: Path, rows, header="ngram\tn\tcount\tnaive_pmi\tpmi\tnpmi\trank"):
    path.write_text(header + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows))
    return path


def test_missing_malformed_or_mismatched_tables_are_rejected(corpus, tmp_path):
    full_k5 = [(kmer, 5, 200, 1.0, 1.0, 0.5, i + 1) for i, kmer in enumerate(all_kmers(5))]
    few_k6 = [(kmer, 6, 200, 1.0, 1.0, 0.5, i + 1) for i, kmer in enumerate(all_kmers(6)[:100])]
    cases = {
        "missing": (tmp_path / "absent.tsv", "absent.tsv"),
        "wrong k": (_table(tmp_path / "k5.tsv", full_k5), "n = 6"),
        "too few k-mers": (_table(tmp_path / "few.tsv", few_k6), "have no score"),
        "bad header": (_table(tmp_path / "hdr.tsv", few_k6, header="kmer\tscore"), "hdr.tsv"),
        "bad number": (_table(tmp_path / "num.tsv", [("AAAAAA", 6, 200, "x", 1.0, 0.5, 1)]), "num.tsv"),
    }
    for name, (path, message) in cases.items():
        with pytest.raises(PMITableError, match=message) as caught:
            setup_task(corpus, pmi_table=str(path))
        assert "\n" not in str(caught.value), name  # one line for the user


def test_hand_made_table_scores_the_right_tokens(corpus, tmp_path):
    kmers = all_kmers(6)
    rows = [(kmer, 6, 200, 0.0, 0.0, float(i) / 4096, 4096 - i) for i, kmer in enumerate(kmers)]
    task = setup_task(corpus, pmi_table=str(_table(tmp_path / "t.tsv", rows)))
    assert np.isneginf(task.token_scores[[0, 1, 2, 3, 4100]]).all()
    np.testing.assert_allclose(task.token_scores[4:4100], np.arange(4096) / 4096, rtol=1e-6)


# ---------------------------------------------------------------- end to end


def _env():
    env = dict(os.environ)
    env.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)  # safe loading must work without it
    env["PYTHONPATH"] = str(REPO)
    env["OMP_NUM_THREADS"] = "1"
    return env


TRAIN_FLAGS = [
    "--user-dir", PLUGIN, "--task", "genemask_mlm", "--criterion", "genemask_mlm", "--arch", "genemask_tiny",
    "--pmi-table", str(TABLE), "--optimizer", "adam", "--lr", "5e-4", "--batch-size", "8", "--cpu",
    "--log-format", "simple", "--log-interval", "10", "--seed", "3",
]


def _train(data, save_dir, record, *extra):
    cmd = [sys.executable, str(Path(__file__).with_name("mask_recording_train.py")), str(record), str(data), *TRAIN_FLAGS,
           "--save-dir", str(save_dir), *extra]
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)


def _records(path):
    by_epoch = defaultdict(dict)
    for line in Path(path).read_text().splitlines():
        row = json.loads(line)
        by_epoch[row["epoch"]][row["id"]] = row["masked"]
    return by_epoch


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    fasta = write_fasta(root / "genome.fa", n_records=10, length=6000, seed=1)
    subprocess.run([str(BIN / "genemask-preprocess"), str(fasta), "--k", "6", "--out", str(root / "data"), "--quiet"],
                   check=True, env=_env())
    return root


@pytest.mark.slow
def test_train_two_epochs_resume_and_validate(small_corpus):
    root, data = small_corpus, small_corpus / "data"
    run1 = _train(data, root / "ckpt1", root / "masks1.jsonl", "--max-epoch", "2", "--num-workers", "2")
    assert run1.returncode == 0, run1.stderr[-3000:]
    masks = _records(root / "masks1.jsonl.rank0")
    assert set(masks) == {1, 2} and masks[1].keys() == masks[2].keys()
    ids = sorted(masks[1])
    changed = sum(masks[1][i] != masks[2][i] for i in ids)
    assert changed >= 0.8 * len(ids), "masks must change between epochs with --num-workers 2"

    # The masks the workers produced are the dataset's pure function of (seed, epoch, index).
    task = GeneMaskMLMTask.setup_task(GeneMaskMLMConfig(data=str(data), seed=3, pmi_table=str(TABLE)))
    task.load_dataset("train")
    for epoch in (1, 2):
        task.dataset("train").set_epoch(epoch)
        for i in ids[:20]:
            assert task.dataset("train")[i]["target"].ne(1).nonzero().view(-1).tolist() == masks[epoch][i]

    # Resume from the end-of-epoch-1 checkpoint in a fresh directory: epoch 2 sees the same masks.
    run2 = _train(data, root / "ckpt2", root / "masks2.jsonl", "--max-epoch", "2", "--num-workers", "0",
                  "--restore-file", str(root / "ckpt1" / "checkpoint1.pt"))
    assert run2.returncode == 0, run2.stderr[-3000:]
    assert re.search(r"Loaded checkpoint \S*checkpoint1.pt \(epoch 2 @ \d+ updates\)", run2.stdout + run2.stderr)
    resumed = _records(root / "masks2.jsonl.rank0")
    assert set(resumed) == {2}
    assert resumed[2] == masks[2]

    validate = subprocess.run(
        [str(BIN / "fairseq-validate"), str(data), "--user-dir", PLUGIN, "--task", "genemask_mlm",
         "--path", str(root / "ckpt2" / "checkpoint_last.pt"), "--batch-size", "8", "--cpu", "--valid-subset", "valid"],
        env=_env(), capture_output=True, text=True, timeout=120,
    )
    assert validate.returncode == 0, validate.stderr[-3000:]
    assert "valid on 'valid' subset | loss" in validate.stdout + validate.stderr

    # The hub interface loads the checkpoint too (no BPE: k-mer tokens are given as ids).
    hub = RobertaModel.from_pretrained(str(root / "ckpt2"), "checkpoint_last.pt", str(data), bpe=None, user_dir=PLUGIN)
    assert hub.extract_features(torch.tensor([[0, 100, 200, 300, 2]])).shape == (1, 5, 64)


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_process_cpu_distributed_training(small_corpus):
    root, data = small_corpus, small_corpus / "data"
    port = _free_port()
    procs = []
    for rank in (0, 1):
        cmd = [
            sys.executable, str(Path(__file__).with_name("mask_recording_train.py")), str(root / "ddp.jsonl"), str(data),
            *TRAIN_FLAGS, "--save-dir", str(root / "ckpt_ddp"), "--max-update", "6", "--num-workers", "0",
            "--distributed-world-size", "2", "--distributed-rank", str(rank),
            "--distributed-init-method", f"tcp://127.0.0.1:{port}", "--distributed-no-spawn",
            "--distributed-backend", "gloo", "--ddp-backend", "legacy_ddp",
        ]
        procs.append(subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for p, out in zip(procs, outputs, strict=True):
        assert p.returncode == 0, out[-3000:]
    assert "num_updates 6" in outputs[0] or "num_updates=6" in outputs[0]
    rank0, rank1 = (_records(root / f"ddp.jsonl.rank{r}")[1] for r in (0, 1))
    assert len(rank0) >= 30 and len(rank1) >= 30  # 6 updates x 8 sequences on each rank
    assert not set(rank0) & set(rank1), "ranks must see different sequences"
    masks0 = {tuple(m) for m in rank0.values() if m}
    masks1 = {tuple(m) for m in rank1.values() if m}
    assert masks0 and masks1 and not masks0 & masks1
