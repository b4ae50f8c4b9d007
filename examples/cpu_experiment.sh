#!/usr/bin/env bash
# The CPU-scale experiment of README "Results": GeneMask vs its baselines at equal compute.
#   1. one 6-mer corpus and PMI table from the bundled human fragments,
#   2. genemask_tiny pretrained with genemask, kmer_span, random and genemask_position masking
#      (same data, seed, batch and number of updates),
#   3. the few-shot grid over the pretrained models plus no pretraining, >= 3 seeds.
# Without --fewshot-root it scores the bundled data/fewshot (Prom-core only); README "Results" used
# --fewshot-root DIR with the full sets, whose default datasets are then all four.
# Usage: examples/cpu_experiment.sh [--updates N] [--shots "10 50"] [--seeds "1 2 3"]
#            [--datasets "..."] [--fewshot-root DIR] [--out DIR] [--dry-run]
# The grid is resumable: rerun the same command to finish an interrupted run.
source "$(dirname "$0")/_common.sh"

UPDATES=2000
SHOTS="10 50"
SEEDS="1 2 3"
DATASETS=""
FEWSHOT_ROOT=""
OUT="$REPO_ROOT/docs/results/cpu_experiment"
WORK=$(realpath -m "${WORK:-$REPO_ROOT/work/cpu_experiment}")
while [ $# -gt 0 ]; do
    case "$1" in
        --updates) UPDATES=$2; shift 2 ;;
        --shots) SHOTS=$2; shift 2 ;;
        --seeds) SEEDS=$2; shift 2 ;;
        --datasets) DATASETS=$2; shift 2 ;;
        --fewshot-root) FEWSHOT_ROOT=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --dry-run) DRY_RUN=1; shift ;;
        *) die "unknown option $1" ;;
    esac
done
if [ -z "$FEWSHOT_ROOT" ]; then
    FEWSHOT_ROOT="$REPO_ROOT/data/fewshot"  # bundled: Prom-core 10 and 50 shots
    DATASETS=${DATASETS:-Prom-core}
    for DATASET in $DATASETS; do
        [ -d "$FEWSHOT_ROOT/$DATASET" ] || die "$DATASET is not bundled: pass --fewshot-root DIR with the full few-shot sets"
    done
else
    DATASETS=${DATASETS:-"Prom-core Prom-300 Cohn-enh Splice-40"}
fi
[ "$DRY_RUN" = 1 ] || [ -d "$FEWSHOT_ROOT" ] || die "few-shot data not found at $FEWSHOT_ROOT (--fewshot-root)"
STRATEGIES="genemask kmer_span random genemask_position"
START=$(date +%s)

prepare_bundled_corpus "$WORK"

CHECKPOINTS=()
for STRATEGY in $STRATEGIES; do
    SAVE="$WORK/pretrain/$STRATEGY"
    if [ ! -f "$SAVE/checkpoint_last.pt" ] || [ "$DRY_RUN" = 1 ]; then
        pretrain_tiny "$WORK" "$STRATEGY" "$UPDATES" "$SAVE" -- --log-interval 100
    fi
    CHECKPOINTS+=(--checkpoint "$STRATEGY=$SAVE/checkpoint_last.pt")
done
PRETRAIN_DONE=$(date +%s)

# Splice-40's own test set is held back (data README): score it on its 500 file minus the
# training sequences, as the protocol does for Prom-300 and Cohn-enh.
echo "== few-shot grid into $(shown_path "$OUT") (log: $(shown_path "$WORK/logs/grid.log"))"
run_logged "$WORK/logs/grid.log" genemask-fewshot grid "${CHECKPOINTS[@]}" --checkpoint "no pretraining=none" \
    --datasets $DATASETS --shots $SHOTS --seeds $SEEDS \
    --fewshot-root "$FEWSHOT_ROOT" --test-file "Splice-40=$FEWSHOT_ROOT/Splice-40/500/train.tsv" \
    --dict "$WORK/data/dict.txt" --out "$OUT"
END=$(date +%s)
echo "wall time: pretraining $((PRETRAIN_DONE - START)) s, few-shot grid $((END - PRETRAIN_DONE)) s, total $((END - START)) s"
