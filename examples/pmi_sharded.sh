#!/usr/bin/env bash
# Sharded PMI counting on a scheduler you already have: count N shards in parallel, merge them, score.
# The merged counts are byte-identical to one `genemask-pmi count` of the same genomes (docs/pmi.md).
usage() {
    cat <<'TXT'
Usage: examples/pmi_sharded.sh OUT_DIR GENOME [GENOME ...] [options]

Writes OUT_DIR/shards/shard-I.npz (I = 0..N-1), OUT_DIR/counts.npz (the merge) and OUT_DIR/pmi_kK.tsv.

  --shards N          number of shards (default 8; see docs/pmi.md, "Choosing N")
  --max-n N           longest n-gram (default 10)
  --k K               score n-grams of this length into the table (default 6)
  --both-strands      also count the reverse complement
  --jobs P            local: shards counted at once through xargs -P (default: CPU count)
  --slurm             submit a SLURM job array (sbatch --array=0-(N-1)) and a merge job that waits for it
  --cpus C            SLURM: CPUs per shard task, passed to count --workers (default 1)
  --mem MEM           SLURM: memory per shard task (default 4G; docs/pmi.md has measured figures)
  --time T            SLURM: time limit per task (default 04:00:00)
  --partition P       SLURM: partition (default: the cluster's default)
  --dry-run           print the exact commands without running them

Rerunning resubmits every shard; each one already done (same genomes, shard, --max-n and strands)
is skipped in seconds, so after a failure only the missing shards are counted again.
TXT
}
source "$(dirname "$0")/_common.sh"

case "${1:-}" in -h|--help) usage; exit 0 ;; esac
[ $# -ge 2 ] || { usage >&2; exit 2; }
OUT=$(realpath -m "$1")  # absolute: SLURM jobs may start in another directory
shift
GENOMES=()
while [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; do
    GENOMES+=("$(realpath -m "$1")")
    shift
done
[ ${#GENOMES[@]} -ge 1 ] || die "give at least one GENOME after OUT_DIR"
SHARDS=8 MAX_N=10 K=6 STRANDS=() JOBS=$(nproc 2>/dev/null || echo 2) SLURM=0 CPUS=1 MEM=4G TIME=04:00:00
PARTITION=()
while [ $# -gt 0 ]; do
    case "$1" in
        --shards) SHARDS=$2; shift 2 ;;
        --max-n) MAX_N=$2; shift 2 ;;
        --k) K=$2; shift 2 ;;
        --both-strands) STRANDS=(--both-strands); shift ;;
        --jobs) JOBS=$2; shift 2 ;;
        --slurm) SLURM=1; shift ;;
        --cpus) CPUS=$2; shift 2 ;;
        --mem) MEM=$2; shift 2 ;;
        --time) TIME=$2; shift 2 ;;
        --partition) PARTITION=(--partition "$2"); shift 2 ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
[[ "$SHARDS" =~ ^[1-9][0-9]*$ ]] || die "--shards must be a positive integer, got $SHARDS"
if [ "$DRY_RUN" != 1 ]; then
    for genome in "${GENOMES[@]}"; do [ -f "$genome" ] || die "$genome: no such file"; done
fi

LAST=$((SHARDS - 1))
COUNTS="$OUT/counts.npz"
TABLE="$OUT/pmi_k$K.tsv"
MERGE=(genemask-pmi merge)
for i in $(seq 0 "$LAST"); do MERGE+=("$OUT/shards/shard-$i.npz"); done
MERGE+=(--out "$COUNTS")
SCORE=(genemask-pmi score "$COUNTS" --k "$K" --out "$TABLE")

if [ "$SLURM" = 1 ]; then
    # sbatch --wrap runs its command with /bin/sh (dash on Debian): quoted for POSIX sh, not with bash's
    # printf %q, whose $'...' (for any non-ASCII byte under LC_ALL=C) dash reads as a literal '$'.
    # One array task per shard; the task reads its shard number from SLURM_ARRAY_TASK_ID at run time.
    COUNT_LINE="$(sh_quote genemask-pmi count "${GENOMES[@]}" --max-n "$MAX_N" "${STRANDS[@]}" --workers "$CPUS" \
        --quiet) --shard \"\$SLURM_ARRAY_TASK_ID/$SHARDS\" --out $(sh_quote "$OUT/shards/shard-")\"\$SLURM_ARRAY_TASK_ID.npz\""
    MERGE_LINE=$(sh_quote "${MERGE[@]}")
    SCORE_LINE=$(sh_quote "${SCORE[@]}")
    LOGS=${OUT//%/%%}/logs  # sbatch reads % in --output as a pattern (%a: the array index); %% is a literal %
    SUBMIT=(sbatch --parsable --job-name=genemask-pmi-count --array="0-$LAST" --cpus-per-task="$CPUS"
            --mem="$MEM" --time="$TIME" "${PARTITION[@]}" --output="$LOGS/count-%a.log" --wrap "$COUNT_LINE")
    run mkdir -p "$OUT/logs" "$OUT/shards"
    if [ "$DRY_RUN" = 1 ]; then
        run "${SUBMIT[@]}"
        JOB=COUNT_JOB_ID
    else
        printf '+'; printf ' %q' "${SUBMIT[@]}"; printf '\n'
        JOB=$("${SUBMIT[@]}")
        JOB=${JOB%%;*}  # --parsable prints "jobid[;cluster]"
    fi
    run sbatch --parsable --job-name=genemask-pmi-merge --dependency="afterok:$JOB" --cpus-per-task=1 --mem="$MEM" \
        --time="$TIME" "${PARTITION[@]}" --output="$LOGS/merge.log" --wrap "$MERGE_LINE && $SCORE_LINE"
    [ "$DRY_RUN" = 1 ] || echo "# submitted: count array $JOB (shards 0-$LAST), then the merge; logs in $OUT/logs"
else
    # The same shards on this machine, P at a time; {} is each shard number in turn. Printed as the pipeline it
    # is, so that the line also runs when copied alone.
    run mkdir -p "$OUT/shards"
    COUNT=(xargs -P "$JOBS" -I{} genemask-pmi count "${GENOMES[@]}" --max-n "$MAX_N" "${STRANDS[@]}"
           --workers 1 --quiet --shard "{}/$SHARDS" --out "$OUT/shards/shard-{}.npz")
    printf '+ seq 0 %s |' "$LAST"
    printf ' %q' "${COUNT[@]}"
    printf '\n'
    [ "$DRY_RUN" = 1 ] || seq 0 "$LAST" | "${COUNT[@]}"
    run "${MERGE[@]}"
    run "${SCORE[@]}"
fi
