"""Benchmark sharded counting: ``genemask-pmi merge`` of S shards against one ``count`` of the same genome.

Usage: python benchmarks/bench_pmi_shards.py [--shards 8] [--max-n 10] [--mbp 24] [--genome FASTA] [--fai]

Measured in this run, each command as its own process with ``--workers 1`` (one CPU per
shard, as in a job array): the wall time, CPU time (user + system; on a shared machine the
steadier measure of cost) and peak memory (``ru_maxrss`` of the child, read
with ``resource.getrusage(RUSAGE_CHILDREN)`` in a wrapper process that runs only it) of one
whole count, of each of the S shards and of the merge. Prints the ratio merge / whole count
(target <= 0.10), the largest shard's peak memory, the shards' total time against the whole
(their overhead: hashing the inputs, and a sizing pass unless every input has a ``.fai``), and
checks that the merge is byte-identical to the whole count. By default the genome is a
synthetic plain FASTA of ``--mbp`` Mbp in 12 chromosomes with N gaps.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pmi import _synthetic  # noqa: E402

_WRAPPER = (
    "import json, resource, subprocess, sys, time\n"
    "start = time.perf_counter()\n"
    "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
    "seconds = time.perf_counter() - start\n"
    "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(json.dumps({'seconds': seconds, 'cpu': usage.ru_utime + usage.ru_stime,\n"
    "                  'peak_bytes': usage.ru_maxrss * 1024}))\n"  # ru_maxrss is in KiB on Linux
)


def measure(*args) -> dict:
    """Wall seconds, CPU seconds (user + system) and peak resident bytes of one ``genemask-pmi`` run."""
    cmd = [sys.executable, "-m", "genemask_preprocess.pmi.cli", *map(str, args)]
    out = subprocess.run([sys.executable, "-c", _WRAPPER, *cmd], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def same_arrays(a: Path, b: Path) -> bool:
    with np.load(a) as x, np.load(b) as y:
        return sorted(x.files) == sorted(y.files) and all(x[k].tobytes() == y[k].tobytes() for k in x.files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--max-n", type=int, default=10)
    parser.add_argument("--mbp", type=int, default=240, help="size of the synthetic genome (default: %(default)s)")
    parser.add_argument("--genome", type=Path, help="a FASTA genome instead of the synthetic one")
    parser.add_argument("--fai", action="store_true", help="index the synthetic genome first (no sizing pass)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        genome = args.genome.resolve() if args.genome else tmp / "synthetic.fa"
        if not args.genome:
            _synthetic(genome, args.mbp * 1_000_000, seed=3)
            if args.fai:
                import pysam

                pysam.faidx(str(genome))
        print(f"genome: {genome.name} ({genome.stat().st_size / 1e6:.0f} MB), --max-n {args.max_n}, "
              f"{args.shards} shards, --workers 1 per process")
        common = ("--max-n", args.max_n, "--workers", 1, "--quiet")
        whole = measure("count", genome, *common, "--out", tmp / "whole.npz")
        print(f"count (whole):           {whole['seconds']:7.2f} s wall, {whole['cpu']:6.2f} s CPU, "
              f"peak {whole['peak_bytes'] / 2**20:5.0f} MiB")
        shards = []
        for index in range(args.shards):
            out = tmp / f"shard{index}.npz"
            shards.append(measure("count", genome, *common, "--shard", f"{index}/{args.shards}", "--out", out))
        times = [s["seconds"] for s in shards]
        cpus = [s["cpu"] for s in shards]
        peaks = [s["peak_bytes"] / 2**20 for s in shards]
        print(f"count --shard I/{args.shards}:    {min(times):.2f} .. {max(times):.2f} s wall, "
              f"{min(cpus):.2f} .. {max(cpus):.2f} s CPU, peak {min(peaks):.0f} .. {max(peaks):.0f} MiB per shard; "
              f"{sum(cpus):.2f} s CPU in all")
        merge = measure("merge", *(tmp / f"shard{i}.npz" for i in range(args.shards)), "--out", tmp / "merged.npz",
                        "--quiet")
        print(f"merge of {args.shards} shards:       {merge['seconds']:7.2f} s wall, {merge['cpu']:6.2f} s CPU, "
              f"peak {merge['peak_bytes'] / 2**20:5.0f} MiB")
        identical = same_arrays(tmp / "whole.npz", tmp / "merged.npz")
        print(f"merged == whole count:   {identical}")
        print(f"ratio merge / count:     {merge['cpu'] / whole['cpu']:7.3f} CPU, "
              f"{merge['seconds'] / whole['seconds']:.3f} wall  (target <= 0.10)")
        print(f"ratio shards / count:    {sum(cpus) / whole['cpu']:7.3f} CPU  (the shards' total work; 1.00 = none "
              f"added)")
        print(f"largest shard's peak memory: {max(peaks):.0f} MiB (whole count: {whole['peak_bytes'] / 2**20:.0f} MiB)")
        if not identical:
            sys.exit("the merged counts differ from the whole count")


if __name__ == "__main__":
    main()
