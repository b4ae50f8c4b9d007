"""``genemask-pmi``: genome-wide n-gram counts (``count``) and PMI tables (``score``).

    genemask-pmi count GENOME [GENOME ...] --max-n 10 --out COUNTS [--tsv] [--both-strands] [--workers W]
                       [--shard I/N]
    genemask-pmi count --tokens DATA_DIR --max-n 5 --out COUNTS [--tsv] [--workers W] [--shard I/N]
    genemask-pmi merge SHARD [SHARD ...] --out COUNTS [--tsv]
    genemask-pmi score COUNTS --out TABLE [--variant levine|naive|paper] [--min-count 101] [--n 3 6 | --k 6]
"""

from __future__ import annotations

import argparse
import os
import sys

from genemask_preprocess.atomic_output import Output, check_can_write, claim_outputs
from genemask_preprocess.command_line import command_entry_point
from genemask_preprocess.errors import OutputError
from genemask_preprocess.formats.genome import genome_files
from genemask_preprocess.formats.ngram_counts_file import (
    CountsError,
    load_counts,
    save_counts,
    write_counts_tsv,
)
from genemask_preprocess.formats.pmi_table import write_pmi_table
from genemask_preprocess.parallel_map import workers_option
from genemask_preprocess.pmi.ngram_counts import plan_count, run_count
from genemask_preprocess.pmi.scores import DEFAULT_MIN_COUNT, VARIANTS, score_pmi
from genemask_preprocess.pmi.shards import (
    ShardError,
    check_shards,
    describe_inputs,
    exact_total_bases,
    is_done,
    merge_count_files,
    parse_shard,
    shard_metadata,
    shard_slice,
)
from genemask_preprocess.resource_limits import usable_cores

PROG = "genemask-pmi"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Genome-wide n-gram counts and PMI tables for GeneMask masking.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{count,merge,score}")

    count = sub.add_parser(
        "count",
        help="count every n-gram, n = 1..N, over a genome's A/C/G/T runs (or a corpus' tokens)",
        description="Count every n-gram, n = 1..N, over the A/C/G/T runs of FASTA (plain, gzip, "
        "bgzip) or DNABERT-style TSV genomes (several are counted as one). Windows containing a "
        "non-ACGT letter are not counted. With --tokens DATA_DIR, count token n-grams of a binarized "
        "corpus instead (DATA_DIR/train.bin under DATA_DIR/dict.txt; none crosses an item's end), for "
        "pmi_span masking of non-overlapping tokens. With --shard I/N, count only shard I of N (see 'merge').",
    )
    count.add_argument("genome", nargs="*", metavar="GENOME", help="FASTA (.fa, .fa.gz) or TSV genome file(s)")
    count.add_argument(
        "--tokens", metavar="DATA_DIR",
        help="count token n-grams of this genemask-preprocess output (train split) instead of a genome's bases",
    )
    count.add_argument("--max-n", type=int, default=10, metavar="N", help="longest n-gram to count (default: 10)")
    count.add_argument("--out", required=True, metavar="COUNTS", help="output COUNTS file")
    count.add_argument(
        "--tsv", action="store_true",
        help="write the 'ngram<TAB>count' interchange TSV instead of the binary .npz format",
    )
    count.add_argument("--both-strands", action="store_true", help="also count the reverse complement")
    count.add_argument(
        "--workers", type=workers_option, default=min(usable_cores(), 8), metavar="W",
        help="parallel counting processes, at most the usable cores (default: all of them, at most 8); "
        "results do not depend on it",
    )
    count.add_argument(
        "--shard", metavar="I/N",
        help="count only shard I of N (0 <= I < N): the windows starting in the I-th of N equal slices of the "
        "genomes' bases; writes a shard file for 'merge' and skips a shard already done",
    )
    count.add_argument("--quiet", action="store_true", help="no progress bar")

    merge = sub.add_parser(
        "merge",
        help="sum the shards of 'count --shard I/N' into one COUNTS file",
        description="Sum all N shards of 'genemask-pmi count --shard I/N' into one COUNTS file, exactly as one "
        "'count' of the same genomes would give. Refuses shards of different --max-n, strand setting or "
        "inputs, a duplicate shard, or a missing one.",
    )
    merge.add_argument("shards", nargs="+", metavar="SHARD", help="the shard files, in any order")
    merge.add_argument("--out", required=True, metavar="COUNTS", help="output COUNTS file")
    merge.add_argument("--tsv", action="store_true", help="write the 'ngram<TAB>count' TSV instead of .npz")
    merge.add_argument("--quiet", action="store_true", help="no summary line")

    score = sub.add_parser(
        "score",
        help="score n-grams by PMI into a TABLE",
        description="Score n-grams from a COUNTS file (binary or TSV) by naive PMI, PMI_n (min over all "
        "segmentations) and GeneMask's discounted npmi; writes the TSV "
        "'ngram n count naive_pmi pmi npmi rank' (rank 1 = highest npmi within each n). Token n-grams "
        "(count --tokens) are scored alike, segmented into whole tokens; their ngram column holds the "
        "tokens' symbols separated by spaces.",
    )
    score.add_argument("counts", metavar="COUNTS", help="COUNTS file from 'genemask-pmi count' (.npz or TSV)")
    score.add_argument("--out", required=True, metavar="TABLE", help="output PMI table (TSV)")
    score.add_argument(
        "--variant", choices=VARIANTS, default="levine",
        help="levine: PMI_n with p(s)=f(s)/N_|s| (default); naive: rank by naive PMI; "
        "paper: reproduce the published GeneMask table's quirks",
    )
    score.add_argument(
        "--min-count", type=int, default=DEFAULT_MIN_COUNT, metavar="C",
        help=f"n-grams seen fewer than C times get no score; C is also the discount's constant "
        f"(default: {DEFAULT_MIN_COUNT})",
    )
    lengths = score.add_mutually_exclusive_group()
    lengths.add_argument("--n", type=int, nargs="+", metavar="N", help="only score these lengths (default: all >= 2)")
    lengths.add_argument("--k", type=int, metavar="K", help="shorthand for --n K (the k of a k-mer vocabulary)")
    return parser


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    inputs = {"count": lambda: genome_files(args.genome), "merge": lambda: args.shards, "score": lambda: [args.counts]}
    with claim_outputs([Output(args.out)], inputs[args.command]()):
        if args.command == "count":
            _count(args)
        elif args.command == "merge":
            _merge(args)
        else:
            _score(args)
    return 0


def _check_output(path: str) -> None:
    """Fail before a long count, not after it, if ``--out`` cannot be written."""
    if os.path.isdir(path):
        raise OutputError(f"--out {path}: is a directory")
    check_can_write(path)


def _count(args) -> None:
    from tqdm import tqdm

    tqdm.monitor_interval = 0  # no monitor thread in the parent the worker pool forks from
    if args.tokens is not None:
        _count_tokens(args)
        return
    if not args.genome:
        raise CountsError("count needs a GENOME (or --tokens DATA_DIR)")
    _check_output(args.out)
    shard = None
    if args.shard is not None:
        shard = _plan_shard(args)
        if shard is None:
            return
    base_range = (shard["start"], shard["stop"]) if shard else None
    plan = plan_count(args.genome, args.max_n, both_strands=args.both_strands, workers=args.workers,
                      base_range=base_range)
    known = [source.total_bases for source in plan.sources]
    total = plan.total_bases if shard else (None if None in known else sum(known))
    with tqdm(total=total, unit="b", unit_scale=True, desc="counting", disable=args.quiet, file=sys.stderr) as bar:
        counts = run_count(plan, progress=bar.update)
    counts.shard = shard
    _write_counts(counts, args, f"{counts.total(1):,} bases counted")


def _count_tokens(args) -> None:
    from tqdm import tqdm

    from genemask_preprocess.pmi.token_ngrams import (
        check_token_max_n,
        count_token_ngrams,
        open_token_corpus,
    )

    if args.genome:
        raise CountsError("give either GENOME files or --tokens DATA_DIR, not both")
    if args.both_strands:
        raise CountsError("--both-strands applies to genomes; --tokens counts the corpus as binarized "
                          "(build it with genemask-preprocess --reverse-complement for both strands)")
    _check_output(args.out)
    corpus = open_token_corpus(args.tokens)
    check_token_max_n(args.max_n, len(corpus.tokens))
    shard = None
    if args.shard is not None:
        if args.tsv:
            raise ShardError("--shard writes the binary format only; pass --tsv to 'merge' instead")
        index, count = parse_shard(args.shard)
        inputs = describe_inputs(corpus.input_files)
        if is_done(args.out, inputs, index, count, args.max_n, False):
            print(f"{args.out}: shard {index}/{count} already done for these inputs; skipped", file=sys.stderr)
            return
        shard = {**shard_metadata(inputs, shard_slice(index, count, corpus.total_tokens), args.max_n, False),
                 "unit": "tokens"}
    token_range = (shard["start"], shard["stop"]) if shard else None
    total = token_range[1] - token_range[0] if shard else corpus.total_tokens
    with tqdm(total=total, unit="tok", unit_scale=True, desc="counting", disable=args.quiet, file=sys.stderr) as bar:
        counts = count_token_ngrams(corpus, args.max_n, token_range=token_range, workers=args.workers,
                                    progress=bar.update)
    counts.shard = shard
    _write_counts(counts, args, f"{counts.total(1):,} tokens counted ({len(corpus.tokens)}-symbol dictionary)")


def _plan_shard(args) -> dict | None:
    """The shard's metadata, or None when ``--out`` already holds this very shard (then it is skipped)."""
    from genemask_preprocess.formats.genome import open_genome
    from genemask_preprocess.formats.input_file import require_regular_file
    from genemask_preprocess.pmi.ngram_counts import check_max_n

    if args.tsv:
        raise ShardError("--shard writes the binary format only; pass --tsv to 'merge' instead")
    index, count = parse_shard(args.shard)
    max_n = check_max_n(args.max_n)
    for path in args.genome:
        require_regular_file(path, "--shard reads each genome twice (to checksum it, then to count its slice)")
    sources = [open_genome(path) for path in args.genome]  # input errors before hashing
    for source in sources:
        if source.index_note:  # even with --quiet: it says why this shard reads more than its slice
            print(f"{PROG}: note: {source.index_note}; reading {source.path} from its start", file=sys.stderr)
    inputs = describe_inputs(args.genome)
    if is_done(args.out, inputs, index, count, max_n, args.both_strands):
        print(f"{args.out}: shard {index}/{count} already done for these inputs; skipped", file=sys.stderr)
        return None
    piece = shard_slice(index, count, exact_total_bases(sources))
    return shard_metadata(inputs, piece, max_n, args.both_strands)


def _merge(args) -> None:
    _check_output(args.out)
    metas = check_shards(args.shards)
    counts = merge_count_files(args.shards, both_strands=metas[0]["both_strands"])
    unit = "tokens" if counts.tokens is not None else "bases"
    _write_counts(counts, args, f"merged {len(metas)} shards: {counts.total(1):,} {unit}")


def _write_counts(counts, args, what: str) -> None:
    if args.tsv:
        write_counts_tsv(counts, args.out)
    else:
        save_counts(counts, args.out)
    if not args.quiet:
        strands = " on both strands" if counts.both_strands else ""
        print(f"{what}, n = 1..{counts.max_n}{strands}; wrote {args.out}", file=sys.stderr)


def _score(args) -> None:
    _check_output(args.out)
    counts = load_counts(args.counts)
    lengths = [args.k] if args.k is not None else args.n
    scores = score_pmi(counts, variant=args.variant, min_count=args.min_count, lengths=lengths)
    write_pmi_table(scores, args.out)
    rows = sum(len(s) for s in scores.values())
    print(f"scored {rows:,} n-grams (n = {', '.join(map(str, scores))}); wrote {args.out}", file=sys.stderr)


main = command_entry_point(PROG, run)

if __name__ == "__main__":
    sys.exit(main())
