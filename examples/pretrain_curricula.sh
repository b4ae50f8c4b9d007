#!/usr/bin/env bash
# The GeneMask authors' follow-up (CM-GEMS, ECAI 2024) at paper scale, on the same data as examples/pretrain_human.sh:
#   global_pmi masking, the cm_gems curriculum (genemask, then global_pmi once validation perplexity
#   drops by less than 1.0 between validations every 500 updates) and the cm_step curriculum
#   (kmer_span with a share of global_pmi batches rising in 100 steps to 1), each 10k updates.
# Usage: examples/pretrain_curricula.sh GENOME.fa[.gz] OUT_DIR [--arch NAME] [--dry-run] [other pretrain_human.sh options]
source "$(dirname "$0")/_common.sh"
RUNS=("--strategy global_pmi" "--strategy cm_gems" "--strategy cm_step")
pretrain_series pretrain_curricula.sh "$@"
