# Sourced by the recipes in examples/: the dry-run runner and small helpers.
# With DRY_RUN=1 (or --dry-run) every command is printed, shell-quoted, and not run.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PLUGIN_DIR="$REPO_ROOT/genemask_plugin"
DRY_RUN=${DRY_RUN:-0}

run() {
    printf '+'
    printf ' %q' "$@"
    printf '\n'
    if [ "$DRY_RUN" != 1 ]; then
        "$@"
    fi
}

die() {
    echo "error: $*" >&2
    exit 2
}

# Number of visible CUDA GPUs (0 on a CPU machine).
count_gpus() {
    if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then
        awk -F, '{print NF}' <<<"$CUDA_VISIBLE_DEVICES"
    elif command -v nvidia-smi >/dev/null 2>&1; then
        nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true
    else
        echo 0
    fi
}

# The lowest compute capability of the node's GPUs, e.g. "8.0" ("" when nvidia-smi cannot tell).
gpu_compute_capability() {
    command -v nvidia-smi >/dev/null 2>&1 || return 0
    nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | sort -n | head -n 1 | tr -d ' ' || true
}

# Mixed precision for these GPUs: bf16 from Ampere on (compute capability >= 8.0), where it runs at fp16 speed
# with fp32's range (no loss scaling); fp16 before, or when the capability is unknown.
# Usage: mixed_precision_flag [CAPABILITY]; prints --bf16 or --fp16.
mixed_precision_flag() {
    local major=${1%%.*}
    if [ -n "$major" ] && [ "$major" -ge 8 ] 2>/dev/null; then echo --bf16; else echo --fp16; fi
}

# Data-loading workers for each training process: the node's cores shared among its GPU processes, one core
# left to each process itself, between 1 and 8 (more rarely helps fairseq's loader).
# Usage: data_workers PROCESSES_PER_NODE
data_workers() {
    local cores per
    cores=$(nproc 2>/dev/null || echo 2)
    per=$(( cores / ($1 > 0 ? $1 : 1) - 1 ))
    echo $(( per < 1 ? 1 : (per > 8 ? 8 : per) ))
}

# The CPU-scale experiments' corpus and 6-mer PMI table, from the bundled human fragments, under WORK.
prepare_bundled_corpus() {
    local work=$1 genome="$REPO_ROOT/data/genomes/human_fewshot_fragments.fa.gz"
    [ -f "$work/data/dict.txt" ] || run genemask-preprocess "$genome" --k 6 --out "$work/data" --seed 1 --force
    run genemask-pmi count "$genome" --max-n 6 --out "$work/pmi/counts.npz" --quiet
    run genemask-pmi score "$work/pmi/counts.npz" --k 6 --out "$work/pmi/pmi_k6.tsv"
}

# The one genemask_mlm pretraining command of every recipe: the paper's optimiser (Adam (0.9, 0.98),
# eps 1e-6, weight decay 0.01, no clipping, polynomial decay after warm-up), 512-token blocks, seed 1.
# Usage: pretrain_args DATA PMI_TABLE ARCH STRATEGY UPDATES LR WARMUP BATCH SAVE_DIR [extra fairseq-train options]
# Sets the array PRETRAIN_ARGS: the fairseq-train arguments (for fairseq-train or torchrun -m fairseq_cli.train).
pretrain_args() {
    local data=$1 table=$2 arch=$3 strategy=$4 updates=$5 lr=$6 warmup=$7 batch=$8 save=$9
    shift 9
    PRETRAIN_ARGS=(
        "$data" --user-dir "$PLUGIN_DIR"
        --task genemask_mlm --criterion genemask_mlm --arch "$arch"
        --mask-strategy "$strategy" --pmi-table "$table" --tokens-per-sample 512
        --optimizer adam --adam-betas "(0.9,0.98)" --adam-eps 1e-6 --weight-decay 0.01 --clip-norm 0.0
        --lr "$lr" --lr-scheduler polynomial_decay --warmup-updates "$warmup"
        --total-num-update "$updates" --max-update "$updates"
        --batch-size "$batch" --seed 1 --no-epoch-checkpoints --save-dir "$save" "$@"
    )
}

# genemask_tiny pretraining at CPU scale on that corpus; every strategy gets the same data, seed, batch and
# schedule. Usage: pretrain_tiny WORK STRATEGY UPDATES SAVE_DIR [extra fairseq-train options]
pretrain_tiny() {
    local work=$1 strategy=$2 updates=$3 save=$4
    shift 4
    pretrain_args "$work/data" "$work/pmi/pmi_k6.tsv" genemask_tiny "$strategy" "$updates" 8e-4 \
        $((updates / 20)) 16 "$save" --num-workers 1 --cpu --log-format simple "$@"
    run fairseq-train "${PRETRAIN_ARGS[@]}"
}
