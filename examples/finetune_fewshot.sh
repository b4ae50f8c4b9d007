#!/usr/bin/env bash
# Few-shot fine-tuning with fairseq's built-in sentence_prediction task: the GeneMask paper's recipe.
# Usage: examples/finetune_fewshot.sh CHECKPOINT DATA_DIR SHOTS SEED OUT [extra fairseq-train options]
#   CHECKPOINT  pretrained checkpoint (fairseq-train --task genemask_mlm), or `none` to train from scratch
#   DATA_DIR    written by `genemask-fewshot prepare` (input0/, label/, fewshot.json)
#   SHOTS       the paper's name of the shot set (Splice-40's "10" holds 100 per class):
#               10/50/100 -> batch 5, lr 1e-4, 20 epochs; 500/1000 -> batch 15, lr 5e-5, 5 epochs;
#               both: 10% warm-up then linear decay, dropout 0.1, weight decay 0.01
#   OUT         save dir; no dev-set selection: the model after the last update, OUT/checkpoint_last.pt,
#               is the one to score: genemask-fewshot evaluate OUT/checkpoint_last.pt DATA_DIR
#   One device (--distributed-world-size 1): several GPUs would multiply the paper's batch size.
# Environment: ARCH (default genemask_tiny; must be the checkpoint's, e.g. genemask_dnabert_base or
#   genemask_logo), MAX_POSITIONS (default 512, the checkpoint's), EPOCHS / MAX_UPDATES (shorter runs),
#   DRY_RUN=1 (print the command only), PYTHON (default python3).
# `genemask-fewshot finetune` runs the same command and reads ARCH and sizes from the checkpoint itself.
source "$(dirname "$0")/_common.sh"
[ $# -ge 5 ] || die "usage: examples/finetune_fewshot.sh CHECKPOINT DATA_DIR SHOTS SEED OUT [fairseq-train options]"
CHECKPOINT=$1 DATA=$2 SHOTS=$3 SEED=$4 OUT=$5
shift 5
[ -f "$DATA/fewshot.json" ] || die "$DATA is not a prepared few-shot directory (run genemask-fewshot prepare)"
[ "$CHECKPOINT" = none ] || [ -f "$CHECKPOINT" ] || [ "$DRY_RUN" = 1 ] || die "checkpoint not found: $CHECKPOINT"
read -r N_TRAIN NUM_CLASSES < <("${PYTHON:-python3}" -c \
    'import json, sys; m = json.load(open(sys.argv[1])); print(m["splits"]["train"]["rows"], len(m["labels"]))' \
    "$DATA/fewshot.json")

if [ "$SHOTS" -ge 500 ]; then
    BATCH=15 LR=5e-05 RECIPE_EPOCHS=5
else
    BATCH=5 LR=0.0001 RECIPE_EPOCHS=20
fi
EPOCHS=${EPOCHS:-$RECIPE_EPOCHS}
TOTAL=$((EPOCHS * ((N_TRAIN + BATCH - 1) / BATCH)))
if [ -n "${MAX_UPDATES:-}" ] && [ "$MAX_UPDATES" -lt "$TOTAL" ]; then TOTAL=$MAX_UPDATES; fi
WARMUP=$(((TOTAL + 5) / 10)) # 10% of the updates, rounded

RESTORE=()
[ "$CHECKPOINT" = none ] || RESTORE=(--restore-file "$CHECKPOINT" --reset-optimizer --reset-dataloader --reset-meters)
CPU_FLAG=()
[ "$(count_gpus)" -ge 1 ] || CPU_FLAG=(--cpu)

run fairseq-train "$DATA" --user-dir "$PLUGIN_DIR" \
    --task sentence_prediction --criterion sentence_prediction --num-classes "$NUM_CLASSES" \
    --init-token 0 --separator-token 2 \
    --arch "${ARCH:-genemask_tiny}" --max-positions "${MAX_POSITIONS:-512}" \
    "${RESTORE[@]}" \
    --dropout 0.1 --attention-dropout 0.1 \
    --optimizer adam --adam-betas "(0.9,0.98)" --adam-eps 1e-06 --weight-decay 0.01 --clip-norm 0.0 \
    --lr "$LR" --lr-scheduler polynomial_decay --warmup-updates "$WARMUP" --total-num-update "$TOTAL" \
    --max-update "$TOTAL" --max-epoch "$EPOCHS" --batch-size "$BATCH" --required-batch-size-multiple 1 \
    --distributed-world-size 1 \
    --seed "$SEED" --disable-validation --no-epoch-checkpoints --no-save-optimizer-state \
    --num-workers 0 --log-format simple --log-interval 10 --save-dir "$OUT" \
    "${CPU_FLAG[@]}" "$@"
