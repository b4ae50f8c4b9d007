"""Benchmark CM-GEMS masking: ``global_pmi`` against ``genemask``, and a mask curriculum against plain genemask.

Usage: python benchmarks/bench_curriculum.py [--items 3000] [--repeats 5] [--updates 30] [--train-repeats 2]
                                             [--skip-train] [--work-dir DIR] [--genome FASTA]

Same data as benchmarks/bench_masking.py (its corpus and timing helpers): 508-token
samples of the bundled yeast chromosomes. Everything is measured in this run; only the
ratios are meant to be compared (the machine is shared):

1. Items/s of the full dataset item, over the same shuffled indices, best of R
   interleaved rounds: ``global_pmi`` against ``genemask`` (target >= 1.0), and the
   curriculum item, which carries both candidate masks (``--mask-strategy cm_step``:
   kmer_span + global_pmi; ``cm_gems``: genemask + global_pmi), or RandomMask's four
   stages (``random_mask``, against ``kmer_span``, its first stage); and the bytes of
   one item's arrays.
2. ``fairseq-train`` words/s, ``genemask_logo``, batch 10, CPU, 1 data-loader worker,
   U updates, best of R interleaved runs: ``--mask-strategy cm_step`` (max-update U,
   so global_pmi batches rise to ~100%) and ``cm_gems`` against plain ``--mask-strategy
   genemask``. Target: ratio >= 0.90.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from bench_masking import (
    TABLE,
    benchmark_parser,
    build_yeast_corpus,
    dataset_of,
    items_per_second,
    train_wps,
)

from genemask_plugin.data.genemask_mask_dataset import MASK_CANDIDATES
from genemask_plugin.masking.strategies import (
    CM_GEMS,
    CM_STEP,
    GENEMASK,
    GLOBAL_PMI,
    KMER_SPAN,
    RANDOM_MASK,
)
from genemask_plugin.tasks.genemask_mlm import GeneMaskMLMConfig, GeneMaskMLMTask


def bench_items(data: Path, n_items: int, repeats: int) -> tuple[dict[str, float], int]:
    settings = {
        f"--mask-strategy {GENEMASK.name}": {"mask_strategy": GENEMASK.name},
        f"--mask-strategy {GLOBAL_PMI.name}": {"mask_strategy": GLOBAL_PMI.name},
        f"--mask-strategy {CM_STEP.name} (2 masks)": {"mask_strategy": CM_STEP.name, "max_update": 1000},
        f"--mask-strategy {CM_GEMS.name} (2 masks)": {"mask_strategy": CM_GEMS.name},
        f"--mask-strategy {KMER_SPAN.name}": {"mask_strategy": KMER_SPAN.name},
        f"--mask-strategy {RANDOM_MASK.name} (4 masks)": {"mask_strategy": RANDOM_MASK.name, "max_update": 1000},
    }
    datasets = {
        name: dataset_of(GeneMaskMLMTask.setup_task(
            GeneMaskMLMConfig(data=str(data), pmi_table=str(TABLE), seed=1, **overrides)))
        for name, overrides in settings.items()
    }
    indices = np.random.default_rng(0).permutation(len(next(iter(datasets.values()))))[:n_items]
    best = dict.fromkeys(datasets, 0.0)
    for epoch in range(repeats):
        for name, ds in datasets.items():
            ds.set_epoch(epoch + 1)
            best[name] = max(best[name], items_per_second(ds, indices))
    return best, len(indices), datasets


def item_bytes(item: dict) -> int:
    """The bytes of an item's arrays, its candidates' included."""
    masks = [item, *item.get(MASK_CANDIDATES, [])]
    return sum(value.numel() * value.element_size() for mask in masks for value in mask.values()
               if hasattr(value, "element_size"))


def main() -> None:
    args = benchmark_parser(__doc__.splitlines()[0]).parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = args.work_dir or Path(tmp)
        data = build_yeast_corpus(args.genome, work / f"{args.genome.name}_k6_511")
        best, timed, datasets = bench_items(data, args.items, args.repeats)
        base = best[f"--mask-strategy {GENEMASK.name}"]
        print(f"dataset items/s on {args.genome.name}, {timed} items, best of {args.repeats} rounds:")
        for name, rate in best.items():
            print(f"  {name:38s} {rate:9.0f} items/s   ratio vs {GENEMASK.name} {rate / base:5.2f}x   "
                  f"{item_bytes(datasets[name][0]) / 1024:5.1f} KiB per item")
        if args.skip_train:
            return
        runs = {
            f"--mask-strategy {name}": ("--mask-strategy", name) for name in (GENEMASK.name, CM_STEP.name, CM_GEMS.name)
        }
        wps = dict.fromkeys(runs, 0.0)
        for _ in range(args.train_repeats):
            for name, flags in runs.items():
                wps[name] = max(wps[name], train_wps(data, "genemask_mlm", args.updates, work / "ckpt", flags))
        print(f"fairseq-train words/s, genemask_logo, batch 10, CPU, {args.updates} updates, "
              f"best of {args.train_repeats}:")
        plain = wps[f"--mask-strategy {GENEMASK.name}"]
        for name, rate in wps.items():
            print(f"  {name:28s} {rate:9.0f} wps   ratio vs {GENEMASK.name} {rate / plain:.3f}")


if __name__ == "__main__":
    main()
