#!/usr/bin/env bash
# The main job (README quick start, run by `make demo`): on the bundled data,
#   1. build the 6-mer corpus and the PMI table from the human fragments,
#   2. pretrain genemask_tiny with fairseq-train --task genemask_mlm,
#   3. fine-tune Prom-core 10-shot from scratch and from the GeneMask checkpoint, over 5 seeds,
#   4. print the table: from scratch vs GeneMask-pretrained,
#   5. export the pretrained model to Hugging Face transformers and predict a masked 6-mer with it.
# DEMO_SCALE=full selects a bigger run (4x the pretraining, 50-shot too). OUT (default demo_out/) holds everything.
source "$(dirname "$0")/_common.sh"

OUT=$(realpath -m "${OUT:-$REPO_ROOT/demo_out}")  # absolute: checkpoints record the --pmi-table path
SCALE=${DEMO_SCALE:-small}
case "$SCALE" in
    small) PRETRAIN_UPDATES=1000; SEEDS="1 2 3 4 5"; SHOTS="10" ;;
    full) PRETRAIN_UPDATES=4000; SEEDS="1 2 3 4 5"; SHOTS="10 50" ;;
    *) die "DEMO_SCALE must be small or full, got $SCALE" ;;
esac
GENOME="$REPO_ROOT/data/genomes/human_fewshot_fragments.fa.gz"
FEWSHOT="$REPO_ROOT/data/fewshot/Prom-core"
CPU_FLAG=()
if [ "$(count_gpus)" -lt 1 ]; then
    CPU_FLAG=(--cpu)
    # These models are tiny: one torch thread per process beats threads fighting the data workers for cores.
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
fi
mkdir -p "$OUT"
START=$(date +%s)

echo "== 1/5 corpus and PMI table from $(basename "$GENOME")"
run genemask-preprocess "$GENOME" --k 6 --out "$OUT/data" --seed 1 --force
run genemask-pmi count "$GENOME" --max-n 6 --out "$OUT/pmi/counts.npz"
run genemask-pmi score "$OUT/pmi/counts.npz" --k 6 --out "$OUT/pmi/pmi_k6.tsv"

echo "== 2/5 pretrain genemask_tiny for $PRETRAIN_UPDATES updates (fairseq-train --task genemask_mlm)"
rm -rf "$OUT/pretrain"
pretrain_args --data "$OUT/data" --pmi-table "$OUT/pmi/pmi_k6.tsv" --save-dir "$OUT/pretrain" --arch genemask_tiny \
    --strategy genemask --updates "$PRETRAIN_UPDATES" --lr 8e-4 --warmup $((PRETRAIN_UPDATES / 20)) --batch-size 16 \
    --num-workers 1 "${CPU_FLAG[@]}" -- --log-format tqdm
run fairseq-train "${PRETRAIN_ARGS[@]}"

echo "== 3/5 fine-tune and evaluate Prom-core $SHOTS-shot (seeds: $SEEDS)"
run genemask-fewshot grid \
    --checkpoint "from scratch=none" --checkpoint "GeneMask-pretrained=$OUT/pretrain/checkpoint_last.pt" \
    --datasets Prom-core --shots $SHOTS --seeds $SEEDS \
    --fewshot-root "$REPO_ROOT/data/fewshot" --dict "$OUT/data/dict.txt" --out "$OUT/fewshot"

echo "== 4/5 results (mean ± std over seeds; Prom-core test set, 5 920 sequences)"
[ "$DRY_RUN" = 1 ] || cat "$OUT/fewshot/summary.md"

echo "== 5/5 export to Hugging Face transformers and predict a masked 6-mer (offline)"
export HF_HUB_OFFLINE=1
run genemask-hf export "$OUT/pretrain/checkpoint_last.pt" "$OUT/hf" --force
run python "$REPO_ROOT/examples/hf_fill_mask.py" "$OUT/hf"
echo "done in $(( $(date +%s) - START )) s; everything is in $OUT"
