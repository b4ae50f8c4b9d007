"""Benchmark ``genemask-pmi count --max-n 10`` + ``score`` against ``jellyfish count -m n`` for n = 1..10.

Usage: python benchmarks/bench_pmi.py [--workers W] [--repeats R] [--genome FASTA]

Prints, all measured in this run (timings on a shared machine are noisy, so compare
the ratios): our count + score time on the genome (default: the bundled 500 kbp
``data/genomes/S288C_chr01_chr06.fa.gz``; pass ``--genome`` for a bigger one), jellyfish's total over
n = 1..10 with the same threads, their ratio (target <= 1.0), the scaling of ``count``
from a 12 to a 48 Mbp synthetic genome (1.0 = linear) and the extrapolated time for
GRCh38 (3.1 Gbp). Skips the jellyfish part with a message if it is not installed
(Debian/Ubuntu: ``apt-get install jellyfish``).
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BUNDLED_GENOME = REPO / "data" / "genomes" / "S288C_chr01_chr06.fa.gz"
GRCH38_BASES = 3_100_000_000


def _timed(cmd: list[str], repeats: int) -> float:
    """Best wall time of ``repeats`` runs (the least disturbed by other load)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
    return best


def _pmi(*args) -> list[str]:
    return [sys.executable, "-m", "genemask_preprocess.pmi.cli", *map(str, args)]


def _ours(genome: Path, tmp: Path, workers: int, repeats: int) -> tuple[float, float]:
    counts, table = tmp / "counts.npz", tmp / "table.tsv"
    count = _timed(_pmi("count", genome, "--max-n", 10, "--out", counts, "--workers", workers, "--quiet"), repeats)
    score = _timed(_pmi("score", counts, "--out", table), repeats)
    return count, score


def _jellyfish(fasta: Path, tmp: Path, workers: int, repeats: int) -> list[float]:
    times = []
    for n in range(1, 11):
        out = tmp / f"jf{n}.jf"
        size = min(4**n, 1 << 24)  # hash sized to the possible n-mers, as a user would
        cmd = ["jellyfish", "count", "-m", str(n), "-s", str(size), "-t", str(workers), "-o", str(out), str(fasta)]
        times.append(_timed(cmd, repeats))
    return times


def _synthetic(path: Path, bases: int, seed: int) -> None:
    """A random genome in 12 'chromosomes' with a few N gaps, as plain FASTA."""
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    with open(path, "wb") as handle:
        for chrom, size in enumerate(np.full(12, bases // 12)):
            seq = letters[rng.integers(0, 4, size=size)]
            for gap in rng.integers(0, size - 1000, size=3):
                seq[gap : gap + 500] = ord("N")
            handle.write(f">chr{chrom + 1}\n".encode())
            for start in range(0, size, 1 << 20):  # long lines; the reader does not care
                handle.write(seq[start : start + (1 << 20)].tobytes() + b"\n")


def _gzip_read_per_base(path: Path) -> float:
    """Seconds per base the reader spends on a bgzip FASTA (it runs in the main process)."""
    from genemask_preprocess.formats.genome import open_genome

    start = time.perf_counter()
    bases = sum(len(record.sequence) for record in open_genome(path).records())
    return (time.perf_counter() - start) / bases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 8))
    parser.add_argument("--repeats", type=int, default=2, help="best of R runs per measurement")
    parser.add_argument("--genome", type=Path, default=BUNDLED_GENOME, help="FASTA genome (default: %(default)s)")
    args = parser.parse_args()
    args.genome = args.genome.resolve()
    os.chdir(REPO)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        print(f"genome: {args.genome} ({args.workers} workers, best of {args.repeats})")
        count, score = _ours(args.genome, tmp, args.workers, args.repeats)
        ours = count + score
        print(f"genemask-pmi count --max-n 10: {count:7.2f} s")
        print(f"genemask-pmi score (n=2..10):  {score:7.2f} s")
        print(f"genemask-pmi total:            {ours:7.2f} s")
        if shutil.which("jellyfish"):
            fasta = tmp / "genome.fa"
            opener = gzip.open if args.genome.suffix == ".gz" else open
            with opener(args.genome, "rb") as src, open(fasta, "wb") as dst:
                shutil.copyfileobj(src, dst)  # jellyfish reads plain FASTA; not timed
            jf = _jellyfish(fasta, tmp, args.workers, args.repeats)
            print("jellyfish count -m n:         " + " ".join(f"{t:.2f}" for t in jf))
            print(f"jellyfish total (n=1..10):     {sum(jf):7.2f} s")
            print(f"ratio ours / jellyfish:        {ours / sum(jf):7.2f}x  (target <= 1.0x)")
        else:
            print("jellyfish not found: skipping the comparison (apt-get install jellyfish)")

        small, large = tmp / "synth12.fa", tmp / "synth48.fa"
        _synthetic(small, 12_000_000, seed=1)
        _synthetic(large, 48_000_000, seed=2)
        cmd = lambda g: _pmi("count", g, "--max-n", 10, "--out", tmp / "s.npz", "--workers", args.workers, "--quiet")  # noqa: E731
        t12 = _timed(cmd(small), args.repeats)
        t48 = _timed(cmd(large), args.repeats)
        print(f"count 12 Mbp synthetic:        {t12:7.2f} s")
        print(f"count 48 Mbp synthetic:        {t48:7.2f} s")
        print(f"scaling (t48 / t12) / 4:       {t48 / t12 / 4:7.2f}  (1.00 = linear; < 1: fixed start-up cost)")
        per_base = (t48 - t12) / 36e6  # marginal cost, free of start-up time
        gunzip = _gzip_read_per_base(BUNDLED_GENOME)  # GRCh38 comes as .fa.gz
        human = t12 + (per_base + gunzip) * (GRCH38_BASES - 12e6) + score
        print(f"marginal count cost: {per_base * 1e9:.1f} ns/base, + {gunzip * 1e9:.1f} ns/base to read .fa.gz")
        print(f"extrapolated GRCh38 (3.1 Gbp, .fa.gz) count + score: {human / 60:.1f} min with {args.workers} workers")


if __name__ == "__main__":
    main()
