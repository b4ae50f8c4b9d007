"""Benchmark the leak meter against the model's forward pass on the same batch of 512-token samples.

Usage: python benchmarks/bench_leak_meter.py [--batch-size 16] [--repeats 20] [--archs genemask_logo ...]
                                             [--strategy kmer_span] [--work-dir DIR] [--genome FASTA]

Data: benchmarks/bench_masking.py's corpus, 508-token samples (511-base chunks) of the bundled
yeast chromosomes. One batch of ``--batch-size`` samples, masked by the task's dataset; then, in
the same run, the median of R repeats of:

1. the leak meter as the collater runs it (``GeneMaskMaskDataset.leak_counts`` on the host batch);
2. the rest of the collater (building the batch from the items), for scale;
3. the forward pass (masked positions projected, as the criterion calls it; without autograd, so
   a lower bound on the training step) of each architecture, on ``--device`` (CPU by default;
   ``genemask_dnabert_base`` wants a GPU: on CPU a 16 x 512 batch takes many GB).

The leak meter runs in the data-loader workers, beside training, so (1) / (3) bounds what it
could cost the training loop if the workers were the bottleneck.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from bench_masking import TABLE, YEAST, build_yeast_corpus, dataset_of
from fairseq import options

from genemask_plugin.masking.strategies import KMER_SPAN, STRATEGIES
from genemask_plugin.tasks.genemask_mlm import GeneMaskMLMConfig, GeneMaskMLMTask

REPO = Path(__file__).resolve().parents[1]


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--archs", nargs="+", default=["genemask_tiny", "genemask_logo"])
    parser.add_argument("--strategy", default=KMER_SPAN.name, choices=list(STRATEGIES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work-dir", type=Path)
    parser.add_argument("--genome", type=Path, default=YEAST)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data = build_yeast_corpus(args.genome, (args.work_dir or Path(tmp)) / f"{args.genome.name}_k6_511")
        cfg = GeneMaskMLMConfig(data=str(data), mask_strategy=args.strategy, pmi_table=str(TABLE), seed=1,
                                max_update=1000)
        task = GeneMaskMLMTask.setup_task(cfg)
        dataset = dataset_of(task).dataset  # the masking dataset under the sort
        items = [dataset[i] for i in range(args.batch_size)]
        batch = dataset.collater(items)
        source, target = batch["net_input"]["src_tokens"].numpy(), batch["target"].numpy()
        shape = tuple(source.shape)
        meter = median_seconds(lambda: dataset.leak_counts(source, target), args.repeats)
        collate = median_seconds(lambda: dataset.collater(items), args.repeats) - meter
        print(f"batch {shape[0]} x {shape[1]} tokens, --mask-strategy {args.strategy}, "
              f"{int((target != task.dictionary.pad()).sum())} masked; median of {args.repeats}:")
        print(f"  leak meter (leak_counts)      {1e3 * meter:9.2f} ms")
        print(f"  rest of the collater          {1e3 * collate:9.2f} ms")
        device = torch.device(args.device)
        sample = {key: value.to(device) if torch.is_tensor(value) else value for key, value in batch.items()}
        sample["net_input"] = {k: v.to(device) for k, v in batch["net_input"].items()}
        masked_tokens = sample["target"].ne(task.dictionary.pad())
        for arch in args.archs:
            model_args = options.parse_args_and_arch(options.get_training_parser(), [
                str(data), "--user-dir", str(REPO / "genemask_plugin"), "--task", "genemask_mlm",
                "--criterion", "genemask_mlm", "--arch", arch])
            model = task.build_model(model_args).to(device).train()

            def forward(model=model):
                with torch.no_grad():
                    model(**sample["net_input"], masked_tokens=masked_tokens)[0].sum().item()

            forward()  # warm-up
            seconds = median_seconds(forward, max(3, args.repeats // 4))
            print(f"  forward pass, {arch:22s} {1e3 * seconds:9.2f} ms   leak meter / forward "
                  f"{100 * meter / seconds:7.3f}%")


if __name__ == "__main__":
    main()
