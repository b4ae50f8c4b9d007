"""Benchmark: genemask-preprocess (direct binary) vs. its text path + fairseq-preprocess, same run, same input.

    python benchmarks/bench_preprocess.py [GENOME] [--k 6] [--workers 2] [--scale-test-mbp 250]

Default GENOME is the bundled yeast chromosomes I and VI (data/genomes/S288C_chr01_chr06.fa.gz,
0.5 Mbp); pass a bigger FASTA (e.g. the whole 12 Mbp S288C genome) as GENOME for
representative timings. Prints both wall times, their ratio, checks that both give
identical token arrays, and extrapolates the direct path to the 3.1 Gbp human genome: the fixed start-up cost
(measured on a 10 kbp genome in the same run) plus the per-base time.
``--scale-test-mbp N`` also times one chromosome-sized random record of N Mbp (chr1 is
248 Mbp) and reports the peak memory of the largest process.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_GENOME = ROOT / "data" / "genomes" / "S288C_chr01_chr06.fa.gz"
HUMAN_BASES = 3.1e9
BIN = Path(sys.executable).parent


def _timed(cmd: list) -> float:
    started = time.perf_counter()
    subprocess.run([str(c) for c in cmd], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("genome", nargs="?", default=str(DEFAULT_GENOME), metavar="GENOME",
                        help="FASTA to preprocess (default: the bundled yeast chromosomes)")
    parser.add_argument("--k", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scale-test-mbp", type=float, default=0, help="also time one random record of this size")
    args = parser.parse_args()

    from genemask_preprocess.formats.indexed_dataset import read_indexed_dataset

    work = Path(tempfile.mkdtemp(prefix="bench_preprocess."))
    try:
        tiny = work / "tiny.fa"
        tiny.write_text(">tiny\n" + "".join(np.random.default_rng(0).choice(list("ACGT"), size=10_000)) + "\n")
        options = ["--k", args.k, "--workers", args.workers, "--quiet", "--seed", 1]
        fixed = min(_timed([BIN / "genemask-preprocess", tiny, *options, "--out", work / f"tiny{i}"]) for i in range(3))
        common = [args.genome, *options]
        direct = _timed([BIN / "genemask-preprocess", *common, "--out", work / "direct"])
        text_write = _timed([BIN / "genemask-preprocess", *common, "--out", work / "text", "--format", "text"])
        fairseq = _timed([
            BIN / "fairseq-preprocess", "--only-source", "--srcdict", work / "text" / "dict.txt",
            "--trainpref", work / "text" / "train.txt", "--validpref", work / "text" / "valid.txt",
            "--destdir", work / "fairseq", "--workers", args.workers,
        ])
        for split in ("train", "valid"):
            ours, theirs = read_indexed_dataset(work / "direct" / split), read_indexed_dataset(work / "fairseq" / split)
            if not (np.array_equal(ours[0], theirs[0]) and np.array_equal(ours[1], theirs[1])):
                raise SystemExit(f"MISMATCH: {split} token arrays differ between the two paths")
        meta = json.loads((work / "direct" / "preprocess.json").read_text())
        text_mb = sum(p.stat().st_size for p in (work / "text").glob("*.txt")) / 1e6
        scale = _scale_test(work, args, options) if args.scale_test_mbp else None
    finally:
        shutil.rmtree(work, ignore_errors=True)

    bases = meta["bases"]["total"]
    tokens = sum(s["tokens"] for s in meta["splits"].values())
    text_path = text_write + fairseq
    print(f"genome: {args.genome} ({bases / 1e6:.2f} Mbp, {tokens / 1e6:.2f} M tokens, k={args.k}, workers={args.workers})")
    print(f"genemask-preprocess (binary):         {direct:7.2f} s  ({bases / direct / 1e6:.1f} Mbp/s)")
    print(f"text path: genemask-preprocess --format text {text_write:.2f} s ({text_mb:.0f} MB text)"
          f" + fairseq-preprocess --workers {args.workers} {fairseq:.2f} s = {text_path:.2f} s")
    print(f"ratio (text path / binary):           {text_path / direct:7.1f}x  (fairseq-preprocess alone: {fairseq / direct:.1f}x)")
    print("token arrays: identical")
    human = fixed + (direct - fixed) * HUMAN_BASES / bases
    print(f"fixed start-up cost (10 kbp genome): {fixed:.2f} s")
    print(f"extrapolated to 3.1 Gbp human: binary {human / 60:.1f} min (naive linear {direct * HUMAN_BASES / bases / 60:.1f} min), "
          f"text path {text_path * HUMAN_BASES / bases / 3600:.1f} h")
    if scale:
        seconds, mbp, peak_gb = scale
        print(f"scale test: one {mbp:.0f} Mbp record in {seconds:.1f} s ({mbp / seconds:.1f} Mbp/s, "
              f"3.1 Gbp at this rate: {HUMAN_BASES / 1e6 / (mbp / seconds) / 60:.1f} min), peak RSS {peak_gb:.2f} GB")


def _scale_test(work: Path, args, options) -> tuple[float, float, float]:
    n = int(args.scale_test_mbp * 1e6) // 60 * 60
    path = work / "scale.fa"
    rng = np.random.default_rng(1)
    with open(path, "wb") as handle:
        handle.write(b">scale\n")
        for lo in range(0, n, 60_000_000):
            m = min(60_000_000, n - lo)
            letters = np.frombuffer(b"ACGT", dtype=np.uint8)[rng.integers(0, 4, size=m, dtype=np.uint8)]
            if lo == 0:
                letters[m // 3 : m // 3 + 50_000] = ord("N")  # one assembly gap
            lines = np.concatenate([letters.reshape(-1, 60), np.full((m // 60, 1), ord("\n"), np.uint8)], axis=1)
            handle.write(lines.tobytes())
    # A wrapper process, so that the peak RSS is this run's (its workers included), not an earlier child's.
    probe = "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); " \
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    cmd = [sys.executable, "-c", probe, BIN / "genemask-preprocess", path, *options, "--out", work / "scale"]
    started = time.perf_counter()
    result = subprocess.run([str(c) for c in cmd], check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    return seconds, n / 1e6, int(result.stdout.split()[-1]) / 1e6


if __name__ == "__main__":
    main()
