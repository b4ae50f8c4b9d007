#!/usr/bin/env bash
# Settle GeneMask against its baselines at CPU scale, with pretraining seeds and paired statistics (issue 14).
#   1. one 6-mer corpus and PMI table from the bundled human fragments (as cpu_experiment.sh),
#   2. genemask_tiny pretrained with each strategy and each pretraining seed: equal compute, only
#      --mask-strategy and --seed differ (same data, model, batch, lr schedule and number of updates),
#   3. frozen-embedding probes (`grid --method probe`) of every checkpoint plus "no pretraining" on every
#      dataset at 10/50/100 shots, and paper-recipe fine-tuning on a subset,
#   4. genemask-fewshot stats: evaluation seeds averaged within each pretraining seed, Wilcoxon signed-rank
#      tests of genemask against each baseline, bootstrap CIs over pretraining seeds, spreads, plot.
# Shot sets are drawn per class (`--draw per-class`): "10-shot" is 10 sequences per class, drawn for each
# evaluation seed from the shot file (Splice-40's files pool 10x that; the other sets' files hold exactly n).
# Without --fewshot-root only the bundled Prom-core 10/50-shot data is used.
# Usage: examples/settle_experiment.sh [--updates N] [--pretrain-seeds "1 2 3 4 5"]
#            [--strategies "genemask kmer_span random genemask_position"] [--variant LABEL="STRATEGY OPTIONS"]
#            [--probe-datasets "..."] [--probe-shots "10 50 100"] [--probe-seeds "1 2 3"]
#            [--finetune-datasets "Prom-core Splice-40"] [--finetune-shots "10 50"] [--finetune-seeds "1 2 3"]
#            [--jobs N] [--skip-probe] [--skip-finetune] [--only-pretrain] [--fewshot-root DIR] [--out DIR]
#            [--dry-run]
# Curricula and other strategies join the comparison as variants, e.g.
#   --variant 'cm_gems=cm_gems' --variant 'global_pmi=global_pmi' --variant 'random_mask=random_mask'
# Everything is resumable: rerun the same command to finish an interrupted run.
source "$(dirname "$0")/_common.sh"

experiment_defaults settle_experiment
UPDATES=1000
STRATEGIES="genemask kmer_span random genemask_position"
SKIP_PROBE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --updates) UPDATES=$2; shift 2 ;;
        --skip-probe) SKIP_PROBE=1; shift ;;
        --only-pretrain) SKIP_PROBE=1; SKIP_FINETUNE=1; shift ;;
        *) experiment_option "$@"; shift "$SHIFT" ;;
    esac
done
resolve_fewshot_sets "Prom-core Prom-300 Cohn-enh Splice-40"
# Each strategy is a variant whose options are just its --mask-strategy; --variant adds LABEL="STRATEGY OPTIONS".
strategy_variants
START=$(date +%s)

prepare_bundled_corpus "$WORK"

# Pretraining: variant x seed, up to --jobs at a time (each run's log beside its checkpoint folder, SAVE.log).
CHECKPOINTS=()
RUNNING=0
for SEED in $PRETRAIN_SEEDS; do
    for SPEC in "${VARIANTS[@]}"; do
        LABEL=${SPEC%%=*}
        read -r -a OPTIONS <<<"${SPEC#*=}"
        SAVE="$WORK/pretrain/$LABEL/seed$SEED"
        CHECKPOINTS+=(--checkpoint "$LABEL@$SEED=$SAVE/checkpoint_last.pt")
        [ ! -f "$SAVE/checkpoint_last.pt" ] || [ "$DRY_RUN" = 1 ] || continue
        PRETRAIN=(pretrain_tiny "$WORK" "${OPTIONS[0]}" "$UPDATES" "$SAVE" --seed "$SEED" -- "${OPTIONS[@]:1}"
                  --log-interval 100)
        if [ "$JOBS" = 1 ] || [ "$DRY_RUN" = 1 ]; then
            "${PRETRAIN[@]}"
        else
            [ "$RUNNING" -lt "$JOBS" ] || { wait -n; RUNNING=$((RUNNING - 1)); }
            mkdir -p "$SAVE"
            "${PRETRAIN[@]}" >"$SAVE/pretrain.log" 2>&1 &
            RUNNING=$((RUNNING + 1))
        fi
    done
done
while [ "$RUNNING" -gt 0 ]; do wait -n; RUNNING=$((RUNNING - 1)); done
for ((i = 1; i < ${#CHECKPOINTS[@]}; i += 2)); do
    [ "$DRY_RUN" = 1 ] || [ -f "${CHECKPOINTS[i]#*=}" ] || die "pretraining failed: no ${CHECKPOINTS[i]#*=}"
done
PRETRAIN_DONE=$(date +%s)

# Splice-40's own test set is held back (data README): it is scored on its 500 file minus the shot file.
COMMON=("${CHECKPOINTS[@]}" --checkpoint "no pretraining=none" --draw per-class
        --fewshot-root "$FEWSHOT_ROOT" --test-file "Splice-40=$FEWSHOT_ROOT/Splice-40/500/train.tsv"
        --dict "$WORK/data/dict.txt" --no-progress)
if [ "$SKIP_PROBE" = 0 ]; then
    echo "== probes into $(shown_path "$OUT/probe") (log: $(shown_path "$WORK/logs/probe.log"))"
    run_logged "$WORK/logs/probe.log" genemask-fewshot grid --method probe "${COMMON[@]}" --datasets $PROBE_DATASETS \
        --shots $PROBE_SHOTS --seeds $PROBE_SEEDS --out "$OUT/probe"
fi
PROBE_DONE=$(date +%s)
if [ "$SKIP_FINETUNE" = 0 ]; then
    echo "== fine-tuning into $(shown_path "$OUT/finetune") (log: $(shown_path "$WORK/logs/finetune.log"))"
    run_logged "$WORK/logs/finetune.log" genemask-fewshot grid --method finetune "${COMMON[@]}" \
        --datasets $FINETUNE_DATASETS \
        --shots $FINETUNE_SHOTS --seeds $FINETUNE_SEEDS --out "$OUT/finetune"
fi
END=$(date +%s)
if [ "$SKIP_PROBE" = 0 ] || [ "$SKIP_FINETUNE" = 0 ]; then
    run genemask-fewshot stats "$OUT" --reference genemask --out "$OUT"
fi
echo "wall time: pretraining $((PRETRAIN_DONE - START)) s, probes $((PROBE_DONE - PRETRAIN_DONE)) s," \
    "fine-tuning $((END - PROBE_DONE)) s, total $(($(date +%s) - START)) s"
