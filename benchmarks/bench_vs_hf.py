"""Training speed against what a user would pick instead: transformers' Trainer on a RobertaForMaskedLM.

Usage: python benchmarks/bench_vs_hf.py [--updates 30] [--batch-size 8] [--skip 10] [--repeats 3]
                                        [--work-dir DIR] [--genome FASTA]

Both sides pretrain the same model on the same data, one CPU thread each, in one run:

- ours: the recipes' pretraining command (``genemask_plugin/pretraining_command.py``): ``fairseq-train --task
  genemask_mlm --arch genemask_logo`` with the default strategy, GeneMask (2 layers, 256 hidden, 8 heads, FFN 3072,
  no dropout);
- theirs: ``RobertaForMaskedLM`` of the same dimensions (vocabulary 4 101, 514 learned positions, pad 1), trained
  by ``transformers.Trainer`` with its standard ``DataCollatorForLanguageModeling`` (15%, 80/10/10).

Same data: the bundled S288C chromosomes I and VI as 6-mers, every chunk 511 bases, and only the full-length
chunks kept (``genemask-preprocess --full-chunk-probability 1``), so every sequence is exactly ``<s>`` + 506
k-mers + ``</s>`` = 508 tokens and no batch holds padding. Same batch, updates, seed and optimiser: Adam
(0.9, 0.98), eps 1e-6, decoupled weight decay 0.01, no gradient clipping, lr 8e-4 with linear warm-up over the
first tenth and linear decay to 0. Data loading in the training process on both sides (``--num-workers 0``,
``dataloader_num_workers=0``), one thread (``OMP_NUM_THREADS=1``, ``torch.set_num_threads(1)``).

words/s = 508 tokens x sequences trained per second, from the end of update ``--skip`` to the end of the last
update (so start-up and the first updates are left out), by the same clocks on both sides: each run reads the wall
clock and its process's CPU time after every update (fairseq: around ``Trainer.train_step``; transformers: a
``TrainerCallback.on_step_end``). Per CPU-second is the fairer figure on a shared, loaded machine.
Best of ``--repeats`` interleaved runs, for each clock; the ratio is ours / theirs (target >= 1.0). The masking differs on
purpose (it is what each user would run); the Trainer also leaves biases and LayerNorm out of weight decay,
fairseq does not (no effect on speed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from genemask_plugin import pretraining_command
from genemask_preprocess.corpus.cli import main as preprocess_main
from genemask_preprocess.formats.indexed_dataset import IndexedDatasetWriter, read_indexed_dataset

REPO = Path(__file__).resolve().parents[1]
YEAST = REPO / "data" / "genomes" / "S288C_chr01_chr06.fa.gz"
TABLE = REPO / "data" / "pmi" / "human_fragments.pmi.tsv"
LR = 8e-4  # the paper's; the optimiser's other settings are the pretraining command's, on both sides
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


def rates(ends: list[tuple[float, float]], skip: int, tokens_per_update: int) -> dict[str, float]:
    """words/s by the wall clock and per CPU-second of the process, from update ``skip``'s end to the last's."""
    (wall0, cpu0), (wall1, cpu1) = ends[skip - 1], ends[-1]
    tokens = tokens_per_update * (len(ends) - skip)
    return {"wall": tokens / (wall1 - wall0), "cpu": tokens / (cpu1 - cpu0)}


def fairseq_args(data: Path, args) -> list[str]:
    return pretraining_command.pretraining_arguments(
        data, TABLE, args.work_dir, arch="genemask_logo", updates=args.updates, lr=LR, clip_norm="0.0",
        warmup=max(1, args.updates // 10), batch_size=args.batch_size, num_workers=0, device=["--cpu"],
        extra=["--required-batch-size-multiple", "1", "--disable-validation", "--no-save",
               "--log-format", "simple", "--log-interval", str(args.updates)])


def run_worker(side: str, data: Path, args, save_dir: Path) -> dict[str, float]:
    """One training run in its own process (one thread); returns its words/s."""
    cmd = [sys.executable, __file__, f"--_{side}-worker", str(data), "--updates", str(args.updates),
           "--batch-size", str(args.batch_size), "--skip", str(args.skip), "--work-dir", str(save_dir)]
    run = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **ONE_THREAD})
    if run.returncode != 0:
        raise SystemExit(f"{side} failed: {(run.stdout + run.stderr).strip().splitlines()[-1]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def update_clock() -> tuple[list[tuple[float, float]], object]:
    """A list that ``tick()`` appends (wall clock, this process's CPU time) to."""
    import time

    ends: list[tuple[float, float]] = []
    return ends, lambda: ends.append((time.perf_counter(), time.process_time()))


def fairseq_worker(data: Path, args) -> None:
    """Runs in its own process: fairseq-train, with a clock read after every update; prints one JSON line."""
    import torch

    torch.set_num_threads(1)
    from fairseq import trainer
    from fairseq_cli import train

    ends, tick = update_clock()
    train_step = trainer.Trainer.train_step

    def timed_train_step(self, *a, **kw):
        result = train_step(self, *a, **kw)
        tick()
        return result

    trainer.Trainer.train_step = timed_train_step  # the instrument only: one clock read per update
    sys.argv = ["fairseq-train", *fairseq_args(data, args)]
    train.cli_main()
    if len(ends) != args.updates:
        raise SystemExit(f"fairseq-train ran {len(ends)} updates, asked {args.updates}")
    tokens, sizes = read_indexed_dataset(data / "train")
    print(json.dumps(rates(ends, args.skip, (int(sizes.max()) + 1) * args.batch_size)))


def transformers_worker(data: Path, args) -> None:
    """Runs in its own process: train RobertaForMaskedLM with the Trainer; prints one JSON line."""
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

    ends, tick = update_clock()

    class Clock(TrainerCallback):
        def on_step_end(self, *_, **__):
            tick()

    training = TrainingArguments(
        output_dir=str(args.work_dir), max_steps=args.updates, per_device_train_batch_size=args.batch_size,
        learning_rate=LR, adam_beta1=pretraining_command.ADAM_BETAS[0],
        adam_beta2=pretraining_command.ADAM_BETAS[1], adam_epsilon=pretraining_command.ADAM_EPS,
        weight_decay=pretraining_command.WEIGHT_DECAY, max_grad_norm=0.0, optim="adamw_torch",
        lr_scheduler_type="linear", warmup_steps=max(1, args.updates // 10), seed=1, data_seed=1,
        use_cpu=True, dataloader_num_workers=0, save_strategy="no", logging_strategy="no",
        report_to="none", disable_tqdm=True,
    )
    collator = DataCollatorForLanguageModeling(tokenizer=tokenizer, mlm=True, mlm_probability=0.15)
    Trainer(model=model, args=training, train_dataset=train, data_collator=collator,
            callbacks=[Clock()]).train()
    if len(ends) != args.updates:
        raise SystemExit(f"the Trainer ran {len(ends)} updates, asked {args.updates}")
    print(json.dumps(rates(ends, args.skip, len(train[0]["input_ids"]) * args.batch_size)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=30, help="updates per run (default 30)")
    parser.add_argument("--batch-size", type=int, default=8, help="sequences per update (default 8)")
    parser.add_argument("--skip", type=int, default=10,
                        help="first updates left out of the timing; also fairseq's --log-interval (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per side (default 3)")
    parser.add_argument("--work-dir", type=Path, help="keep the data here (default: a temporary directory)")
    parser.add_argument("--genome", type=Path, default=YEAST, help="FASTA (default: bundled S288C chr I + VI)")
    parser.add_argument("--_transformers-worker", type=Path, dest="transformers_worker", help=argparse.SUPPRESS)
    parser.add_argument("--_fairseq-worker", type=Path, dest="fairseq_worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.transformers_worker:
        transformers_worker(args.transformers_worker, args)
        return
    if args.fairseq_worker:
        fairseq_worker(args.fairseq_worker, args)
        return
    if args.updates <= args.skip:
        parser.error("--updates must be larger than --skip")

    with tempfile.TemporaryDirectory() as tmp:
        work = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        data, tokens_per_seq = full_length_corpus(args.genome, work)
        n = len(read_indexed_dataset(data / "train")[1])
        if n < args.updates * args.batch_size:
            print(f"note: {n} sequences, fewer than {args.updates} x {args.batch_size}: fairseq starts a new epoch")
        runs: dict[str, list[dict[str, float]]] = {"fairseq": [], "transformers": []}
        for repeat in range(args.repeats):
            for side in runs:
                runs[side].append(run_worker(side, data, args, work / side))
            print(f"run {repeat + 1}/{args.repeats}: " + ", ".join(
                f"{side} {r[-1]['wall']:.0f} words/s ({r[-1]['cpu']:.0f} per CPU-second)" for side, r in runs.items()),
                flush=True)
    best = {side: {clock: max(r[clock] for r in rs) for clock in ("wall", "cpu")} for side, rs in runs.items()}
    print(f"\nMLM pretraining, LOGO shape (2 x 256, FFN 3072), batch {args.batch_size} x {tokens_per_seq} tokens, "
          f"{args.updates} updates (first {args.skip} not timed), 1 CPU thread, best of {args.repeats}:")
    print(f"  {'':68s} {'words/s':>9s} {'per CPU-s':>10s}")
    ours = f"ours   fairseq-train --task genemask_mlm --mask-strategy {pretraining_command.DEFAULT_STRATEGY}"
    names = {"fairseq": ours,
             "transformers": "theirs transformers Trainer, RobertaForMaskedLM + its MLM collator"}
    for side, name in names.items():
        print(f"  {name:68s} {best[side]['wall']:9.0f} {best[side]['cpu']:10.0f}")
    ratio = {clock: best["fairseq"][clock] / best["transformers"][clock] for clock in ("wall", "cpu")}
    print(f"  ratio ours / theirs: {ratio['wall']:.2f} by the wall clock, {ratio['cpu']:.2f} per CPU-second "
          "(target >= 1.0)")


if __name__ == "__main__":
    main()
