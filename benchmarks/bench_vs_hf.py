"""Training speed against what a user would pick instead: transformers' Trainer on a RobertaForMaskedLM.

Usage: python benchmarks/bench_vs_hf.py [--updates 30] [--batch-size 8] [--skip 10] [--repeats 3]
                                        [--work-dir DIR] [--genome FASTA]

Both sides pretrain the same model on the same data, one CPU thread each, in one run:

- ours: ``fairseq-train --task genemask_mlm --criterion genemask_mlm --arch genemask_logo --mask-strategy
  genemask`` (2 layers, 256 hidden, 8 heads, FFN 3072, no dropout);
- theirs: ``RobertaForMaskedLM`` of the same dimensions (vocabulary 4 101, 514 learned positions, pad 1), trained
  by ``transformers.Trainer`` with its standard ``DataCollatorForLanguageModeling`` (15%, 80/10/10).

Same data: the bundled S288C chromosomes I and VI as 6-mers, every chunk 511 bases, and only the full-length
chunks kept (``genemask-preprocess --full-chunk-probability 1``), so every sequence is exactly ``<s>`` + 506
k-mers + ``</s>`` = 508 tokens and no batch holds padding. Same batch, updates, seed and optimiser: Adam
(0.9, 0.98), eps 1e-6, decoupled weight decay 0.01, no gradient clipping, lr 8e-4 with linear warm-up over the
first tenth and linear decay to 0. Data loading in the training process on both sides (``--num-workers 0``,
``dataloader_num_workers=0``), one thread (``OMP_NUM_THREADS=1``, ``torch.set_num_threads(1)``).

words/s = 508 tokens x sequences trained per second of wall time, from the end of update ``--skip`` to the end of
the last update (so start-up and the first updates are left out), for both. fairseq's is read off its
``train_inner`` log lines, one per ``--skip`` updates; the Trainer's from a callback's clock at each update's end.
Best of ``--repeats`` interleaved runs; the ratio is ours / theirs (target >= 1.0). The masking differs on
purpose (it is what each user would run); the Trainer also leaves biases and LayerNorm out of weight decay,
fairseq does not (no effect on speed).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from genemask_preprocess.corpus.cli import main as preprocess_main
from genemask_preprocess.formats.indexed_dataset import IndexedDatasetWriter, read_indexed_dataset

REPO = Path(__file__).resolve().parents[1]
YEAST = REPO / "data" / "genomes" / "S288C_chr01_chr06.fa.gz"
TABLE = REPO / "data" / "pmi" / "human_fragments.pmi.tsv"
PLUGIN = REPO / "genemask_plugin"
LR, BETAS, EPS, WEIGHT_DECAY = 8e-4, (0.9, 0.98), 1e-6, 0.01
# The LOGO shape (genemask_plugin/models/genemask_roberta.py: genemask_logo).
LAYERS, HIDDEN, HEADS, FFN, MAX_POSITIONS = 2, 256, 8, 3072, 512
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
              "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}


def full_length_corpus(genome: Path, work: Path) -> tuple[Path, int]:
    """The 6-mer corpus with only its longest (full, 511-base) chunks; returns (data dir, tokens per sequence)."""
    built = work / "built"
    if not (built / "train.idx").exists():
        argv = [str(genome), "--k", "6", "--out", str(built), "--full-chunk-probability", "1",
                "--valid-fraction", "0", "--seed", "1", "--quiet", "--force"]
        if preprocess_main(argv) != 0:
            raise SystemExit("genemask-preprocess failed")
    tokens, sizes = read_indexed_dataset(built / "train")
    keep = sizes == sizes.max()
    data = work / "full_length"
    data.mkdir(exist_ok=True)
    with IndexedDatasetWriter(data / "train") as writer:
        writer.add_chosen(tokens, sizes, keep)
    shutil.copy(built / "dict.txt", data / "dict.txt")
    return data, int(sizes.max()) + 1  # + <s>


def inner_records(log: str) -> list[dict[str, float]]:
    """fairseq's ``train_inner`` log lines (``--log-format simple``) as dicts of numbers."""
    records = []
    for line in log.splitlines():
        if "| train_inner |" in line:
            fields = dict(re.findall(r"(\w+)=([-+.\deE]+|inf|nan)", line))
            records.append({k: float(v) for k, v in fields.items()})
    return records


def fairseq_words_per_second(data: Path, tokens_per_seq: int, args, save_dir: Path) -> float:
    warmup = max(1, args.updates // 10)
    cmd = [
        sys.executable, "-m", "fairseq_cli.train", str(data), "--user-dir", str(PLUGIN),
        "--task", "genemask_mlm", "--criterion", "genemask_mlm", "--arch", "genemask_logo",
        "--mask-strategy", "genemask", "--pmi-table", str(TABLE), "--tokens-per-sample", "512",
        "--optimizer", "adam", "--adam-betas", str(BETAS).replace(" ", ""), "--adam-eps", str(EPS),
        "--weight-decay", str(WEIGHT_DECAY), "--clip-norm", "0.0",
        "--lr", str(LR), "--lr-scheduler", "polynomial_decay", "--warmup-updates", str(warmup),
        "--total-num-update", str(args.updates), "--max-update", str(args.updates),
        "--batch-size", str(args.batch_size), "--required-batch-size-multiple", "1", "--seed", "1",
        "--cpu", "--num-workers", "0", "--disable-validation", "--no-save", "--save-dir", str(save_dir),
        "--log-format", "simple", "--log-interval", str(args.skip),
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **ONE_THREAD})
    if run.returncode != 0:
        raise SystemExit(f"fairseq-train failed: {(run.stdout + run.stderr).strip().splitlines()[-1]}")
    records = [r for r in inner_records(run.stdout + run.stderr) if r["num_updates"] > args.skip]
    if not records or records[-1]["num_updates"] != args.updates:
        raise SystemExit("fairseq-train logged no train_inner line after the skipped updates")
    # Each interval: sequences / its wall time = wps / wpb * bsz (as logged, over the interval).
    seconds = sum(args.skip * args.batch_size / (r["wps"] / r["wpb"] * r["bsz"]) for r in records)
    return tokens_per_seq * len(records) * args.skip * args.batch_size / seconds


def transformers_words_per_second(data: Path, tokens_per_seq: int, args, save_dir: Path) -> float:
    cmd = [sys.executable, __file__, "--_transformers-worker", str(data), "--updates", str(args.updates),
           "--batch-size", str(args.batch_size), "--skip", str(args.skip), "--work-dir", str(save_dir)]
    run = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **ONE_THREAD})
    if run.returncode != 0:
        raise SystemExit(f"transformers Trainer failed: {(run.stdout + run.stderr).strip().splitlines()[-1]}")
    result = json.loads(run.stdout.strip().splitlines()[-1])
    if result["tokens_per_sequence"] != tokens_per_seq:
        raise SystemExit(f"the Trainer saw {result['tokens_per_sequence']}-token sequences, fairseq {tokens_per_seq}")
    return result["words_per_second"]


def transformers_worker(data: Path, args) -> None:
    """Runs in its own process: train RobertaForMaskedLM with the Trainer; prints one JSON line."""
    import time

    import torch

    torch.set_num_threads(1)
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        DataCollatorForLanguageModeling,
        PreTrainedTokenizerFast,
        RobertaConfig,
        RobertaForMaskedLM,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    # fairseq's dictionary: <s> <pad> </s> <unk>, the k-mers of dict.txt, then <mask> (added by the task).
    symbols = ["<s>", "<pad>", "</s>", "<unk>"]
    symbols += [line.split()[0] for line in (data / "dict.txt").read_text().splitlines()] + ["<mask>"]
    word_level = Tokenizer(models.WordLevel({s: i for i, s in enumerate(symbols)}, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=word_level, bos_token="<s>", pad_token="<pad>",
                                        eos_token="</s>", unk_token="<unk>", mask_token="<mask>")
    tokens, sizes = read_indexed_dataset(data / "train")
    items = np.split(tokens.astype(np.int64), np.cumsum(sizes)[:-1])
    train = [{"input_ids": [0, *item.tolist()]} for item in items]  # <s> + k-mers + </s>, as our task builds

    config = RobertaConfig(
        vocab_size=len(symbols), hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
        intermediate_size=FFN, hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        max_position_embeddings=MAX_POSITIONS + 2, type_vocab_size=1, layer_norm_eps=1e-5,
        pad_token_id=1, bos_token_id=0, eos_token_id=2,
    )
    torch.manual_seed(1)
    model = RobertaForMaskedLM(config)

    class Clock(TrainerCallback):
        ends: list[float] = []

        def on_step_end(self, *_, **__):
            self.ends.append(time.perf_counter())

    training = TrainingArguments(
        output_dir=str(args.work_dir), max_steps=args.updates, per_device_train_batch_size=args.batch_size,
        learning_rate=LR, adam_beta1=BETAS[0], adam_beta2=BETAS[1], adam_epsilon=EPS,
        weight_decay=WEIGHT_DECAY, max_grad_norm=0.0, optim="adamw_torch",
        lr_scheduler_type="linear", warmup_steps=max(1, args.updates // 10), seed=1, data_seed=1,
        use_cpu=True, dataloader_num_workers=0, save_strategy="no", logging_strategy="no",
        report_to="none", disable_tqdm=True,
    )
    clock = Clock()
    collator = DataCollatorForLanguageModeling(tokenizer=tokenizer, mlm=True, mlm_probability=0.15)
    Trainer(model=model, args=training, train_dataset=train, data_collator=collator,
            callbacks=[clock]).train()
    ends = clock.ends
    if len(ends) != args.updates:
        raise SystemExit(f"the Trainer ran {len(ends)} updates, asked {args.updates}")
    seconds = ends[-1] - ends[args.skip - 1]
    tokens_per_seq = len(train[0]["input_ids"])
    print(json.dumps({"tokens_per_sequence": tokens_per_seq,
                      "words_per_second": tokens_per_seq * args.batch_size * (args.updates - args.skip) / seconds}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=30, help="updates per run (default 30)")
    parser.add_argument("--batch-size", type=int, default=8, help="sequences per update (default 8)")
    parser.add_argument("--skip", type=int, default=10,
                        help="first updates left out of the timing; also fairseq's --log-interval (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per side (default 3)")
    parser.add_argument("--work-dir", type=Path, help="keep the data here (default: a temporary directory)")
    parser.add_argument("--genome", type=Path, default=YEAST, help="FASTA (default: bundled S288C chr I + VI)")
    parser.add_argument("--_transformers-worker", type=Path, dest="worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        transformers_worker(args.worker, args)
        return
    if args.updates % args.skip or args.updates <= args.skip:
        parser.error("--updates must be a multiple of --skip and larger than it")

    with tempfile.TemporaryDirectory() as tmp:
        work = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        data, tokens_per_seq = full_length_corpus(args.genome, work)
        n = len(read_indexed_dataset(data / "train")[1])
        if n < args.updates * args.batch_size:
            print(f"note: {n} sequences, fewer than {args.updates} x {args.batch_size}: fairseq starts a new epoch")
        runs: dict[str, list[float]] = {"ours": [], "theirs": []}
        for repeat in range(args.repeats):
            runs["ours"].append(fairseq_words_per_second(data, tokens_per_seq, args, work / "fairseq"))
            runs["theirs"].append(transformers_words_per_second(data, tokens_per_seq, args, work / "hf"))
            print(f"run {repeat + 1}/{args.repeats}: ours {runs['ours'][-1]:.0f} words/s, "
                  f"theirs {runs['theirs'][-1]:.0f} words/s", flush=True)
    ours, theirs = max(runs["ours"]), max(runs["theirs"])
    print(f"\nMLM pretraining, LOGO shape (2 x 256, FFN 3072), batch {args.batch_size} x {tokens_per_seq} tokens, "
          f"{args.updates} updates (first {args.skip} not timed), 1 CPU thread, best of {args.repeats}:")
    print(f"  ours   fairseq-train --task genemask_mlm --mask-strategy genemask   {ours:8.0f} words/s")
    print(f"  theirs transformers Trainer, RobertaForMaskedLM + DataCollatorForLanguageModeling {theirs:8.0f} words/s")
    print(f"  ratio ours / theirs: {ours / theirs:.2f} (target >= 1.0)")


if __name__ == "__main__":
    main()
