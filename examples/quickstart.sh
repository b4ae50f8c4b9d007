#!/usr/bin/env bash
# The main job (README quick start, run by `make demo`): on the bundled data, in five steps,
#   1. build the 6-mer corpus and the PMI table from the human fragments,
#   2. pretrain genemask_tiny with fairseq-train --task genemask_mlm,
#   3. fine-tune Prom-core 10-shot from scratch and from the GeneMask checkpoint, over 5 seeds,
#   4. print the table: from scratch vs GeneMask-pretrained,
#   5. export the pretrained model to Hugging Face transformers and fill in masked 6-mers with it.
# Each step prints a header, its progress and its result; each command's whole output (fairseq's configuration,
# warnings) goes to OUT/logs/. OUT (default demo_out/) holds everything.
# DEMO_SCALE: small (default), full (16 000 pretraining updates instead of 6 000, 50-shot too) or tiny (a smoke run of a minute or two,
# whose numbers mean nothing). DRY_RUN=1 prints the commands instead.
source "$(dirname "$0")/_common.sh"

OUT=$(realpath -m "${OUT:-$REPO_ROOT/demo_out}")  # absolute: checkpoints record the --pmi-table path
LOGS="$OUT/logs"
SCALE=${DEMO_SCALE:-small}
case "$SCALE" in
    small) UPDATES=6000; SEEDS="1 2 3 4 5"; SHOTS="10"; FINETUNE=() ;;
    full) UPDATES=16000; SEEDS="1 2 3 4 5"; SHOTS="10 50"; FINETUNE=() ;;
    tiny) UPDATES=20; SEEDS="1"; SHOTS="10"; FINETUNE=(--max-updates 4) ;;
    *) die "DEMO_SCALE must be small, full or tiny, got $SCALE" ;;
esac
# Pretraining, all in one place: named settings of genemask_plugin/pretraining_command.py (its --help lists them;
# what is not named is the paper's), then fairseq-train options of our own.
# As the compute ladder (docs/results/compute_ladder): 2 packed 512-token blocks per update, lr 2e-3 with an inverse
# square root after 500 warm-up updates, and learned positions started from a scaled sinusoid, which is what lets
# a 2 x 64 model learn to read a masked 6-mer off its neighbours within minutes.
PRETRAIN=(--arch genemask_tiny --strategy genemask --updates "$UPDATES" --lr 2e-3 --lr-scheduler inverse_sqrt
          --warmup $(( UPDATES >= 5000 ? 500 : UPDATES / 10 )) --batch-size 2 --num-workers 1)
PRETRAIN_FAIRSEQ=("${CPU_SCALE_TASK_OPTIONS[@]}" --log-format simple --log-interval $(( UPDATES >= 10 ? UPDATES / 10 : 1 )))

GENOME="$REPO_ROOT/data/genomes/human_fewshot_fragments.fa.gz"
CPU_FLAG=()
if [ "$(count_gpus)" -lt 1 ]; then
    CPU_FLAG=(--cpu)
    # These models are tiny: one torch thread per process beats threads fighting the data workers for cores.
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
fi
export HF_HUB_OFFLINE=1  # every model here is a local folder: never reach the hub
[ "$DRY_RUN" = 1 ] || mkdir -p "$OUT"
START=$(date +%s)

step() {  # one header line per step, with its log
    echo "== $1${2:+ (log: $(shown_path "$2"))}"
}

step "1/5 corpus and PMI table from $(basename "$GENOME")" "$LOGS/1-corpus.log"
run_logged "$LOGS/1-corpus.log" genemask-preprocess "$GENOME" --k 6 --out "$OUT/data" --seed 1 --force
run_logged "$LOGS/1-corpus.log" genemask-pmi count "$GENOME" --max-n 6 --out "$OUT/pmi/counts.npz"
run_logged "$LOGS/1-corpus.log" genemask-pmi score "$OUT/pmi/counts.npz" --k 6 --out "$OUT/pmi/pmi_k6.tsv"

step "2/5 pretrain genemask_tiny with GeneMask masking, $UPDATES updates (fairseq-train --task genemask_mlm)" \
    "$LOGS/2-pretrain.log"
[ "$DRY_RUN" = 1 ] || rm -rf "$OUT/pretrain"
pretrain_args --data "$OUT/data" --pmi-table "$OUT/pmi/pmi_k6.tsv" --save-dir "$OUT/pretrain" "${PRETRAIN[@]}" \
    "${CPU_FLAG[@]}" -- "${PRETRAIN_FAIRSEQ[@]}"
run_logged "$LOGS/2-pretrain.log" fairseq-train "${PRETRAIN_ARGS[@]}"
[ "$DRY_RUN" = 1 ] || echo "  model: $(shown_path "$OUT/pretrain/checkpoint_last.pt")"

step "3/5 fine-tune Prom-core $SHOTS-shot from scratch and from the checkpoint (seeds $SEEDS), score the test set" \
    "$LOGS/3-fewshot.log"
# The grid prints the summary table too: step 4 shows it, once.
run_logged --hide '^\|' "$LOGS/3-fewshot.log" genemask-fewshot grid \
    --checkpoint "from scratch=none" --checkpoint "GeneMask-pretrained=$OUT/pretrain/checkpoint_last.pt" \
    --datasets Prom-core --shots $SHOTS --seeds $SEEDS "${FINETUNE[@]}" \
    --fewshot-root "$REPO_ROOT/data/fewshot" --dict "$OUT/data/dict.txt" --out "$OUT/fewshot"

step "4/5 results (mean ± std over seeds; Prom-core test set, 5 920 sequences)"
[ "$DRY_RUN" = 1 ] || cat "$OUT/fewshot/summary.md"

step "5/5 export to Hugging Face transformers, then fill in a masked 6-mer at 5 test positions with it" \
    "$LOGS/5-huggingface.log"
run_logged "$LOGS/5-huggingface.log" genemask-hf export "$OUT/pretrain/checkpoint_last.pt" "$OUT/hf" --force
run_logged "$LOGS/5-huggingface.log" python "$REPO_ROOT/examples/hf_fill_mask.py" "$OUT/hf"
[ "$DRY_RUN" = 1 ] || echo "done in $(( $(date +%s) - START )) s; everything is in $(shown_path "$OUT")/"
