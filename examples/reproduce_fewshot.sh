#!/usr/bin/env bash
# The paper's few-shot evaluation of one pretrained checkpoint: Prom-core, Prom-300, Cohn-enh and
# Splice-40 at every shot count the data README's protocol allows, over >= 3 fine-tuning seeds,
# with the paper's fine-tuning recipe, plus the same grid trained from scratch as the baseline.
usage() {
    cat <<'TXT'
Usage: examples/reproduce_fewshot.sh CHECKPOINT OUT_DIR --fewshot-root DIR [options]

  --label NAME          name of the checkpoint in the tables (default: GeneMask)
  --arch NAME           architecture of the checkpoint (default: genemask_dnabert_base)
  --seeds "S ..."       fine-tuning seeds (default: "1 2 3")
  --fewshot-root DIR    directory holding DATASET/SHOTS/train.tsv of the full sets (required:
                        the bundled data/fewshot holds Prom-core 10 and 50 shots only)
  --splice-test FILE    Splice-40 test set (held back from the public data; default: its 500 file)
  --no-baseline         skip the from-scratch baseline
  --dry-run             print the exact commands without running them
The grid is resumable: rerun the same command to finish an interrupted run.
TXT
}
source "$(dirname "$0")/_common.sh"
case "${1:-}" in -h|--help) usage; exit 0 ;; esac
[ $# -ge 2 ] || { usage >&2; exit 2; }
CHECKPOINT=$1 OUT=$2
shift 2
LABEL=GeneMask ARCH=genemask_dnabert_base SEEDS="1 2 3" BASELINE=1
FEWSHOT_ROOT="" SPLICE_TEST=""
while [ $# -gt 0 ]; do
    case "$1" in
        --label) LABEL=$2; shift 2 ;;
        --arch) ARCH=$2; shift 2 ;;
        --seeds) SEEDS=$2; shift 2 ;;
        --fewshot-root) FEWSHOT_ROOT=$2; shift 2 ;;
        --splice-test) SPLICE_TEST=$2; shift 2 ;;
        --no-baseline) BASELINE=0; shift ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
[ "$DRY_RUN" = 1 ] || [ -f "$CHECKPOINT" ] || die "$CHECKPOINT: no such checkpoint"
[ -n "$FEWSHOT_ROOT" ] || die "--fewshot-root DIR is required (the full few-shot sets are not bundled)"
[ "$DRY_RUN" = 1 ] || [ -d "$FEWSHOT_ROOT" ] || die "few-shot data not found at $FEWSHOT_ROOT (--fewshot-root)"
[ -n "$SPLICE_TEST" ] || SPLICE_TEST="$FEWSHOT_ROOT/Splice-40/500/train.tsv"
CHECKPOINTS=(--checkpoint "$LABEL=$CHECKPOINT")
[ "$BASELINE" = 0 ] || CHECKPOINTS+=(--checkpoint "from scratch=none")

# One grid call per dataset, because the protocol allows different shot counts per dataset.
grid() {
    local dataset=$1
    shift
    echo "== $dataset (log: $(shown_path "$OUT/logs/$dataset.log"))"
    run_logged "$OUT/logs/$dataset.log" genemask-fewshot grid "${CHECKPOINTS[@]}" --arch "$ARCH" --datasets "$dataset" \
        --shots "$@" \
        --seeds $SEEDS --fewshot-root "$FEWSHOT_ROOT" --test-file "Splice-40=$SPLICE_TEST" --out "$OUT"
}
grid Prom-core 10 50 100 500 1000
grid Prom-300 10 50 100 500
grid Cohn-enh 10 50 100
grid Splice-40 10 50 100 500
