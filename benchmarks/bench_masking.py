"""Benchmark GeneMask masking against fairseq's built-in ``masked_lm`` on yeast DNA.

Usage: python benchmarks/bench_masking.py [--items 3000] [--repeats 5] [--updates 30] [--train-repeats 2]
                                          [--skip-train] [--work-dir DIR] [--genome FASTA]

Data: ``genemask-preprocess`` (k=6) of ``--genome`` (default: the bundled S288C chromosomes I
and VI, which hold fewer than 3000 chunks, so every one is timed; give the whole S288C genome
for more) with every chunk 511 bases
(``--full-chunk-probability 1``), so both tasks see identical 508-token samples:
fairseq's ``--sample-break-mode complete`` puts exactly one such chunk in a
512-token block, as our task does. Everything is measured in this run, and only
the ratios are meant to be compared (the machine is shared):

1. Items/s of the full dataset item (mask drawn, source + target built), over the
   same shuffled indices: our ``genemask_mlm`` dataset with ``genemask`` and
   ``kmer_span`` against ``masked_lm``'s ``MaskTokensDataset`` stack. Best of R
   interleaved rounds. Target: genemask / masked_lm >= 1.0.
2. ``fairseq-train`` words/s, ``genemask_logo``, batch 10, CPU, default data
   loading (1 worker), U updates: ``--task genemask_mlm`` against ``--task
   masked_lm``. Best of R interleaved runs. Target: ratio >= 0.97.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from fairseq.tasks.masked_lm import MaskedLMConfig, MaskedLMTask

from genemask_plugin.masking.strategies import GENEMASK, KMER_SPAN
from genemask_plugin.tasks.genemask_mlm import GeneMaskMLMConfig, GeneMaskMLMTask
from genemask_preprocess.corpus.cli import main as preprocess_main

REPO = Path(__file__).resolve().parents[1]
YEAST = REPO / "data" / "genomes" / "S288C_chr01_chr06.fa.gz"
TABLE = REPO / "data" / "pmi" / "human_fragments.pmi.tsv"
PLUGIN = REPO / "genemask_plugin"
BIN = Path(sys.executable).parent


def build_yeast_corpus(genome: Path, out: Path) -> Path:
    if not (out / "train.idx").exists():
        argv = [str(genome), "--k", "6", "--out", str(out), "--full-chunk-probability", "1", "--quiet"]
        if preprocess_main(argv) != 0:
            raise SystemExit("genemask-preprocess failed")
    return out


def dataset_of(task):
    task.load_dataset("train")
    return task.dataset("train")


def items_per_second(dataset, indices) -> float:
    dataset.set_epoch(1)
    start = time.perf_counter()
    for i in indices:
        dataset[int(i)]
    return len(indices) / (time.perf_counter() - start)


def bench_items(data: Path, n_items: int, repeats: int) -> tuple[dict[str, float], int]:
    datasets = {
        "masked_lm (fairseq)": dataset_of(
            MaskedLMTask.setup_task(
                MaskedLMConfig(data=str(data), tokens_per_sample=512, sample_break_mode="complete", seed=1)
            )
        ),
    }
    for strategy in (GENEMASK.name, KMER_SPAN.name):
        cfg = GeneMaskMLMConfig(data=str(data), mask_strategy=strategy, pmi_table=str(TABLE), seed=1)
        datasets[f"genemask_mlm --mask-strategy {strategy}"] = dataset_of(GeneMaskMLMTask.setup_task(cfg))
    sizes = {name: len(ds) for name, ds in datasets.items()}
    if len(set(sizes.values())) != 1:
        raise SystemExit(f"the tasks built different sample counts: {sizes}")
    indices = np.random.default_rng(0).permutation(len(next(iter(datasets.values()))))[:n_items]
    best = dict.fromkeys(datasets, 0.0)
    for epoch in range(repeats):
        for name, ds in datasets.items():
            ds.set_epoch(epoch + 1)  # fresh masks, no cache hits
            best[name] = max(best[name], items_per_second(ds, indices))
    return best, len(indices)


def train_wps(data: Path, task: str, updates: int, save_dir: Path, extra_flags: tuple[str, ...] = ()) -> float:
    task_flags = (
        ["--task", "masked_lm", "--criterion", "masked_lm", "--sample-break-mode", "complete"]
        if task == "masked_lm"
        else ["--task", "genemask_mlm", "--criterion", "genemask_mlm", "--pmi-table", str(TABLE)]
    )
    cmd = [
        str(BIN / "fairseq-train"), str(data), "--user-dir", str(PLUGIN), *task_flags,
        "--arch", "genemask_logo", "--tokens-per-sample", "512", "--batch-size", "10",
        "--optimizer", "adam", "--lr", "1e-4", "--max-update", str(updates), "--cpu",
        "--disable-validation", "--no-save", "--save-dir", str(save_dir), "--seed", "1",
        "--log-format", "simple", "--log-interval", str(updates), *extra_flags,
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, check=True)
    out = run.stdout + run.stderr
    last = [line for line in out.splitlines() if "| train |" in line][-1]
    return float(re.search(r"\| wps ([\d.]+)", last).group(1))


def benchmark_parser(description: str) -> argparse.ArgumentParser:
    """The options this benchmark and bench_curriculum.py share."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--items", type=int, default=3000, help="dataset items timed per round")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds of the items/s benchmark")
    parser.add_argument("--updates", type=int, default=30, help="fairseq-train updates per run")
    parser.add_argument("--train-repeats", type=int, default=2, help="interleaved fairseq-train runs per setting")
    parser.add_argument("--skip-train", action="store_true", help="only the items/s benchmark")
    parser.add_argument("--work-dir", type=Path, help="keep the binarized yeast data here (default: a temp dir)")
    parser.add_argument("--genome", type=Path, default=YEAST,
                        help="FASTA to benchmark on (default: the bundled S288C chromosomes I and VI)")
    return parser


def main() -> None:
    args = benchmark_parser(__doc__.splitlines()[0]).parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = args.work_dir or Path(tmp)
        data = build_yeast_corpus(args.genome, work / f"{args.genome.name}_k6_511")
        best, timed = bench_items(data, args.items, args.repeats)
        base = best["masked_lm (fairseq)"]
        print(f"dataset items/s on {args.genome.name}, {timed} items, best of {args.repeats} rounds:")
        for name, rate in best.items():
            print(f"  {name:42s} {rate:9.0f} items/s   ratio {rate / base:5.2f}x")
        if args.skip_train:
            return
        wps = {"masked_lm": 0.0, "genemask_mlm": 0.0}
        for _ in range(args.train_repeats):
            for task in wps:
                wps[task] = max(wps[task], train_wps(data, task, args.updates, work / "ckpt"))
        print(f"fairseq-train words/s, genemask_logo, batch 10, CPU, {args.updates} updates, best of {args.train_repeats}:")
        for task, rate in wps.items():
            print(f"  --task {task:14s} {rate:9.0f} wps")
        print(f"  ratio genemask_mlm / masked_lm: {wps['genemask_mlm'] / wps['masked_lm']:.3f}")


if __name__ == "__main__":
    main()
