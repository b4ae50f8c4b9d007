#!/usr/bin/env bash
# Sample efficiency at CPU scale: few-shot accuracy against pretraining updates, genemask vs kmer_span.
# One 4000-update run per strategy (same data, seed, batch and schedule as cpu_experiment.sh), scored at its
# 500-, 1000-, 2000- and 4000-update checkpoints on Prom-core 10- and 50-shot over 3 seeds.
# Usage: examples/sample_efficiency.sh [--updates "500 1000 2000 4000"] [--seeds "1 2 3"] [--out DIR] [--dry-run]
source "$(dirname "$0")/_common.sh"

CHECKPOINTS_AT="500 1000 2000 4000"
SEEDS="1 2 3"
OUT="$REPO_ROOT/docs/results/sample_efficiency"
WORK=$(realpath -m "${WORK:-$REPO_ROOT/work/sample_efficiency}")
while [ $# -gt 0 ]; do
    case "$1" in
        --updates) CHECKPOINTS_AT=$2; shift 2 ;;
        --seeds) SEEDS=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --dry-run) DRY_RUN=1; shift ;;
        *) die "unknown option $1" ;;
    esac
done
MAX_UPDATE=$(tr ' ' '\n' <<<"$CHECKPOINTS_AT" | sort -n | tail -1)
START=$(date +%s)

prepare_bundled_corpus "$WORK"

CHECKPOINTS=()
for STRATEGY in genemask kmer_span; do
    SAVE="$WORK/pretrain/$STRATEGY"
    if [ ! -f "$SAVE/checkpoint_last.pt" ] || [ "$DRY_RUN" = 1 ]; then
        pretrain_tiny "$WORK" "$STRATEGY" "$MAX_UPDATE" "$SAVE" \
            -- --save-interval-updates 500 --keep-interval-updates -1 --log-interval 500
    fi
    for N in $CHECKPOINTS_AT; do
        CKPT="$SAVE/checkpoint_1_$N.pt"
        [ "$N" != "$MAX_UPDATE" ] || CKPT="$SAVE/checkpoint_last.pt"
        # fairseq names interval checkpoints by epoch: find the one saved at update N.
        [ "$DRY_RUN" = 1 ] || [ -f "$CKPT" ] || CKPT=$(ls "$SAVE"/checkpoint_*_"$N".pt | head -1)
        CHECKPOINTS+=(--checkpoint "$STRATEGY@$N=$CKPT")
    done
done
PRETRAIN_DONE=$(date +%s)

echo "== few-shot grid into $(shown_path "$OUT") (log: $(shown_path "$WORK/logs/grid.log"))"
run_logged "$WORK/logs/grid.log" genemask-fewshot grid "${CHECKPOINTS[@]}" --datasets Prom-core --shots 10 50 \
    --seeds $SEEDS \
    --fewshot-root "$REPO_ROOT/data/fewshot" --dict "$WORK/data/dict.txt" --out "$OUT"
END=$(date +%s)
echo "wall time: pretraining $((PRETRAIN_DONE - START)) s, few-shot grid $((END - PRETRAIN_DONE)) s"
