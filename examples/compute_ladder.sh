#!/usr/bin/env bash
# The compute ladder (issue 20): does GeneMask's advantage over DNABERT's kmer_span emerge with compute?
#   1. one 6-mer corpus and PMI table from the bundled human fragments (as the other CPU-scale recipes),
#   2. one pretraining run per (strategy, pretraining seed): packed 512-token blocks (--sample-break-mode complete),
#      sinusoid-initialised positions, a schedule that does not decay to 0 (inverse square root after the warm-up),
#      and its checkpoint kept at every budget. A run is trained budget by budget: each segment resumes the last
#      (fairseq restores weights, optimiser, schedule, data order and masks) and stops at the next budget, whose
#      checkpoint is copied aside. Runs of one seed share their initial weights and batches: only the masks differ,
#   3. at every budget: genemask-validate (the same random and kmer_span masks for every checkpoint, beside the
#      corpus's unigram floor) and frozen-embedding probes on Prom-core, Prom-300 and Cohn-enh at 10/50/100 shots;
#      at the largest budget only: the paper's fine-tuning recipe on Prom-core and Splice-40 at 10/50 shots,
#   4. genemask-fewshot stats per budget (labels STRATEGY@SEED, one results folder per budget: updates_N/), then
#      examples/compute_ladder_report.py: the pre-written decision rule (docs/results/compute_ladder/README.md),
#      decision.md, effects_by_budget.png and losses.png.
# Without --fewshot-root only the bundled Prom-core (10 and 50 shots) is probed and fine-tuned.
# Other tokenizations: --k 1 (single nucleotides) or --k K --stride K (non-overlapping k-mers) build that corpus and,
# for pmi_span, its token n-gram PMI table (genemask-pmi count --tokens); --reference/--baseline name the two
# variants the statistics and the decision rule compare (default genemask against kmer_span).
# Usage: examples/compute_ladder.sh [--budgets "500 1000 2000 4000 8000"] [--pretrain-seeds "1 2 3 4 5"]
#            [--strategies "genemask kmer_span random"] [--variant LABEL="STRATEGY OPTIONS"]
#            [--arch genemask_tiny] [--batch-size 2] [--lr 2e-3] [--warmup 500] [--lr-scheduler inverse_sqrt]
#            [--position-init sinusoidal] [--position-init-scale 0.3]
#            [--probe-datasets "..."] [--probe-shots "10 50 100"] [--probe-seeds "1 2 3"]
#            [--finetune-datasets "Prom-core Splice-40"] [--finetune-shots "10 50"] [--finetune-seeds "1 2 3"]
#            [--k 6] [--stride 1] [--reference genemask] [--baseline kmer_span]
#            [--jobs N] [--only-pretrain] [--skip-finetune] [--fewshot-root DIR] [--out DIR] [--dry-run]
# cm_step and global_pmi join with --strategies "genemask kmer_span random cm_step global_pmi"; other settings
# of a strategy with --variant 'LABEL=STRATEGY FAIRSEQ_OPTIONS'. Model size, batch and lr: the pilots' (results page).
# Everything is resumable: rerun the same command to finish an interrupted run. Progress goes to the console,
# each run's fairseq log to WORK/pretrain/LABEL/seedN/train_BUDGET.log, copied to OUT/logs/ (never checkpoints).
source "$(dirname "$0")/_common.sh"

experiment_defaults compute_ladder
BUDGETS="500 1000 2000 4000 8000"
STRATEGIES="genemask kmer_span random"
ARCH=genemask_tiny
K=6
STRIDE=1
REFERENCE=genemask
BASELINE=kmer_span
BATCH=2
LR=2e-3
WARMUP=500
SCHEDULER=inverse_sqrt
POSITION_INIT=sinusoidal
POSITION_SCALE=0.3
SKIP_EVALUATION=0
while [ $# -gt 0 ]; do
    case "$1" in
        --budgets) BUDGETS=$2; shift 2 ;;
        --arch) ARCH=$2; shift 2 ;;
        --k) K=$2; shift 2 ;;
        --stride) STRIDE=$2; shift 2 ;;
        --reference) REFERENCE=$2; shift 2 ;;
        --baseline) BASELINE=$2; shift 2 ;;
        --batch-size) BATCH=$2; shift 2 ;;
        --lr) LR=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --lr-scheduler) SCHEDULER=$2; shift 2 ;;
        --position-init) POSITION_INIT=$2; shift 2 ;;
        --position-init-scale) POSITION_SCALE=$2; shift 2 ;;
        --only-pretrain) SKIP_EVALUATION=1; shift ;;
        *) experiment_option "$@"; shift "$SHIFT" ;;
    esac
done
resolve_fewshot_sets "Prom-core Prom-300 Cohn-enh"
BUDGETS=$(tr ' ' '\n' <<<"$BUDGETS" | grep -v '^$' | sort -n -u | tr '\n' ' ')
for BUDGET in $BUDGETS; do
    [[ "$BUDGET" =~ ^[1-9][0-9]*$ ]] || die "--budgets must be positive whole numbers of updates, got $BUDGET"
done
LARGEST=${BUDGETS% }
LARGEST=${LARGEST##* }
LABELS=" $STRATEGIES ${VARIANTS[*]%%=*} "
[[ "$LABELS" == *" $REFERENCE "* && "$LABELS" == *" $BASELINE "* ]] ||
    die "--strategies and --variant labels must include $REFERENCE and $BASELINE (the decision rule compares them)"
# Each strategy is a variant whose options are just its --mask-strategy; --variant adds LABEL="STRATEGY OPTIONS".
strategy_variants
DEVICE=(--cpu)
if [ "$(count_gpus)" -ge 1 ]; then DEVICE=(); fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # tiny models: one thread per run beats runs fighting for cores
START=$(date +%s)

if [ "$K" = 6 ] && [ "$STRIDE" = 1 ]; then
    prepare_bundled_corpus "$WORK"
    PMI_TABLE="$WORK/pmi/pmi_k6.tsv"
else
    prepare_bundled_token_corpus "$WORK" "$K" "$STRIDE"
    PMI_TABLE="$WORK/pmi/pmi_tokens.tsv"
fi

train_segment() {
    run fairseq-train "${PRETRAIN_ARGS[@]}"
}

# One (label, seed) run, budget by budget: the run's command (its schedule spans the largest budget), stopped at
# each budget by --max-update. A budget is done when its checkpoint copy exists; a segment is trained unless its
# log says fairseq finished (then only the copy is missing: rerunning fairseq-train would add an update).
ladder_run() {
    local label=$1 strategy=$2 seed=$3 save=$4 budget log started i
    shift 4
    pretrain_args --data "$WORK/data" --pmi-table "$PMI_TABLE" --save-dir "$save" --arch "$ARCH" \
        --strategy "$strategy" --updates "$LARGEST" --lr "$LR" --warmup "$WARMUP" --lr-scheduler "$SCHEDULER" \
        --batch-size "$BATCH" --num-workers 1 --seed "$seed" "${DEVICE[@]}" -- \
        --sample-break-mode complete --position-init "$POSITION_INIT" --position-init-scale "$POSITION_SCALE" \
        --save-interval-updates 500 --keep-interval-updates 1 --log-format simple --log-interval 100 "$@"
    for budget in $BUDGETS; do
        [ "$DRY_RUN" = 1 ] || [ ! -f "$save/checkpoint_at_$budget.pt" ] || continue
        log="$save/train_$budget.log"
        if [ "$DRY_RUN" = 1 ] || ! grep -q "done training" "$log" 2>/dev/null; then
            started=$(date +%s)
            for i in "${!PRETRAIN_ARGS[@]}"; do
                [ "${PRETRAIN_ARGS[i]}" != --max-update ] || PRETRAIN_ARGS[i + 1]=$budget
            done
            if [ "$DRY_RUN" = 1 ]; then
                train_segment
            else
                mkdir -p "$save"
                train_segment >>"$log" 2>&1 || die "$label@$seed: fairseq-train failed at budget $budget; see $log"
                echo "ladder: $label@$seed trained to $budget updates in $(($(date +%s) - started)) s"
            fi
        fi
        run cp "$save/checkpoint_last.pt" "$save/checkpoint_at_$budget.pt.tmp"
        run mv "$save/checkpoint_at_$budget.pt.tmp" "$save/checkpoint_at_$budget.pt"
    done
}

# Pretraining: variant x seed, up to --jobs runs at a time.
RUNNING=0
for SEED in $PRETRAIN_SEEDS; do
    for SPEC in "${VARIANTS[@]}"; do
        LABEL=${SPEC%%=*}
        read -r -a OPTIONS <<<"${SPEC#*=}"
        RUN=(ladder_run "$LABEL" "${OPTIONS[0]}" "$SEED" "$WORK/pretrain/$LABEL/seed$SEED" "${OPTIONS[@]:1}")
        if [ "$JOBS" = 1 ] || [ "$DRY_RUN" = 1 ]; then
            "${RUN[@]}"
        else
            [ "$RUNNING" -lt "$JOBS" ] || { wait -n || die "a pretraining run failed"; RUNNING=$((RUNNING - 1)); }
            "${RUN[@]}" &
            RUNNING=$((RUNNING + 1))
        fi
    done
done
while [ "$RUNNING" -gt 0 ]; do wait -n || die "a pretraining run failed"; RUNNING=$((RUNNING - 1)); done
PRETRAIN_DONE=$(date +%s)

# The logs beside the results (text only): training and validation lines of every segment.
for SEED in $PRETRAIN_SEEDS; do
    for SPEC in "${VARIANTS[@]}"; do
        LABEL=${SPEC%%=*}
        run mkdir -p "$OUT/logs/$LABEL/seed$SEED"
        for BUDGET in $BUDGETS; do
            run cp "$WORK/pretrain/$LABEL/seed$SEED/train_$BUDGET.log" "$OUT/logs/$LABEL/seed$SEED/"
        done
    done
done
[ "$SKIP_EVALUATION" = 0 ] || { echo "wall time: pretraining $((PRETRAIN_DONE - START)) s"; exit 0; }

# Shared-mask validation losses of every checkpoint, beside the unigram floor: losses.csv.
VALIDATE=()
for BUDGET in $BUDGETS; do
    for SEED in $PRETRAIN_SEEDS; do
        for SPEC in "${VARIANTS[@]}"; do
            VALIDATE+=("${SPEC%%=*}@$SEED=$WORK/pretrain/${SPEC%%=*}/seed$SEED/checkpoint_at_$BUDGET.pt")
        done
    done
done
run genemask-validate "${VALIDATE[@]}" --data "$WORK/data" --masks random,kmer_span --seed 1 \
    --sample-break-mode complete --csv "$OUT/losses.csv" --json "$OUT/losses.json"
VALIDATE_DONE=$(date +%s)

# Probes at every budget, fine-tuning at the largest; one results folder per budget, so that stats pairs
# STRATEGY@SEED within a budget. Splice-40's own test set is held back (data README): scored on its 500 file.
for BUDGET in $BUDGETS; do
    CHECKPOINTS=()
    for SEED in $PRETRAIN_SEEDS; do
        for SPEC in "${VARIANTS[@]}"; do
            CHECKPOINTS+=(--checkpoint "${SPEC%%=*}@$SEED=$WORK/pretrain/${SPEC%%=*}/seed$SEED/checkpoint_at_$BUDGET.pt")
        done
    done
    COMMON=("${CHECKPOINTS[@]}" --checkpoint "no pretraining=none" --draw per-class
            --fewshot-root "$FEWSHOT_ROOT" --test-file "Splice-40=$FEWSHOT_ROOT/Splice-40/500/train.tsv"
            --dict "$WORK/data/dict.txt" --no-progress)
    run genemask-fewshot grid --method probe "${COMMON[@]}" --datasets $PROBE_DATASETS \
        --shots $PROBE_SHOTS --seeds $PROBE_SEEDS --out "$OUT/updates_$BUDGET/probe"
    if [ "$BUDGET" = "$LARGEST" ] && [ "$SKIP_FINETUNE" = 0 ]; then
        run genemask-fewshot grid --method finetune "${COMMON[@]}" --datasets $FINETUNE_DATASETS \
            --shots $FINETUNE_SHOTS --seeds $FINETUNE_SEEDS --out "$OUT/updates_$BUDGET/finetune"
    fi
    run genemask-fewshot stats "$OUT/updates_$BUDGET" --reference "$REFERENCE" --out "$OUT/updates_$BUDGET"
done
EVALUATION_DONE=$(date +%s)

if [ "${BUDGETS// /}" = "$LARGEST" ]; then
    echo "one budget: no trend to fit; the comparison is $(shown_path "$OUT/updates_$LARGEST/comparisons.md")"
else
    run "${PYTHON:-python3}" "$REPO_ROOT/examples/compute_ladder_report.py" "$OUT" --reference "$REFERENCE" \
        --baseline "$BASELINE"
fi
echo "wall time: pretraining $((PRETRAIN_DONE - START)) s, shared-mask validation $((VALIDATE_DONE - PRETRAIN_DONE)) s," \
    "probes and fine-tuning $((EVALUATION_DONE - VALIDATE_DONE)) s, total $(($(date +%s) - START)) s"
