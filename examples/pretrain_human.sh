#!/usr/bin/env bash
# Paper-scale GeneMask pretraining: genome FASTA -> k-mer corpus + PMI table -> fairseq-train.
# Hyperparameters follow the GeneMask paper (docs/genemask_mlm.md): 10k updates, lr 8e-4, warmup 500, Adam (0.9, 0.98),
# eps 1e-6, weight decay 0.01, blocks of 512 tokens, 1 000 sequences per update (the paper's 10 per GPU x 4 GPUs x 25
# accumulation steps) on any GPU count, bf16 or fp16 by GPU, all GPUs of the node. GPUs and clusters: docs/gpu.md.
usage() {
    cat <<'TXT'
Usage: examples/pretrain_human.sh GENOME.fa[.gz] OUT_DIR [options]

  --arch NAME           genemask_dnabert_base (default) or genemask_logo
  --strategy NAME       masking strategy (default genemask), the CM-GEMS curricula cm_gems and cm_step included;
                        the choices: docs/genemask_mlm.md
  --curriculum NAME     the same as --strategy NAME (kept for older command lines)
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
                        bf16, fp16, or fp32 (the authors' runs: no mixed precision); --bf16 and --fp16 are short for it
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
CM_GEMS_THRESHOLD=1.0 VALIDATE_EVERY=""
while [ $# -gt 0 ]; do
    case "$1" in
        --arch) ARCH=$2; shift 2 ;;
        --strategy|--curriculum) STRATEGY=$2; shift 2 ;;
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
for n in "$NNODES" ${GPUS:+"$GPUS"}; do
    [[ "$n" =~ ^[0-9]+$ ]] || die "expected a whole number, got $n"
done
[ "$DRY_RUN" = 1 ] || [ "$SKIP_DATA" = 1 ] || [ -f "$GENOME" ] || die "$GENOME: no such file"
[ -n "$GPUS" ] || GPUS=$(count_gpus)
CORES=$(nproc 2>/dev/null || echo 2)
DATA="$OUT/data"
COUNTS="$OUT/pmi/counts.npz"
TABLE="$OUT/pmi/pmi.tsv"
# cm_gems switches on validation perplexity, so it validates every 500 updates unless told otherwise.
TASK_OPTIONS=()
if [ "$STRATEGY" = cm_gems ]; then
    VALIDATE_EVERY=${VALIDATE_EVERY:-500} TASK_OPTIONS=(--cm-gems-threshold "$CM_GEMS_THRESHOLD")
fi
# The arguments come with this node's batch, --update-freq, precision and data workers, and every setting is
# checked there, before any data is built.
pretrain_args --data "$DATA" --pmi-table "$TABLE" --save-dir "$OUT/checkpoints/${ARCH}_${STRATEGY}_${UPDATES}" \
    --arch "$ARCH" --strategy "$STRATEGY" ${VALIDATE_EVERY:+--validate-every "$VALIDATE_EVERY"} \
    --updates "$UPDATES" --lr "$LR" --warmup "$WARMUP" --seqs-per-gpu "$SEQS_PER_GPU" \
    --seqs-per-update "$SEQS_PER_UPDATE" --gpus "$GPUS" --nnodes "$NNODES" --precision "$PRECISION" \
    --capability "$(gpu_compute_capability)" --cores "$CORES" ${WORKERS:+--num-workers "$WORKERS"} \
    -- "${TASK_OPTIONS[@]}" --log-format simple --log-interval 50 --save-interval-updates 1000 --keep-interval-updates 3

LOG="$OUT/logs/${ARCH}_${STRATEGY}_${UPDATES}.log"
if [ "$SKIP_DATA" != 1 ]; then
    echo "== corpus and PMI table in $(shown_path "$OUT") (log: $(shown_path "$OUT/logs/data.log"))"
    run_logged "$OUT/logs/data.log" genemask-preprocess "$GENOME" --k "$K" --out "$DATA" --workers "$CORES" --seed 1
    run_logged "$OUT/logs/data.log" genemask-pmi count "$GENOME" --max-n 10 --out "$COUNTS" --workers "$CORES"
    run_logged "$OUT/logs/data.log" genemask-pmi score "$COUNTS" --out "$TABLE"
fi
[ "$DATA_ONLY" != 1 ] || exit 0

if [ "$NNODES" -gt 1 ]; then
    [ -n "$MASTER" ] || die "--nnodes > 1 needs --master HOST:PORT"
    echo "== pretrain $ARCH with $STRATEGY, $UPDATES updates, node $NODE_RANK of $NNODES (log: $(shown_path "$LOG"))"
    run_logged "$LOG" torchrun --nnodes "$NNODES" --node_rank "$NODE_RANK" --nproc_per_node "$GPUS" \
        --master_addr "${MASTER%:*}" --master_port "${MASTER##*:}" \
        -m fairseq_cli.train "${PRETRAIN_ARGS[@]}"
else
    echo "== pretrain $ARCH with $STRATEGY, $UPDATES updates (log: $(shown_path "$LOG"))"
    run_logged "$LOG" fairseq-train "${PRETRAIN_ARGS[@]}"
fi
