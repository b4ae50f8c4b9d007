"""``genemask-motifs``: do the top-PMI k-mers of a PMI table match known TF motifs (JASPAR)?"""

from __future__ import annotations

import argparse
from pathlib import Path

from genemask_preprocess.atomic_output import (
    Output,
    check_can_write,
    check_output_directory,
    claim_outputs,
)
from genemask_preprocess.command_line import command_entry_point, printable
from genemask_preprocess.motifs import MotifAnalysisError
from genemask_preprocess.motifs.enrichment import analyse_enrichment, read_kmer_table
from genemask_preprocess.motifs.jaspar import load_jaspar_motifs
from genemask_preprocess.motifs.pwm_scoring import (
    DEFAULT_FRAGMENT_SCORE,
    DEFAULT_MIN_WINDOW_IC,
    DEFAULT_THRESHOLD,
    FRAGMENT_SCORES,
    score_kmers_against_motifs,
    scoring_matrix,
)
from genemask_preprocess.motifs.report import (
    OUTPUT_NAMES,
    RunInfo,
    summary_sentence,
    write_outputs,
)
from genemask_preprocess.motifs.sequence_sets import compare_sequence_sets, read_fewshot_sequences


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genemask-motifs",
        description="Compare the top-N k-mers of a PMI table (by npmi) with the bottom-N and a "
        "count-matched random set by how often they match JASPAR CORE motifs (offline, via pyjaspar). "
        "Writes DIR/report.md, DIR/matches.tsv and DIR/enrichment.png.",
    )
    parser.add_argument(
        "table", help="PMI table TSV from genemask-pmi (ngram n count naive_pmi pmi npmi rank)"
    )
    parser.add_argument(
        "--k",
        type=int,
        default=6,
        help="k-mer size: the table's rows with n == k are used (default 6)",
    )
    parser.add_argument(
        "--top",
        type=int,
        default=100,
        help="size N of the top, bottom and random sets (default 100)",
    )
    parser.add_argument(
        "--out",
        required=True,
        help="output directory (created if needed; an earlier run's three files are replaced)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help=f"minimum relative PWM score for a match, in [0, 1] (default {DEFAULT_THRESHOLD})",
    )
    parser.add_argument(
        "--fragment-score",
        choices=FRAGMENT_SCORES,
        default=DEFAULT_FRAGMENT_SCORE,
        help="how a k-mer shorter than a motif is scored: 'embedded' = the rest of the site is background, "
        "relative to the full motif's range; 'window' = against each k-long PWM window, relative to that "
        f"window's range (lenient) (default {DEFAULT_FRAGMENT_SCORE})",
    )
    parser.add_argument(
        "--min-window-ic",
        type=float,
        default=DEFAULT_MIN_WINDOW_IC,
        help="with --fragment-score window: skip windows whose mean information content is below this "
        f"many bits per column (default {DEFAULT_MIN_WINDOW_IC})",
    )
    parser.add_argument(
        "--jaspar-release",
        default=None,
        help="JASPAR release bundled in pyjaspar (default: the newest)",
    )
    parser.add_argument(
        "--tax-group", default="vertebrates", help="JASPAR taxonomic group (default vertebrates)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the count-matched random set (default 0)"
    )
    parser.add_argument(
        "--null-draws",
        type=int,
        default=1000,
        help="draws of the count-stratified permutation test of the top set (0 = off; default 1000)",
    )
    parser.add_argument(
        "--sequences", help="few-shot TSV of positive sequences (header sequence<TAB>label)"
    )
    parser.add_argument(
        "--background", help="few-shot TSV of background sequences, compared with --sequences"
    )
    parser.add_argument("--sequences-label", help="keep only rows of --sequences with this label")
    parser.add_argument("--background-label", help="keep only rows of --background with this label")
    return parser


def run(argv: list[str] | None = None) -> int:
    """Run the analysis, write the outputs and print the report's summary sentence."""
    args = build_parser().parse_args(argv)
    if (args.sequences is None) != (args.background is None):
        raise MotifAnalysisError("--sequences and --background go together")
    if not 0.0 <= args.threshold <= 1.0:
        raise MotifAnalysisError(f"--threshold must be in [0, 1], got {args.threshold}")
    if args.null_draws < 0:
        raise MotifAnalysisError(f"--null-draws must be >= 0, got {args.null_draws}")
    with claim_outputs([Output(args.out, folder=True, owned=OUTPUT_NAMES)],
                       [args.table, args.sequences, args.background]):
        check_output_directory(args.out, force=True)
        check_can_write(args.out)
        return _analyse(args)


def _analyse(args) -> int:
    from tqdm import tqdm

    table = read_kmer_table(args.table, args.k)
    if args.sequences is not None:
        positives = read_fewshot_sequences(args.sequences, args.sequences_label)
        background = read_fewshot_sequences(args.background, args.background_label)
    release, motifs = load_jaspar_motifs(args.jaspar_release, tax_group=args.tax_group)
    matrices = [scoring_matrix(motif) for motif in motifs]

    def progress(items):
        return tqdm(  # disable=None: no bar when stderr is not a terminal (logs, batch jobs)
            items, total=len(matrices), disable=None, desc=f"scoring {4**args.k} {args.k}-mers", unit="motif"
        )

    scores = score_kmers_against_motifs(
        matrices, args.k, args.fragment_score, args.min_window_ic, progress
    )
    result = analyse_enrichment(
        table, scores, args.top, args.threshold, args.seed, null_draws=args.null_draws
    )
    comparisons = sequence_null = n_seq = None
    if args.sequences is not None:
        comparisons, sequence_null = compare_sequence_sets(
            positives, background, table, result.groups, result.null_sets
        )
        n_seq = (len(positives), len(background))
    info = RunInfo(  # paths as the report shows them: readable whatever bytes a file name holds
        table_path=printable(args.table),
        release=release,
        tax_group=args.tax_group,
        min_window_ic=args.min_window_ic,
        seed=args.seed,
        sequences_path=None if args.sequences is None else printable(args.sequences),
        background_path=None if args.background is None else printable(args.background),
        sequences_label=args.sequences_label,
        background_label=args.background_label,
    )
    title = f"{printable(Path(args.table).name)}, k={args.k}: JASPAR {release.removeprefix('JASPAR')} {args.tax_group}, {scores.mode}"
    write_outputs(args.out, result, scores, info, title, comparisons, n_seq, sequence_null)
    print(summary_sentence(result))
    print(f"wrote {Path(args.out) / OUTPUT_NAMES[0]}, {', '.join(OUTPUT_NAMES[1:])}")
    return 0


main = command_entry_point("genemask-motifs", run)


if __name__ == "__main__":
    raise SystemExit(main())
