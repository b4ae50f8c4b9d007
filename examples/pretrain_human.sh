#!/usr/bin/env bash
# Paper-scale GeneMask pretraining: genome FASTA -> k-mer corpus + PMI table -> fairseq-train.
# Hyperparameters follow the GeneMask paper (docs/genemask_mlm.md): 10k updates, lr 8e-4, warmup 500, Adam (0.9, 0.98),
# eps 1e-6, weight decay 0.01, blocks of 512 tokens, 1 000 sequences per update (the paper's 10 per GPU x 4 GPUs x 25
# accumulation steps) on any GPU count, bf16 or fp16 by GPU, all GPUs of the node. GPUs and clusters: docs/gpu.md.
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
  --seqs-per-gpu N      most sequences per GPU per step (default 10, the paper's; raise it on large GPUs)
  --seqs-per-update N   sequences per update over all GPUs and accumulation steps (default 1000, the paper's)
  --gpus N              GPUs per node (default: all visible)
  --precision P         auto (default: bf16 on compute capability >= 8.0, i.e. Ampere and later, else fp16),
                        bf16 or fp16; --bf16 and --fp16 are short for it
  --num-workers N       data-loading workers per GPU process (default: the node's cores / GPUs - 1, 1..8)
  --nnodes N            nodes for a multi-node run through torchrun (default 1)
  --node-rank R         this node's rank (multi-node)
  --master HOST:PORT    rendezvous address (multi-node)
  --skip-data           reuse OUT_DIR/data and OUT_DIR/pmi from an earlier run
  --data-only           build OUT_DIR/data and OUT_DIR/pmi, then stop (once, before a multi-node run)
  --dry-run             print the exact commands without running them

The per-GPU batch is the largest from --seqs-per-gpu down to half of it that, times the GPUs and --update-freq,
gives exactly --seqs-per-update (1, 2, 4 GPUs: 10 sequences x 100, 50, 25 steps; 8 GPUs: 5 x 25); where none
does, the nearest count above (3 GPUs: 5 x 67 = 1 005; 16 GPUs: 9 x 7 = 1 008).

Multi-node: build the data once (--data-only), then run the same command on every node with --skip-data,
--nnodes, --node-rank and --master; each node starts one process per GPU through torchrun (fairseq reads
torchrun's env:// variables). A Slurm batch script for this is in docs/gpu.md.
TXT
}
source "$(dirname "$0")/_common.sh"

case "${1:-}" in -h|--help) usage; exit 0 ;; esac
[ $# -ge 2 ] || { usage >&2; exit 2; }
GENOME=$1
OUT=$(realpath -m "$2")  # absolute: checkpoints record the --pmi-table path
shift 2
ARCH=genemask_dnabert_base STRATEGY=genemask K=6 UPDATES=10000 LR=8e-4 WARMUP=500
SEQS_PER_GPU=10 SEQS_PER_UPDATE=1000 GPUS="" NNODES=1 NODE_RANK=0 MASTER="" SKIP_DATA=0 DATA_ONLY=0
PRECISION=auto WORKERS=""
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
        --precision) PRECISION=$2; shift 2 ;;
        --bf16) PRECISION=bf16; shift ;;
        --fp16) PRECISION=fp16; shift ;;
        --num-workers) WORKERS=$2; shift 2 ;;
        --nnodes) NNODES=$2; shift 2 ;;
        --node-rank) NODE_RANK=$2; shift 2 ;;
        --master) MASTER=$2; shift 2 ;;
        --skip-data) SKIP_DATA=1; shift ;;
        --data-only) DATA_ONLY=1; shift ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
case "$ARCH" in genemask_dnabert_base|genemask_logo|genemask_tiny) ;; *) die "unknown --arch $ARCH" ;; esac
case "$STRATEGY" in genemask|kmer_span|random|genemask_position|global_pmi) ;; *) die "unknown --strategy $STRATEGY" ;; esac
case "$PRECISION" in auto|bf16|fp16) ;; *) die "--precision must be auto, bf16 or fp16, got $PRECISION" ;; esac
for n in "$SEQS_PER_GPU" "$SEQS_PER_UPDATE" "$NNODES" ${GPUS:+"$GPUS"} ${WORKERS:+"$WORKERS"}; do
    [[ "$n" =~ ^[0-9]+$ ]] || die "expected a whole number, got $n"
done
[ "$SEQS_PER_GPU" -ge 1 ] && [ "$SEQS_PER_UPDATE" -ge 1 ] || die "--seqs-per-gpu and --seqs-per-update must be >= 1"
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
    if [ "$PRECISION" = auto ]; then
        CAPABILITY=$(gpu_compute_capability)
        DEVICE_FLAGS=("$(mixed_precision_flag "$CAPABILITY")")
        echo "# compute capability ${CAPABILITY:-unknown}: ${DEVICE_FLAGS[0]} (force with --precision bf16|fp16)"
    else
        DEVICE_FLAGS=("--$PRECISION")
    fi
    WORLD=$((GPUS * NNODES))
    PROCS_PER_NODE=$GPUS
    # Explicit, so --gpus N on a node with more GPUs uses N, as the batch arithmetic below assumes.
    DEVICE_FLAGS+=(--distributed-world-size "$WORLD")
else
    # No GPU: a CPU run (for trying the recipe; the paper setting needs GPUs).
    DEVICE_FLAGS=(--cpu)
    WORLD=1
    PROCS_PER_NODE=1
fi
# The per-process batch: of the batches from SEQS_PER_GPU down to half of it (smaller ones waste the GPU), the one
# whose update (x WORLD x update-freq) comes closest to SEQS_PER_UPDATE from above, the largest on a tie; so an
# update holds exactly SEQS_PER_UPDATE sequences wherever the GPU count allows.
BEST=0
for ((b = SEQS_PER_GPU; b >= (SEQS_PER_GPU + 1) / 2; b--)); do
    f=$(( (SEQS_PER_UPDATE + b * WORLD - 1) / (b * WORLD) ))
    if [ "$BEST" = 0 ] || (( b * WORLD * f < BEST )); then
        BATCH=$b UPDATE_FREQ=$f BEST=$(( b * WORLD * f ))
    fi
done
[ -n "$WORKERS" ] || WORKERS=$(data_workers "$PROCS_PER_NODE")
CORES=$(nproc 2>/dev/null || echo 2)
echo "# $WORLD process(es) x $BATCH sequences x update-freq $UPDATE_FREQ = $((WORLD * BATCH * UPDATE_FREQ)) sequences per update (asked: $SEQS_PER_UPDATE); $WORKERS data workers per process"

DATA="$OUT/data"
COUNTS="$OUT/pmi/counts.npz"
TABLE="$OUT/pmi/pmi.tsv"
if [ "$SKIP_DATA" != 1 ]; then
    run genemask-preprocess "$GENOME" --k "$K" --out "$DATA" --workers "$CORES" --seed 1
    run genemask-pmi count "$GENOME" --max-n 10 --out "$COUNTS" --workers "$CORES"
    run genemask-pmi score "$COUNTS" --out "$TABLE"
fi
[ "$DATA_ONLY" != 1 ] || exit 0

pretrain_args "$DATA" "$TABLE" "$ARCH" "$STRATEGY" "$UPDATES" "$LR" "$WARMUP" "$BATCH" \
    "$OUT/checkpoints/${ARCH}_${RUN_NAME}_${UPDATES}" \
    --update-freq "$UPDATE_FREQ" --num-workers "$WORKERS" --log-format simple --log-interval 50 \
    --save-interval-updates 1000 --keep-interval-updates 3 "${DEVICE_FLAGS[@]}" "${CURRICULUM_FLAGS[@]}"
if [ "$NNODES" -gt 1 ]; then
    [ -n "$MASTER" ] || die "--nnodes > 1 needs --master HOST:PORT"
    run torchrun --nnodes "$NNODES" --node_rank "$NODE_RANK" --nproc_per_node "$GPUS" \
        --master_addr "${MASTER%:*}" --master_port "${MASTER##*:}" \
        -m fairseq_cli.train "${PRETRAIN_ARGS[@]}"
else
    run fairseq-train "${PRETRAIN_ARGS[@]}"
fi
