# Sourced by the recipes in examples/: the dry-run runner and small helpers.
# With DRY_RUN=1 (or --dry-run) every command is printed, shell-quoted, and not run.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DRY_RUN=${DRY_RUN:-0}

run() {
    printf '+'
    printf ' %q' "$@"
    printf '\n'
    if [ "$DRY_RUN" != 1 ]; then
        "$@"
    fi
}

# Like `run`, but the command's whole output goes to the file LOG, after the command line, and the console shows
# only its progress and results (examples/run_with_log.py says what passes; --hide REGEX keeps more lines out).
# A failure shows the log's last lines and path. Usage: run_logged [--hide REGEX] LOG COMMAND [ARG ...]
run_logged() {
    local options=()
    if [ "$1" = --hide ]; then options=(--hide "$2"); shift 2; fi
    local log=$1
    shift
    if [ "$DRY_RUN" = 1 ]; then
        run "$@"
    else
        "${PYTHON:-python3}" "$REPO_ROOT/examples/run_with_log.py" "${options[@]}" "$log" "$@"
    fi
}

# A path as the user would type it: relative to the current folder when it lies below it.
shown_path() {
    case "$1" in "$PWD"/*) echo "${1#"$PWD"/}" ;; *) echo "$1" ;; esac
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

# The CPU-scale experiments' corpus and 6-mer PMI table, from the bundled human fragments, under WORK
# (logged to WORK/logs/corpus.log).
prepare_bundled_corpus() {
    local work=$1 genome="$REPO_ROOT/data/genomes/human_fewshot_fragments.fa.gz" log="$1/logs/corpus.log"
    echo "== corpus and 6-mer PMI table in $(shown_path "$work") (log: $(shown_path "$log"))"
    [ -f "$work/data/dict.txt" ] || run_logged "$log" genemask-preprocess "$genome" --k 6 --out "$work/data" --seed 1 \
        --force
    run_logged "$log" genemask-pmi count "$genome" --max-n 6 --out "$work/pmi/counts.npz" --quiet
    run_logged "$log" genemask-pmi score "$work/pmi/counts.npz" --k 6 --out "$work/pmi/pmi_k6.tsv"
}

# The bundled fragments as another tokenization (K STRIDE: 1 1 single nucleotides, K K non-overlapping k-mers) in
# WORK/data, and its token n-gram PMI table (pmi_span's collocations) in WORK/pmi/pmi_tokens.tsv.
# Usage: prepare_bundled_token_corpus WORK K STRIDE
prepare_bundled_token_corpus() {
    local work=$1 k=$2 stride=$3 genome="$REPO_ROOT/data/genomes/human_fewshot_fragments.fa.gz" log="$1/logs/corpus.log"
    local tokens=(--k "$k")
    [ "$k" = 1 ] || tokens+=(--stride "$stride")
    echo "== corpus (${tokens[*]}) and token n-gram PMI table in $(shown_path "$work") (log: $(shown_path "$log"))"
    [ -f "$work/data/dict.txt" ] || run_logged "$log" genemask-preprocess "$genome" "${tokens[@]}" --out "$work/data" \
        --seed 1 --force
    run_logged "$log" genemask-pmi count --tokens "$work/data" --max-n 5 --out "$work/pmi/token_counts.npz" --quiet
    run_logged "$log" genemask-pmi score "$work/pmi/token_counts.npz" --out "$work/pmi/pmi_tokens.tsv"
}

# The settings every experiment recipe (settle_experiment.sh, compute_ladder.sh) shares: pretraining seeds,
# strategy variants, the few-shot sets, jobs, where results and work go. Usage: experiment_defaults NAME, then in
# the recipe's option loop, after its own options: *) experiment_option "$@"; shift "$SHIFT" ;;
experiment_defaults() {
    PRETRAIN_SEEDS="1 2 3 4 5"
    VARIANTS=()
    PROBE_DATASETS=""
    PROBE_SHOTS=""
    PROBE_SEEDS="1 2 3"
    FINETUNE_DATASETS=""
    FINETUNE_SHOTS="10 50"
    FINETUNE_SEEDS="1 2 3"
    JOBS=1
    SKIP_FINETUNE=0
    FEWSHOT_ROOT=""
    OUT="$REPO_ROOT/docs/results/$1"
    WORK=$(realpath -m "${WORK:-$REPO_ROOT/work/$1}")
}

# One shared option of an experiment recipe (see experiment_defaults); sets SHIFT to the words it took.
experiment_option() {
    SHIFT=2
    case "$1" in
        --pretrain-seeds) PRETRAIN_SEEDS=${2-} ;;
        --strategies) STRATEGIES=${2-} ;;
        --variant) VARIANTS+=("${2-}") ;;
        --probe-datasets) PROBE_DATASETS=${2-} ;;
        --probe-shots) PROBE_SHOTS=${2-} ;;
        --probe-seeds) PROBE_SEEDS=${2-} ;;
        --finetune-datasets) FINETUNE_DATASETS=${2-} ;;
        --finetune-shots) FINETUNE_SHOTS=${2-} ;;
        --finetune-seeds) FINETUNE_SEEDS=${2-} ;;
        --jobs) JOBS=${2-} ;;
        --fewshot-root) FEWSHOT_ROOT=${2-} ;;
        --out) OUT=${2-} ;;
        --skip-finetune) SKIP_FINETUNE=1; SHIFT=1 ;;
        --dry-run) DRY_RUN=1; SHIFT=1 ;;
        -h|--help) sed -n '2,/^source/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (--help lists them)" ;;
    esac
    [ "$SHIFT" = 1 ] || [ $# -ge 2 ] || die "$1 needs a value"
}

# The few-shot sets a recipe scores its checkpoints on. Without --fewshot-root, the bundled Prom-core (10 and 50
# shots); with it, the full sets, probing $1 (a list of datasets) unless the user named others. Reads and sets
# FEWSHOT_ROOT, PROBE_DATASETS, FINETUNE_DATASETS and PROBE_SHOTS; checks JOBS. Usage: resolve_fewshot_sets "D1 D2"
resolve_fewshot_sets() {
    if [ -z "$FEWSHOT_ROOT" ]; then
        FEWSHOT_ROOT="$REPO_ROOT/data/fewshot"  # bundled: Prom-core 10 and 50 shots
        PROBE_DATASETS=${PROBE_DATASETS:-Prom-core}
        FINETUNE_DATASETS=${FINETUNE_DATASETS:-Prom-core}
        PROBE_SHOTS=${PROBE_SHOTS:-"10 50"}
        local dataset
        for dataset in $PROBE_DATASETS $FINETUNE_DATASETS; do
            [ -d "$FEWSHOT_ROOT/$dataset" ] || die "$dataset is not bundled: pass --fewshot-root DIR with the full few-shot sets"
        done
    else
        PROBE_DATASETS=${PROBE_DATASETS:-$1}
        FINETUNE_DATASETS=${FINETUNE_DATASETS:-"Prom-core Splice-40"}
        PROBE_SHOTS=${PROBE_SHOTS:-"10 50 100"}
    fi
    [ "$DRY_RUN" = 1 ] || [ -d "$FEWSHOT_ROOT" ] || die "few-shot data not found at $FEWSHOT_ROOT (--fewshot-root)"
    [[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || die "--jobs must be a positive integer, got $JOBS"
}

# VARIANTS as a recipe runs them: each of STRATEGIES as LABEL=STRATEGY, then the --variant ones ("LABEL=STRATEGY
# OPTIONS"). Usage: strategy_variants (reads STRATEGIES and VARIANTS, rewrites VARIANTS)
strategy_variants() {
    local extra=("${VARIANTS[@]}") strategy
    VARIANTS=()
    for strategy in $STRATEGIES; do
        VARIANTS+=("$strategy=$strategy")
    done
    VARIANTS+=("${extra[@]}")
}

# The fairseq-train arguments of every pretraining run, built by genemask_plugin/pretraining_command.py from
# named settings (the paper's optimiser and schedule unless told otherwise; its --help lists them), which also
# checks them (a strategy against the masking registry) and, given --gpus, sizes the batch for the node.
# Usage: pretrain_args --data DIR --pmi-table TSV --save-dir DIR --arch NAME --updates N --lr LR --warmup N
#            (--batch-size N | --gpus N ...) [settings] [-- more fairseq-train options]
# Sets the array PRETRAIN_ARGS (for fairseq-train or torchrun -m fairseq_cli.train); exits on a bad setting.
pretrain_args() {
    mapfile -d '' PRETRAIN_ARGS < <("${PYTHON:-python3}" -m genemask_plugin.pretraining_command "$@")
    wait $! || exit 2  # the builder said why, in one line
}

# The task options of every CPU-scale run on the bundled fragments (docs/genemask_mlm.md): whole items packed into
# 512-token blocks, so GeneMask has ~7.5 centres per block to rank (one item per block gives it ~1), and the
# learned positions started from a scaled sinusoid, so a small model learns to read a k-mer off its neighbours.
CPU_SCALE_TASK_OPTIONS=(--sample-break-mode complete --position-init sinusoidal)

# genemask_tiny pretraining at CPU scale on that corpus; every strategy gets the same data, batch and schedule.
# fairseq-train's whole output goes to SAVE_DIR.log, beside SAVE_DIR; the console shows a line per log interval.
# A batch is 2 packed blocks (~870 tokens), about what 16 single items (~950 tokens) were before packing.
# Usage: pretrain_tiny WORK STRATEGY UPDATES SAVE_DIR [pretrain_args settings, e.g. --seed N] [-- fairseq-train options]
pretrain_tiny() {
    local work=$1 strategy=$2 updates=$3 save=$4 settings=()
    shift 4
    while [ $# -gt 0 ] && [ "$1" != -- ]; do settings+=("$1"); shift; done
    [ $# -eq 0 ] || shift
    pretrain_args --data "$work/data" --pmi-table "$work/pmi/pmi_k6.tsv" --save-dir "$save" --arch genemask_tiny \
        --strategy "$strategy" --updates "$updates" --lr 8e-4 --warmup $((updates / 20)) --batch-size 2 \
        --num-workers 1 --cpu "${settings[@]}" -- "${CPU_SCALE_TASK_OPTIONS[@]}" --log-format simple "$@"
    echo "== pretrain genemask_tiny with $strategy, $updates updates (log: $(shown_path "$save.log"))"
    run_logged "$save.log" fairseq-train "${PRETRAIN_ARGS[@]}"
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
