"""``genemask-preprocess``: genome FASTA/TSV (one or several) -> fairseq binarized k-mer (or SentencePiece) data."""

from __future__ import annotations

import argparse
import sys

from genemask_preprocess.atomic_output import Output, claim_outputs
from genemask_preprocess.command_line import command_entry_point
from genemask_preprocess.corpus.build import (
    OUTPUT_FILES,
    CorpusConfig,
    PreprocessError,
    build_corpus,
)
from genemask_preprocess.corpus.chunking import ChunkingOptions
from genemask_preprocess.formats.genome import genome_files
from genemask_preprocess.parallel_map import workers_option
from genemask_preprocess.resource_limits import usable_cores

PROG = "genemask-preprocess"


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except the uninformative ``None`` and ``False``."""

    def _get_help_string(self, action):
        if action.default in (None, False):
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Chunk a genome as GeneMask does (random offset < 1000, then 511-base chunks with p=0.5, "
            "otherwise 6..510; split at non-ACGT runs), drop exact duplicates, split train/valid, and write "
            "fairseq's binarized data: DIR/{train,valid}.{bin,idx}, DIR/dict.txt, DIR/preprocess.json. "
            "Several genomes make one corpus, deduplicated across all of them."
        ),
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("genome", nargs="+", metavar="GENOME",
                        help="FASTA (plain, gzip or bgzip) or DNABERT-style TSV (first column DNA or k-mers); "
                             "several genomes make one corpus")
    parser.add_argument("--sample", action="append", default=[], metavar="GENOME=FRACTION",
                        help="keep only this fraction (0 < F <= 1) of GENOME's chunks, drawn per chunk from the seed, "
                             "so a large genome does not swamp small ones; GENOME as given or its file name; repeatable")
    parser.add_argument("--k", type=int, default=None, help="k-mer size, 1..7 (required with --tokenizer kmer; 6 in the paper)")
    parser.add_argument("--stride", type=int, default=1, metavar="S",
                        help="k-mers: 1 = overlapping k-mers (DNABERT, the paper); S = k = non-overlapping k-mers, "
                             "a remainder shorter than k as single-base tokens (the Nucleotide Transformer's rule)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--seed", type=int, default=1, help="seed for chunking and the train/valid split")
    parser.add_argument("--valid-fraction", type=float, default=0.1, help="fraction of chunks in the valid split (0 = train only)")
    parser.add_argument("--workers", type=workers_option, default=usable_cores(),
                        help="worker processes, at most the usable cores (default: all of them, here %(default)s)")
    parser.add_argument("--format", choices=("binary", "text"), default="binary",
                        help="binary: fairseq mmap .bin/.idx; text: train.txt/valid.txt of space-separated tokens "
                             "for `fairseq-preprocess --only-source --srcdict DIR/dict.txt`")
    parser.add_argument("--tokenizer", choices=("kmer", "sentencepiece"), default="kmer",
                        help="kmer: fixed k-mer vocabulary (see --k, --stride); sentencepiece: train a BPE model "
                             "(DNABERT-2 style)")
    parser.add_argument("--reverse-complement", action="store_true", help="also add the reverse complement of every chunk")
    parser.add_argument("--force", action="store_true", help="replace this tool's files in an output directory that holds data")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no summary line")
    chunking = parser.add_argument_group("chunking (defaults: the paper's)")
    defaults = ChunkingOptions()
    chunking.add_argument("--chunk-length", type=int, default=defaults.length, help="full chunk length in bases")
    chunking.add_argument("--min-chunk-length", type=int, default=defaults.min_length,
                          help="shortest chunk; other chunks are uniform in MIN..LENGTH-1")
    chunking.add_argument("--full-chunk-probability", type=float, default=defaults.full_length_probability,
                          help="probability that a chunk has the full length")
    chunking.add_argument("--max-start-offset", type=int, default=defaults.max_start_offset,
                          help="each record starts at a random offset below this (0 = none)")
    sp = parser.add_argument_group("sentencepiece")
    sp.add_argument("--sp-vocab-size", type=int, default=4096, help="BPE vocabulary size (DNABERT-2: 4096)")
    sp.add_argument("--sp-training-chunks", type=int, default=20000,
                    help="chunks sampled (seeded) from the genome to train the BPE model on")
    return parser


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        chunking = ChunkingOptions(
            length=args.chunk_length,
            min_length=args.min_chunk_length,
            full_length_probability=args.full_chunk_probability,
            max_start_offset=args.max_start_offset,
        )
    except ValueError as err:
        raise PreprocessError(str(err)) from None
    config = CorpusConfig(
        genome=args.genome[0] if len(args.genome) == 1 else args.genome,
        sample=_parse_samples(args.sample),
        out_dir=args.out,
        k=args.k,
        stride=args.stride,
        tokenizer=args.tokenizer,
        output_format=args.format,
        seed=args.seed,
        valid_fraction=args.valid_fraction,
        reverse_complement=args.reverse_complement,
        workers=args.workers,
        force=args.force,
        chunking=chunking,
        sp_vocab_size=args.sp_vocab_size,
        sp_training_chunks=args.sp_training_chunks,
    )
    bars = []

    def start_bar(total: int | None):
        from tqdm import tqdm

        tqdm.monitor_interval = 0  # no monitor thread: the worker pool forks after the bar exists
        bars.append(tqdm(total=total, unit="bp", unit_scale=True, desc=PROG, dynamic_ncols=True, leave=False,
                         file=sys.stderr))
        return bars[0].update

    try:
        with claim_outputs([Output(args.out, folder=True, owned=OUTPUT_FILES)], genome_files(args.genome)):
            summary = build_corpus(config, progress=None if args.quiet else start_bar)
    finally:
        for bar in bars:  # before any error line, so that the line is not drawn over
            bar.close()
    if not args.quiet:
        print(f"{PROG}: {config.out_dir}: {summary.one_line()}", file=sys.stderr)
    for warning in summary.warnings:  # even with --quiet: each says the output is not what was asked
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    return 0


def _parse_samples(options: list[str]) -> dict[str, float]:
    """``["mouse.fa=0.25"]`` -> ``{"mouse.fa": 0.25}``; one-line errors for a malformed or repeated option."""
    samples: dict[str, float] = {}
    for option in options:
        name, sep, value = option.rpartition("=")
        try:
            fraction = float(value)
        except ValueError:
            fraction = None
        if not sep or not name or fraction is None:
            raise PreprocessError(f"--sample {option}: expected GENOME=FRACTION, e.g. mouse.fa.gz=0.25")
        if name in samples:
            raise PreprocessError(f"--sample {name}: given twice")
        samples[name] = fraction
    return samples


main = command_entry_point(PROG, run)


if __name__ == "__main__":
    sys.exit(main())
