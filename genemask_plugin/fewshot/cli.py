"""``genemask-fewshot``: prepare, fine-tune, evaluate and grid-run few-shot classification.

The parser reads only cheap modules, so ``--help`` answers at once; each sub-command imports what
it runs (torch, fairseq, scikit-learn, scipy) when it runs.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from genemask_plugin.masking.strategies import GENEMASK
from genemask_preprocess.atomic_output import Output, claim_outputs
from genemask_preprocess.command_line import command_entry_point

from ..models.defaults import DEFAULT_ARCH, MAX_POSITIONS
from .grid_plan import METHODS, GridConfig, checkpoint_argument, parse_checkpoint_spec
from .gue import TRUNCATE_CHOICES
from .metrics import METRIC_TITLES, METRICS
from .prepare import OUTPUT_NAMES, FewshotDataError, PreparedData, prepare_fewshot_data
from .probe import POOLINGS, PROBE_C, probe_checkpoint, probe_outputs
from .protocol import DRAW_MODES, default_fewshot_roots


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _dataset_path(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected DATASET=PATH, got {text!r}")
    return name, Path(path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genemask-fewshot",
        description="Few-shot fine-tuning and evaluation through fairseq's sentence_prediction task.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="TSVs -> sentence_prediction layout (input0/ + label/)",
                       description="Tokenize few-shot TSVs (or a GUE folder) with the pretraining dictionary "
                                   "into fairseq's sentence_prediction layout: input0/, label/, fewshot.json.")
    p.add_argument("train", type=Path,
                   help="training TSV (header 'sequence<TAB>label'), or a GUE folder (train.csv, "
                        "dev.csv, test.csv with header 'sequence,label'; dev becomes the valid split)")
    p.add_argument("--valid", type=Path, help="validation TSV")
    p.add_argument("--test", type=Path, help="test TSV")
    p.add_argument("--dict", required=True, type=Path, dest="dictionary",
                   help="the pretraining dict.txt (k is read from it)")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--truncate", choices=TRUNCATE_CHOICES,
                   help="cut sequences longer than --max-positions tokens to their first bases (start) "
                        "or their central ones (centre); without it a too-long sequence is an error")
    p.add_argument("--max-positions", type=_positive_int, default=MAX_POSITIONS,
                   help=f"longest item in tokens, <s> and </s> included (default {MAX_POSITIONS}, as our models)")
    p.add_argument("--exclude-overlap", action="store_true",
                   help="drop every test sequence that also occurs in the training file")
    p.add_argument("--no-dev", dest="dev", action="store_false",
                   help="GUE folder: read no dev.csv (none to select the model on; the last checkpoint is scored)")
    p.add_argument("--force", action="store_true",
                   help="write into a non-empty --out, replacing only prepare's own outputs "
                        "(an earlier prepare output is always replaced)")

    p = sub.add_parser("finetune", help="fine-tune one model with the paper's recipe (runs fairseq-train)",
                       description="Fine-tune a pretrained checkpoint (or a model from scratch) on a prepared "
                                   "folder with the paper's recipe, through fairseq-train --task sentence_prediction.")
    p.add_argument("checkpoint", help="pretrained checkpoint, or 'none' to train from scratch")
    p.add_argument("data", type=Path, help="a directory written by `prepare`")
    p.add_argument("--shots", required=True, type=_positive_int,
                   help="the paper's name of the shot set: picks the recipe (< 500: batch 5, "
                        "lr 1e-4, 20 epochs; else batch 15, lr 5e-5, 5 epochs)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True, type=Path, help="save dir (checkpoint_last.pt, train.log)")
    p.add_argument("--arch", default=None,
                   help=f"architecture from scratch (default {DEFAULT_ARCH}); with a checkpoint, "
                        "the checkpoint's own architecture and sizes are used")
    p.add_argument("--epochs", type=_positive_int, help="override the recipe's epochs")
    p.add_argument("--max-updates", type=_positive_int, help="stop after this many updates")
    p.add_argument("--dry-run", action="store_true", help="print the fairseq-train command only")
    p.add_argument("--force", action="store_true",
                   help="replace a run in --out that has other settings (it is continued only with the "
                        "same ones); the new run replaces its files once complete")
    p.epilog = "Extra fairseq-train options go after '--', e.g. `... --out ft -- --fp16`."

    p = sub.add_parser("evaluate", help="score a fine-tuned checkpoint on a prepared split",
                       description="Score a fine-tuned checkpoint on a prepared split: accuracy, macro-F1, MCC "
                                   "and AUROC (JSON), and one prediction per sequence (TSV).")
    p.add_argument("checkpoint", type=Path, help="fine-tuned checkpoint (checkpoint_last.pt)")
    p.add_argument("data", type=Path, help="a directory written by `prepare`")
    p.add_argument("--split", default="test")
    p.add_argument("--out", type=Path, help="metrics JSON (default: CHECKPOINT_DIR/SPLIT_metrics.json)")
    p.add_argument("--predictions", type=Path,
                   help="predictions TSV (default: CHECKPOINT_DIR/SPLIT_predictions.tsv)")
    p.add_argument("--batch-size", type=_positive_int, default=64)

    p = sub.add_parser("probe", help="logistic-regression probe of a frozen pretrained encoder on a prepared dir",
                       description="Embed a prepared folder with a frozen pretrained encoder, fit a logistic "
                                   "regression on its train split and score another split.")
    p.add_argument("checkpoint", help="pretrained checkpoint, or 'none' for a randomly initialised encoder")
    p.add_argument("data", type=Path, help="a directory written by `prepare` (fits on train)")
    p.add_argument("--split", default="test", help="the split scored (default test)")
    p.add_argument("--pooling", choices=POOLINGS, default="mean",
                   help="mean of the last layer over k-mer tokens (default) or its <s> vector")
    p.add_argument("--arch", default=DEFAULT_ARCH, help="architecture of the random encoder ('none')")
    p.add_argument("--out", type=Path, help="metrics JSON (default: DATA/probe_SPLIT_metrics.json)")
    p.add_argument("--predictions", type=Path,
                   help="predictions TSV (default: DATA/probe_SPLIT_predictions.tsv)")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="embedding batch size")
    p.epilog = (f"The regression is fixed, never tuned: standardised features, L2 with C = {PROBE_C}, "
                "lbfgs (docs/fewshot.md).")

    p = sub.add_parser("grid", help="prepare -> fine-tune -> evaluate over checkpoints x datasets x shots x seeds",
                       description="Run the few-shot protocol over checkpoints x datasets x shots x seeds "
                                   "(resumable), then write summary.csv, summary.md and summary.png.")
    p.add_argument("--checkpoint", action="append", required=True, dest="checkpoints",
                   metavar="[LABEL=]CKPT",
                   help="pretrained checkpoint, repeatable; 'none' trains from scratch "
                        "(e.g. --checkpoint GeneMask=ckpt.pt --checkpoint 'from scratch=none')")
    p.add_argument("--datasets", nargs="+", default=["Prom-core"],
                   help="Prom-core, Prom-300, Cohn-enh, Splice-40 (or any DATASET/ with SHOTS/train.tsv "
                        "and test.tsv, or a GUE folder DATASET/ with train.csv, dev.csv, test.csv); "
                        "default Prom-core")
    p.add_argument("--shots", nargs="+", type=_positive_int, default=[10],
                   help="shot sets by the paper's names (Splice-40's hold 10x per class); default 10")
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3], help="default 1 2 3")
    p.add_argument("--out", required=True, type=Path, help="results directory")
    p.add_argument("--fewshot-root", type=Path, action="append", dest="roots",
                   help="directory holding DATASET/SHOTS/train.tsv, repeatable (default: the bundled "
                        "data/fewshot, which holds Prom-core 10 and 50 shots; the full sets need this)")
    p.add_argument("--test-file", type=_dataset_path, action="append", default=[], metavar="DATASET=PATH",
                   help="the file to score a dataset on, e.g. Splice-40=splice_test.tsv")
    p.add_argument("--dict", type=Path, dest="dictionary",
                   help="pretraining dict.txt for every checkpoint (default: the checkpoint's data "
                        "dict.txt, else the fixed k-mer vocabulary of its embedding size)")
    p.add_argument("--arch", default=DEFAULT_ARCH, help="architecture when training from scratch")
    p.add_argument("--epochs", type=_positive_int, help="override the recipe's epochs (quick runs)")
    p.add_argument("--max-updates", type=_positive_int, help="cap the updates per run (quick runs)")
    p.add_argument("--fairseq-args", default="", help="extra fairseq-train options, one quoted string")
    p.add_argument("--keep-checkpoints", action="store_true",
                   help="keep each fine-tuned checkpoint (default: deleted once scored)")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="evaluation batch size")
    p.add_argument("--truncate", choices=TRUNCATE_CHOICES,
                   help=f"for GUE folders: cut sequences too long for {MAX_POSITIONS} tokens "
                        "(see prepare --truncate)")
    p.add_argument("--no-dev", dest="dev", action="store_false",
                   help="for GUE folders: read no dev.csv (see prepare --no-dev)")
    p.add_argument("--method", choices=METHODS, default="finetune",
                   help="finetune: the paper's recipe (default); probe: logistic regression on frozen "
                        "embeddings ('none' is then a randomly initialised encoder)")
    p.add_argument("--draw", choices=DRAW_MODES, default="file",
                   help="file: train on the whole shot file (default); per-class: draw SHOTS per class "
                        "from it for each seed (the paper's meaning for Splice-40, whose files pool 10x)")
    p.add_argument("--pooling", choices=POOLINGS, default="mean", help="probe embedding (default mean)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p = sub.add_parser("stats", help="paired statistics of a multi-seed experiment (STRATEGY@SEED labels)",
                       description="Compare masking strategies over pretraining seeds from grid results whose "
                                   "checkpoints are labelled STRATEGY@SEED.")
    p.add_argument("results", type=Path, help="folder holding grid results (any depth: probe/, finetune/)")
    p.add_argument("--reference", default=GENEMASK.name, help="the strategy compared with every other one")
    p.add_argument("--metric", choices=METRICS, default="accuracy",
                   help="metric of summary.csv and the plot (comparisons.csv has all four)")
    p.add_argument("--out", type=Path, help="output folder (default: RESULTS)")
    p.epilog = ("Writes summary.csv, comparisons.csv, comparisons.md and effects.png: see "
                "genemask_plugin/fewshot/statistics.py and docs/fewshot.md.")
    return parser


FINETUNE_OUTPUTS = ("checkpoint*.pt", "train.log", "finetune.json")
"""What fairseq-train and ``finetune`` write into ``--out``: an input there is refused."""
GRID_OUTPUTS = ("cells", "summary.csv", "summary.md", "summary.png")


def prepared_inputs(data: Path) -> list[Path]:
    """What a command reads of a prepared folder: an output may not be one of these, nor lie in them."""
    return [data / "fewshot.json", data / "input0", data / "label"]


def cmd_stats(args) -> int:
    from .statistics import STATS_FILES, family_sentence, write_statistics  # noqa: PLC0415  (scipy, matplotlib)

    out = args.out or args.results
    with claim_outputs([Output(out / name) for name in STATS_FILES]):
        result = write_statistics(args.results, out, args.reference, args.metric)
    if not result["records"]:
        raise FewshotDataError(f"no finished cells (cells/*/*/*/seed*/metrics.json) under {args.results}")
    pooled = [r for r in result["comparisons"] if r["dataset"] == "all" and r["metric"] == args.metric]
    if not pooled:
        raise FewshotDataError(f"no cell has both {args.reference!r} and another strategy under {args.results}")
    print(f"{result['records']} cells; {args.reference} - baseline, {METRIC_TITLES[args.metric]}, pooled over "
          "each method's cells: effect [95% t-interval over pretraining seeds], t-test p, Holm p; "
          "secondary: percentile bootstrap CI")
    for row in pooled:
        print(f"  {row['method']:8s} vs {row['baseline']:18s} {row['effect']:+.4f} "
              f"[{row['ci_low']:+.4f}, {row['ci_high']:+.4f}] t (df {row['df']})  p {row['p_t']:.3g}  "
              f"Holm p {row['p_holm']:.3g}  bootstrap [{row['bootstrap_low']:+.4f}, {row['bootstrap_high']:+.4f}]  "
              f"({row['pairs']} pairs, {row['pretraining_seeds']} pretraining seeds)")
    print(family_sentence(result["comparisons"]))
    print(f"wrote {', '.join(str(out / name) for name in STATS_FILES)}")
    return 0


def cmd_prepare(args) -> int:
    with claim_outputs([Output(args.out, folder=True, owned=OUTPUT_NAMES)],
                       [args.train, args.valid, args.test, args.dictionary]):
        prepared = prepare_fewshot_data(
            args.train, args.dictionary, args.out, valid=args.valid, test=args.test,
            exclude_overlap=args.exclude_overlap, force=args.force, truncate=args.truncate,
            max_positions=args.max_positions, dev=args.dev,
        )
    stride = f", stride {prepared.stride}" if prepared.stride != 1 else ""
    print(f"{prepared.out}: k={prepared.k}{stride}, classes {', '.join(prepared.labels)}")
    for name, split in prepared.splits.items():
        per_class = ", ".join(f"{label}: {n}" for label, n in split.per_class.items())
        excluded = f", {split.excluded_overlap} overlapping with train removed" if split.excluded_overlap else ""
        cut = f", {split.truncated} truncated ({prepared.truncate})" if split.truncated else ""
        print(f"  {name}: {split.rows} sequences ({per_class}), up to {split.max_positions} tokens with <s> and </s>"
              f"{excluded}{cut}")
    return 0


def cmd_finetune(args) -> int:
    from ..checkpoints import ModelShape, read_model_shape  # noqa: PLC0415  (torch, fairseq)
    from .finetune import FinetuneRun, finetune_into  # noqa: PLC0415

    prepared = PreparedData.load(args.data, check=False)  # its files are checked below, unless a dry run
    checkpoint = checkpoint_argument(args.checkpoint)
    if checkpoint is not None:
        shape = read_model_shape(checkpoint)
        if args.arch and args.arch != shape.arch:
            raise FewshotDataError(f"--arch {args.arch} differs from the checkpoint's {shape.arch}")
    else:
        shape = ModelShape(arch=args.arch or DEFAULT_ARCH)
    run = FinetuneRun(prepared, checkpoint, shape, args.shots, args.seed, args.epochs, args.max_updates,
                      tuple(args.passthrough))
    train_args = run.train_args(args.out)  # what each grid cell runs too
    print("+ fairseq-train " + shlex.join(train_args))
    if args.dry_run:
        return 0
    with claim_outputs([Output(args.out, folder=True, owned=FINETUNE_OUTPUTS)],
                       [checkpoint, *prepared_inputs(args.data)]):
        prepared.check_files()
        final = finetune_into(run, args.out, force=args.force)  # continues a run there only with its settings
    print(f"fine-tuned model: {final}")
    return 0


def _print_scores(result: dict, what: str, order=METRICS) -> None:
    """The scores of an ``evaluate`` or ``probe`` result: one readable line, then one JSON line."""
    scores = "  ".join(
        f"{METRIC_TITLES[m]} {'n/a' if result[m] is None else format(result[m], '.4f')}" for m in order
    )
    print(f"{result['split']} ({result['n']} sequences{what}): {scores}")
    print(json.dumps({m: result[m] for m in METRICS}))


def cmd_evaluate(args) -> int:
    from .evaluate import evaluate_checkpoint, evaluation_outputs  # noqa: PLC0415  (torch, fairseq)

    out, predictions = evaluation_outputs(args.checkpoint, args.split, args.out, args.predictions)
    with claim_outputs([Output(out), Output(predictions, "--predictions")],
                       [args.checkpoint, *prepared_inputs(args.data)]):
        result = evaluate_checkpoint(args.checkpoint, args.data, args.split, out, predictions, args.batch_size)
    try:
        headline = PreparedData.load(args.data).headline_metric
    except FewshotDataError:
        headline = "accuracy"
    _print_scores(result, "", [headline, *(m for m in METRICS if m != headline)])  # GUE data leads with MCC
    return 0


def cmd_probe(args) -> int:
    checkpoint = checkpoint_argument(args.checkpoint)
    out, predictions = probe_outputs(args.data, args.split, args.out, args.predictions)
    with claim_outputs([Output(out), Output(predictions, "--predictions")],
                       [checkpoint, *prepared_inputs(args.data)]):
        result = probe_checkpoint(checkpoint, args.data, args.split, out, predictions, args.pooling,
                                  args.batch_size, args.arch)
    _print_scores(result, ", probe")
    return 0


def cmd_grid(args) -> int:
    from .grid import run_grid  # noqa: PLC0415  (torch, fairseq)

    roots = args.roots or default_fewshot_roots()
    config = GridConfig(
        checkpoints=[parse_checkpoint_spec(text) for text in args.checkpoints],
        datasets=args.datasets,
        shots=args.shots,
        seeds=args.seeds,
        out=args.out,
        roots=roots,
        test_files=dict(args.test_file),
        dictionary=args.dictionary,
        arch=args.arch,
        epochs=args.epochs,
        max_updates=args.max_updates,
        fairseq_args=shlex.split(args.fairseq_args),
        keep_checkpoints=args.keep_checkpoints,
        batch_size=args.batch_size,
        truncate=args.truncate,
        dev=args.dev,
        method=args.method,
        draw=args.draw,
        pooling=args.pooling,
    )
    inputs = [spec.path for spec in config.checkpoints] + [config.dictionary, *config.test_files.values()]
    with claim_outputs([Output(args.out, folder=True, owned=GRID_OUTPUTS)], inputs):
        report = run_grid(config, progress=not args.no_progress)
    print(f"{report.finished} cells run, {report.skipped} already finished, {len(report.failed)} failed")
    for name, message in report.failed:
        print(f"  failed: {name}: {message}", file=sys.stderr)
    if report.summary_rows:
        print((args.out / "summary.md").read_text(), end="")
        print(f"summary: {args.out / 'summary.csv'}, {args.out / 'summary.md'}, {args.out / 'summary.png'}")
    return 1 if report.failed else 0


def run(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    extra: list[str] = []
    if argv[:1] == ["finetune"] and "--" in argv:  # options passed through to fairseq-train
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    args = build_parser().parse_args(argv)
    args.passthrough = extra
    commands = {"prepare": cmd_prepare, "finetune": cmd_finetune, "evaluate": cmd_evaluate,
                "probe": cmd_probe, "grid": cmd_grid, "stats": cmd_stats}
    return commands[args.command](args)


main = command_entry_point("genemask-fewshot", run)


if __name__ == "__main__":
    sys.exit(main())
