"""Benchmark `genemask-fewshot prepare` against `fairseq-preprocess` on the largest few-shot files.

Baseline, measured in the same run: the k-mer column written as text and binarized by
``fairseq-preprocess --only-source --srcdict`` (one worker, in-process, import excluded).
The baseline covers only the sequences; ``prepare`` also parses and checks the TSV,
tokenizes, writes the labels and the metadata. Both outputs are compared byte for byte.

Usage: python benchmarks/bench_fewshot_prepare.py [--repeats 3] [TSV ...]
Default: the bundled data/fewshot/Prom-core files. The largest files of the full sets (as in
docs/fewshot.md) are given as paths: ROOT/{Splice-40/500,Prom-300/1000,Cohn-enh/500}/train.tsv.
"""

import argparse
import csv
import filecmp
import sys
import tempfile
import time
from pathlib import Path

from genemask_plugin.fewshot.prepare import prepare_fewshot_data
from genemask_preprocess.formats.fairseq_dictionary import write_kmer_dictionary

BUNDLED = Path(__file__).resolve().parents[1] / "data" / "fewshot"
DEFAULT_FILES = [BUNDLED / "Prom-core" / "test.tsv", BUNDLED / "Prom-core" / "50" / "train.tsv"]


def fairseq_preprocess(text: Path, dictionary: Path, out: Path) -> None:
    from fairseq_cli import preprocess

    parser = preprocess.options.get_preprocessing_parser()
    args = parser.parse_args(["--only-source", "--trainpref", str(text), "--srcdict", str(dictionary),
                              "--destdir", str(out), "--workers", "1"])
    preprocess.main(args)


def best_of(repeats, function):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="best of N (default 3)")
    parser.add_argument("files", nargs="*", type=Path, default=DEFAULT_FILES,
                        help="few-shot TSVs (default: the bundled Prom-core test and 50-shot files)")
    args = parser.parse_args()
    missing = [str(path) for path in args.files if not path.is_file()]
    if missing:
        print(f"not found: {', '.join(missing)}", file=sys.stderr)
        return 1
    import logging

    import fairseq_cli.preprocess  # noqa: F401  (import outside the timing)

    logging.getLogger().setLevel(logging.WARNING)
    print(f"{'file':<40} {'rows':>6} {'tokens':>8} {'prepare s':>10} {'fairseq s':>10} {'ratio':>6} identical")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        dictionary = tmp / "dict.txt"
        write_kmer_dictionary(dictionary, 6)
        for path in args.files:
            name = "/".join(path.parts[-3:])
            with open(path, newline="") as handle:
                sequences = [row[0] for row in list(csv.reader(handle, delimiter="\t"))[1:]]
            text = tmp / "input.txt"
            text.write_text("".join(s + "\n" for s in sequences))
            ours = tmp / "ours"
            theirs = tmp / "theirs"
            t_ours = best_of(args.repeats, lambda: prepare_fewshot_data(path, dictionary, ours))  # noqa: B023
            t_base = best_of(args.repeats, lambda: fairseq_preprocess(text, dictionary, theirs))  # noqa: B023
            same = all(filecmp.cmp(ours / "input0" / f"train.{ext}", theirs / f"train.{ext}", shallow=False)
                       for ext in ("bin", "idx"))
            tokens = sum(len(s.split()) + 1 for s in sequences)
            print(f"{name:<40} {len(sequences):>6} {tokens:>8} {t_ours:>10.3f} {t_base:>10.3f} "
                  f"{t_base / t_ours:>5.1f}x {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
