#!/usr/bin/env bash
# The baselines of the GeneMask paper, on the same data as examples/pretrain_human.sh:
#   kmer_span at 10k updates (equal compute), kmer_span at 120k updates with DNABERT's own
#   settings (lr 4e-4, warm-up 10k), and BERT's random 15% masking at 10k updates.
# Usage: examples/pretrain_baselines.sh GENOME.fa[.gz] OUT_DIR [--arch NAME] [--dry-run] [other pretrain_human.sh options]
source "$(dirname "$0")/_common.sh"
RUNS=("--strategy kmer_span --updates 10000"
      "--strategy kmer_span --updates 120000 --lr 4e-4 --warmup 10000"
      "--strategy random --updates 10000")
pretrain_series pretrain_baselines.sh "$@"
