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
GENOME="$REPO_ROOT/data/genomes/human_fewshot_fragments.fa.gz"
MAX_UPDATE=$(tr ' ' '\n' <<<"$CHECKPOINTS_AT" | sort -n | tail -1)
START=$(date +%s)

[ -f "$WORK/data/dict.txt" ] || run genemask-preprocess "$GENOME" --k 6 --out "$WORK/data" --seed 1 --force
run genemask-pmi count "$GENOME" --max-n 6 --out "$WORK/pmi/counts.npz" --quiet
run genemask-pmi score "$WORK/pmi/counts.npz" --k 6 --out "$WORK/pmi/pmi_k6.tsv"

CHECKPOINTS=()
for STRATEGY in genemask kmer_span; do
    SAVE="$WORK/pretrain/$STRATEGY"
    if [ ! -f "$SAVE/checkpoint_last.pt" ] || [ "$DRY_RUN" = 1 ]; then
        run fairseq-train "$WORK/data" --user-dir "$PLUGIN_DIR" \
            --task genemask_mlm --criterion genemask_mlm --arch genemask_tiny \
            --mask-strategy "$STRATEGY" --pmi-table "$WORK/pmi/pmi_k6.tsv" --tokens-per-sample 512 \
            --optimizer adam --adam-betas "(0.9,0.98)" --adam-eps 1e-6 --weight-decay 0.01 \
            --lr 8e-4 --lr-scheduler polynomial_decay --warmup-updates $((MAX_UPDATE / 20)) \
            --total-num-update "$MAX_UPDATE" --max-update "$MAX_UPDATE" \
            --batch-size 16 --num-workers 1 --seed 1 --no-epoch-checkpoints --cpu \
            --save-interval-updates 500 --keep-interval-updates -1 \
            --log-format simple --log-interval 500 --save-dir "$SAVE"
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

run genemask-fewshot grid "${CHECKPOINTS[@]}" --datasets Prom-core --shots 10 50 --seeds $SEEDS \
    --fewshot-root "$REPO_ROOT/data/fewshot" --dict "$WORK/data/dict.txt" --out "$OUT"
END=$(date +%s)
echo "wall time: pretraining $((PRETRAIN_DONE - START)) s, few-shot grid $((END - PRETRAIN_DONE)) s"
