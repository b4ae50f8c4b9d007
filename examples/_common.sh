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

# Its arguments as one line that POSIX sh (dash, sbatch --wrap, ssh) reads back as the same words, in any
# locale: each word that needs it in single quotes, a quote inside written '\''. (bash's printf %q is for bash.)
sh_quote() {
    local word line=""
    for word in "$@"; do
        case $word in
            "" ) word="''" ;;
            *[!A-Za-z0-9_./=:,+@%-]* ) word="'${word//\'/\'\\\'\'}'" ;;
        esac
        line+="${line:+ }$word"
    done
    printf '%s' "$line"
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

# The CPU-scale experiments' corpus and 6-mer PMI table, from the bundled human fragments, under WORK.
prepare_bundled_corpus() {
    local work=$1 genome="$REPO_ROOT/data/genomes/human_fewshot_fragments.fa.gz"
    [ -f "$work/data/dict.txt" ] || run genemask-preprocess "$genome" --k 6 --out "$work/data" --seed 1 --force
    run genemask-pmi count "$genome" --max-n 6 --out "$work/pmi/counts.npz" --quiet
    run genemask-pmi score "$work/pmi/counts.npz" --k 6 --out "$work/pmi/pmi_k6.tsv"
}

# The fairseq-train arguments of every pretraining run, built by genemask_plugin/pretraining_command.py from
# named settings (the paper's optimiser and schedule unless told otherwise; its --help lists them), which also
# checks them (a strategy against the masking registry) and, given --gpus, sizes the batch for the node.
# Usage: pretrain_args --data DIR --pmi-table TSV --save-dir DIR --arch NAME --updates N --lr LR --warmup N
#            (--batch-size N | --gpus N ...) [settings] [-- more fairseq-train options]
# Sets the array PRETRAIN_ARGS (for fairseq-train or torchrun -m fairseq_cli.train); exits on a bad setting.
pretrain_args() {
    mapfile -d '' PRETRAIN_ARGS < <("${PYTHON:-python3}" "$PLUGIN_DIR/pretraining_command.py" "$@")
    wait $! || exit 2  # the builder said why, in one line
}

# genemask_tiny pretraining at CPU scale on that corpus; every strategy gets the same data, batch and schedule.
# Usage: pretrain_tiny WORK STRATEGY UPDATES SAVE_DIR [pretrain_args settings, e.g. --seed N] [-- fairseq-train options]
pretrain_tiny() {
    local work=$1 strategy=$2 updates=$3 save=$4 settings=()
    shift 4
    while [ $# -gt 0 ] && [ "$1" != -- ]; do settings+=("$1"); shift; done
    [ $# -eq 0 ] || shift
    pretrain_args --data "$work/data" --pmi-table "$work/pmi/pmi_k6.tsv" --save-dir "$save" --arch genemask_tiny \
        --strategy "$strategy" --updates "$updates" --lr 8e-4 --warmup $((updates / 20)) --batch-size 16 \
        --num-workers 1 --cpu "${settings[@]}" -- --log-format simple "$@"
    run fairseq-train "${PRETRAIN_ARGS[@]}"
}

# Runs examples/pretrain_human.sh once per entry of the array RUNS (its options, split on spaces) on one GENOME and
# OUT_DIR, each with the caller's further options; the corpus and PMI table are built by the first run, or reused
# when OUT_DIR already holds them. Usage: pretrain_series RECIPE GENOME.fa[.gz] OUT_DIR [pretrain_human.sh options]
pretrain_series() {
    local recipe=$1 run options data_flag=()
    shift
    [ $# -ge 2 ] || die "usage: examples/$recipe GENOME.fa[.gz] OUT_DIR [--arch NAME] [--dry-run] [other pretrain_human.sh options]"
    local genome=$1 out
    out=$(realpath -m "$2")
    shift 2
    if [ -f "$out/data/dict.txt" ] && [ -f "$out/pmi/pmi.tsv" ]; then data_flag=(--skip-data); fi
    for run in "${RUNS[@]}"; do
        read -r -a options <<<"$run"
        bash "$REPO_ROOT/examples/pretrain_human.sh" "$genome" "$out" "${options[@]}" "${data_flag[@]}" "$@"
        data_flag=(--skip-data)
    done
}
