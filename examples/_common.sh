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
