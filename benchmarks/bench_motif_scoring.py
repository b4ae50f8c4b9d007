"""Benchmark the vectorised k-mer x PWM scoring of ``genemask-motifs`` against Biopython's own scorer.

Usage: python benchmarks/bench_motif_scoring.py [--k 6] [--motifs 40] [--repeats 3]

Both sides compute the same thing, the best relative score of every k-mer against
each motif over both strands, on JASPAR CORE vertebrate motifs with ``k >= L``
(where Biopython's ``pssm.calculate`` scores a k-mer directly): the baseline calls
``calculate`` once per k-mer and strand; ours is one einsum per motif and strand.
It checks that the scores agree, then prints both times (best of R, measured in
this run) and their ratio, plus the time to score all 4^k k-mers against every
motif of the release (the full ``genemask-motifs`` scoring step).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from Bio.Seq import Seq

from genemask_preprocess.kmers import kmer_of_code
from genemask_preprocess.motifs.jaspar import load_jaspar_motifs
from genemask_preprocess.motifs.pwm_scoring import (
    best_relative_scores,
    kmer_onehot,
    score_kmers_against_motifs,
    scoring_matrix,
)


def biopython_scores(motif, kmers: list[Seq]) -> np.ndarray:
    pssm = motif.pssm
    reverse = pssm.reverse_complement()
    low, span = pssm.min, pssm.max - pssm.min
    best = [max(pssm.calculate(s).max(), reverse.calculate(s).max()) for s in kmers]
    return (np.array(best, dtype=np.float64) - low) / span


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=6)
    parser.add_argument(
        "--motifs", type=int, default=40, help="motifs with length <= k in the comparison"
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    release, motifs = load_jaspar_motifs()
    short = [m for m in motifs if m.length <= args.k][: args.motifs]
    matrices = [scoring_matrix(m) for m in short]
    kmers = [Seq(kmer_of_code(c, args.k)) for c in range(4**args.k)]
    onehot = kmer_onehot(args.k)

    ours = np.array([best_relative_scores(m, args.k, "embedded", 0.0, onehot)[0] for m in matrices])
    theirs = np.array([biopython_scores(m, kmers) for m in short])
    max_diff = float(np.abs(ours - theirs).max())
    assert max_diff < 1e-5, f"scores disagree by {max_diff}"

    t_ours = best_time(
        lambda: [best_relative_scores(m, args.k, "embedded", 0.0, onehot) for m in matrices],
        args.repeats,
    )
    t_bio = best_time(lambda: [biopython_scores(m, kmers) for m in short], 1)
    all_matrices = [scoring_matrix(m) for m in motifs]
    t_all = best_time(lambda: score_kmers_against_motifs(all_matrices, args.k), args.repeats)

    print(
        f"{release}: {len(short)} motifs of length <= {args.k}, {4**args.k} {args.k}-mers, both strands"
    )
    print(f"  max |ours - biopython| = {max_diff:.2e}")
    print(f"  biopython pssm.calculate per k-mer: {t_bio:.3f} s")
    print(f"  vectorised (einsum):                {t_ours:.3f} s")
    print(f"  speed-up (biopython / ours):        {t_bio / t_ours:.0f}x")
    print(f"  all {len(all_matrices)} motifs, all {4**args.k} k-mers (embedded): {t_all:.3f} s")


if __name__ == "__main__":
    main()
