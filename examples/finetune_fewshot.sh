#!/usr/bin/env bash
# Few-shot fine-tuning with fairseq's built-in sentence_prediction task: the GeneMask paper's recipe.
# Usage: examples/finetune_fewshot.sh CHECKPOINT DATA_DIR SHOTS SEED OUT [extra fairseq-train options]
#   CHECKPOINT  pretrained checkpoint (fairseq-train --task genemask_mlm), or `none` to train from scratch;
#               its architecture and sizes are read from it
#   DATA_DIR    written by `genemask-fewshot prepare` (input0/, label/, fewshot.json)
#   SHOTS       the paper's name of the shot set (Splice-40's "10" holds 100 per class); it picks the
#               recipe (see `genemask-fewshot finetune --help` and docs/fewshot.md)
#   OUT         save dir; without a valid split (the paper's protocol) no dev-set selection: the model after
#               the last update, OUT/checkpoint_last.pt, is the one to score:
#               genemask-fewshot evaluate OUT/checkpoint_last.pt DATA_DIR. With a valid split (a GUE dev.csv)
#               the best dev-MCC model, OUT/checkpoint_best.pt, is (the command prints which).
# Environment: ARCH (from scratch: default genemask_tiny; with a checkpoint it must be the checkpoint's),
#   EPOCHS / MAX_UPDATES (shorter runs), DRY_RUN=1 (print the fairseq-train command only).
# The recipe's numbers live in one place, genemask_plugin/fewshot/finetune.py: this script only
# runs `genemask-fewshot finetune`, which builds the fairseq-train command from them.
source "$(dirname "$0")/_common.sh"
[ $# -ge 5 ] || die "usage: examples/finetune_fewshot.sh CHECKPOINT DATA_DIR SHOTS SEED OUT [fairseq-train options]"
CHECKPOINT=$1 DATA=$2 SHOTS=$3 SEED=$4 OUT=$5
shift 5
ARGS=(finetune "$CHECKPOINT" "$DATA" --shots "$SHOTS" --seed "$SEED" --out "$OUT")
[ -z "${ARCH:-}" ] || ARGS+=(--arch "$ARCH")
[ -z "${EPOCHS:-}" ] || ARGS+=(--epochs "$EPOCHS")
[ -z "${MAX_UPDATES:-}" ] || ARGS+=(--max-updates "$MAX_UPDATES")
[ "$DRY_RUN" != 1 ] || ARGS+=(--dry-run)
exec genemask-fewshot "${ARGS[@]}" -- "$@"
