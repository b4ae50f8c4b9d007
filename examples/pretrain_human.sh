#!/usr/bin/env bash
# Paper-scale GeneMask pretraining: genome FASTA -> k-mer corpus + PMI table -> fairseq-train.
# Hyperparameters follow the GeneMask paper (docs/genemask_mlm.md): 10k updates, lr 8e-4, warmup 500, Adam (0.9, 0.98),
# eps 1e-6, weight decay 0.01, blocks of 512 tokens, 250 sequences per update, fp16, all GPUs of the node.
usage() {
    cat <<'TXT'
Usage: examples/pretrain_human.sh GENOME.fa[.gz] OUT_DIR [options]

  --arch NAME           genemask_dnabert_base (default) or genemask_logo
  --strategy NAME       genemask (default), kmer_span, random, genemask_position or global_pmi
  --curriculum NAME     CM-GEMS mask curriculum: cm_gems (genemask, then global_pmi) or
                        cm_step (kmer_span mixed with a rising share of global_pmi); replaces --strategy
  --cm-gems-threshold T cm_gems: switch when validation perplexity drops by less than T (default 1.0)
  --validate-every N    validate every N updates (default: at epoch ends; cm_gems: 500)
  --k K                 k-mer size (default 6)
  --updates N           pretraining updates (default 10000)
  --lr LR               peak learning rate (default 8e-4)
  --warmup N            warm-up updates (default 500)
  --seqs-per-gpu N      sequences per GPU per step (default 10)
  --seqs-per-update N   sequences per update over all GPUs and accumulation (default 250)
  --gpus N              GPUs per node (default: all visible)
  --nnodes N            nodes for a multi-node run through torchrun (default 1)
  --node-rank R         this node's rank (multi-node)
  --master HOST:PORT    rendezvous address (multi-node)
  --skip-data           reuse OUT_DIR/data and OUT_DIR/pmi from an earlier run
  --dry-run             print the exact commands without running them

Multi-node: run the same command on every node with --nnodes, --node-rank and --master;
each node starts one process per GPU through torchrun (fairseq reads torchrun's env:// variables).
On Slurm, fairseq can also infer the ranks itself: srun the fairseq-train line with --distributed-port.
TXT
}
source "$(dirname "$0")/_common.sh"

case "${1:-}" in -h|--help) usage; exit 0 ;; esac
[ $# -ge 2 ] || { usage >&2; exit 2; }
GENOME=$1
OUT=$(realpath -m "$2")  # absolute: checkpoints record the --pmi-table path
shift 2
ARCH=genemask_dnabert_base STRATEGY=genemask K=6 UPDATES=10000 LR=8e-4 WARMUP=500
SEQS_PER_GPU=10 SEQS_PER_UPDATE=250 GPUS="" NNODES=1 NODE_RANK=0 MASTER="" SKIP_DATA=0
CURRICULUM=none CM_GEMS_THRESHOLD=1.0 VALIDATE_EVERY=""
while [ $# -gt 0 ]; do
    case "$1" in
        --arch) ARCH=$2; shift 2 ;;
        --strategy) STRATEGY=$2; shift 2 ;;
        --curriculum) CURRICULUM=$2; shift 2 ;;
        --cm-gems-threshold) CM_GEMS_THRESHOLD=$2; shift 2 ;;
        --validate-every) VALIDATE_EVERY=$2; shift 2 ;;
        --k) K=$2; shift 2 ;;
        --updates) UPDATES=$2; shift 2 ;;
        --lr) LR=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --seqs-per-gpu) SEQS_PER_GPU=$2; shift 2 ;;
        --seqs-per-update) SEQS_PER_UPDATE=$2; shift 2 ;;
        --gpus) GPUS=$2; shift 2 ;;
        --nnodes) NNODES=$2; shift 2 ;;
        --node-rank) NODE_RANK=$2; shift 2 ;;
        --master) MASTER=$2; shift 2 ;;
        --skip-data) SKIP_DATA=1; shift ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
case "$ARCH" in genemask_dnabert_base|genemask_logo|genemask_tiny) ;; *) die "unknown --arch $ARCH" ;; esac
case "$STRATEGY" in genemask|kmer_span|random|genemask_position|global_pmi) ;; *) die "unknown --strategy $STRATEGY" ;; esac
# A curriculum starts from its own local strategy (the name in the checkpoint directory is the curriculum's).
CURRICULUM_FLAGS=()
case "$CURRICULUM" in
    none) RUN_NAME=$STRATEGY ;;
    cm_gems|cm_step)
        RUN_NAME=$CURRICULUM
        CURRICULUM_FLAGS=(--mask-curriculum "$CURRICULUM")
        if [ "$CURRICULUM" = cm_gems ]; then
            STRATEGY=genemask VALIDATE_EVERY=${VALIDATE_EVERY:-500}
            CURRICULUM_FLAGS+=(--cm-gems-threshold "$CM_GEMS_THRESHOLD")
        else
            STRATEGY=kmer_span
        fi ;;
    *) die "unknown --curriculum $CURRICULUM" ;;
esac
[ -z "$VALIDATE_EVERY" ] || CURRICULUM_FLAGS+=(--validate-interval-updates "$VALIDATE_EVERY")
[ "$DRY_RUN" = 1 ] || [ "$SKIP_DATA" = 1 ] || [ -f "$GENOME" ] || die "$GENOME: no such file"

[ -n "$GPUS" ] || GPUS=$(count_gpus)
if [ "$GPUS" -ge 1 ]; then
    DEVICE_FLAGS=(--fp16)
    WORLD=$((GPUS * NNODES))
else
    # No GPU: a CPU run (for trying the recipe; the paper setting needs GPUs).
    DEVICE_FLAGS=(--cpu)
    WORLD=1
fi
UPDATE_FREQ=$(( (SEQS_PER_UPDATE + SEQS_PER_GPU * WORLD - 1) / (SEQS_PER_GPU * WORLD) ))
WORKERS=$(nproc 2>/dev/null || echo 2)
echo "# $WORLD process(es) x $SEQS_PER_GPU sequences x update-freq $UPDATE_FREQ = $((WORLD * SEQS_PER_GPU * UPDATE_FREQ)) sequences per update (asked: $SEQS_PER_UPDATE)"

DATA="$OUT/data"
COUNTS="$OUT/pmi/counts.npz"
TABLE="$OUT/pmi/pmi.tsv"
if [ "$SKIP_DATA" != 1 ]; then
    run genemask-preprocess "$GENOME" --k "$K" --out "$DATA" --workers "$WORKERS" --seed 1
    run genemask-pmi count "$GENOME" --max-n 10 --out "$COUNTS" --workers "$WORKERS"
    run genemask-pmi score "$COUNTS" --out "$TABLE"
fi

pretrain_args "$DATA" "$TABLE" "$ARCH" "$STRATEGY" "$UPDATES" "$LR" "$WARMUP" "$SEQS_PER_GPU" \
    "$OUT/checkpoints/${ARCH}_${RUN_NAME}_${UPDATES}" \
    --update-freq "$UPDATE_FREQ" --num-workers 4 --log-format simple --log-interval 50 \
    --save-interval-updates 1000 --keep-interval-updates 3 "${DEVICE_FLAGS[@]}" "${CURRICULUM_FLAGS[@]}"
if [ "$NNODES" -gt 1 ]; then
    [ -n "$MASTER" ] || die "--nnodes > 1 needs --master HOST:PORT"
    run torchrun --nnodes "$NNODES" --node_rank "$NODE_RANK" --nproc_per_node "$GPUS" \
        --master_addr "${MASTER%:*}" --master_port "${MASTER##*:}" \
        -m fairseq_cli.train "${PRETRAIN_ARGS[@]}" --distributed-world-size "$WORLD"
else
    run fairseq-train "${PRETRAIN_ARGS[@]}"
fi
