"""``genemask-validate``: pretrained checkpoints scored under fixed shared masks, beside the corpus's unigram floor."""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import sys
from pathlib import Path

from genemask_plugin.data.block_table import BREAK_MODES
from genemask_plugin.masking.strategies import KMER_SPAN, RANDOM, STRATEGIES
from genemask_preprocess.atomic_output import Output, claim_outputs, write_files_together
from genemask_preprocess.command_line import command_entry_point, printable
from genemask_preprocess.corpus.unigram_floor import unigram_floor
from genemask_preprocess.errors import InputError

DEFAULT_MASKS = (RANDOM.name, KMER_SPAN.name)
PLAIN_STRATEGIES = [name for name, entry in STRATEGIES.items() if not entry.is_curriculum]
COLUMNS = ("checkpoint", "trained_strategy", "trained_seed", "updates", "masks", "mask_seed", "split", "loss_bits",
           "accuracy", "masked_tokens", "blocks", "masks_sha256", "floor_bits", "train_entropy_bits")


class ValidateError(InputError):
    """A bad ``genemask-validate`` argument (one line)."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _strategies(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in PLAIN_STRATEGIES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated strategies from {', '.join(PLAIN_STRATEGIES)}, got {text!r}")
    return list(dict.fromkeys(names))


def _checkpoint(text: str) -> tuple[str, Path]:
    """``[LABEL=]CHECKPOINT``: the label names the checkpoint in the output (default: its path)."""
    label, sep, path = text.partition("=")
    return (label, Path(path)) if sep and label and path else (text, Path(text))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genemask-validate",
        description="Validation loss (bits) and masked-token accuracy of pretrained checkpoints under fixed "
                    "shared masks (the same masked positions and inputs for every checkpoint), beside the "
                    "corpus's unigram floor.")
    parser.add_argument("checkpoints", nargs="+", type=_checkpoint, metavar="[LABEL=]CHECKPOINT",
                        help="genemask_mlm checkpoints (any strategy); LABEL names one in the output")
    parser.add_argument("--data", required=True, type=Path,
                        help="the binarized corpus (dict.txt, train and the scored split)")
    parser.add_argument("--split", default="valid", help="the split scored (default valid); the floor's "
                        "unigram distribution comes from train")
    parser.add_argument("--masks", type=_strategies, default=list(DEFAULT_MASKS),
                        help=f"comma-separated mask strategies, each one set of shared masks (default "
                             f"{','.join(DEFAULT_MASKS)})")
    parser.add_argument("--seed", type=int, default=1, help="the masks' seed (default 1)")
    parser.add_argument("--sample-break-mode", choices=BREAK_MODES, default="complete",
                        help="how items become blocks, as the task's option (default complete)")
    parser.add_argument("--tokens-per-sample", type=_positive_int, default=512, help="block length (default 512)")
    parser.add_argument("--pmi-table", help="PMI table, for mask strategies that need one")
    parser.add_argument("--batch-size", type=_positive_int, default=8, help="blocks per batch (default 8)")
    parser.add_argument("--max-blocks", type=_positive_int, help="score only the split's first N blocks")
    parser.add_argument("--cpu", action="store_true", help="score on the CPU even when a GPU is there")
    parser.add_argument("--csv", type=Path, help="write one row per checkpoint and mask set here")
    parser.add_argument("--json", type=Path, help="write the floor, the mask sets and every score here")
    return parser


def checkpoint_row(label: str, path: Path) -> dict:
    """The checkpoint's own training: strategy, seed, updates."""
    from ..checkpoints import (  # noqa: PLC0415  (torch, fairseq: not for --help)
        config_field,
        load_checkpoint_state,
        task_config,
        trained_updates,
        training_seed,
    )

    state = load_checkpoint_state(path)
    strategy = config_field(task_config(state), "mask_strategy")
    return {"checkpoint": printable(label), "trained_strategy": str(strategy) if strategy is not None else "",
            "trained_seed": training_seed(state), "updates": trained_updates(state)}


def _csv_text(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    outputs = [Output(path, option) for path, option in ((args.csv, "--csv"), (args.json, "--json")) if path is not None]
    with claim_outputs(outputs, [*(path for _, path in args.checkpoints), args.data]):
        return validate(args)


def validate(args: argparse.Namespace) -> int:
    """Score every checkpoint under each shared mask set; print and write the results."""
    import torch  # noqa: PLC0415  (torch, fairseq: not for --help)

    from ..tasks.genemask_mlm import GeneMaskMLMTask  # noqa: PLC0415
    from .shared_mask_loss import SharedMasks  # noqa: PLC0415

    logging.getLogger().setLevel(logging.WARNING)  # fairseq's model zoo sets the root logger to DEBUG
    # The task's advice (e.g. --centre-prob for k != 6) names training options this command does not have.
    logging.getLogger(GeneMaskMLMTask.__module__).setLevel(logging.ERROR)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    floor = unigram_floor(args.data, valid=args.split)
    print(f"unigram floor of {args.data}: {args.split} under train's unigram {floor.cross_entropy_bits:.3f} bits "
          f"(train entropy {floor.train_entropy_bits:.3f} bits, {floor.symbols} symbols)")
    trained = [checkpoint_row(label, path) for label, path in args.checkpoints]  # every file checked first
    rows, mask_sets = [], []
    for strategy in args.masks:
        try:
            masks = SharedMasks(args.data, strategy, args.seed, split=args.split,
                                sample_break_mode=args.sample_break_mode, tokens_per_sample=args.tokens_per_sample,
                                pmi_table=args.pmi_table, batch_size=args.batch_size, max_blocks=args.max_blocks)
        except ValueError as err:
            raise ValidateError(str(err)) from None
        mask_sets.append({"masks": strategy, "mask_seed": args.seed, "masked_tokens": masks.masked_tokens,
                          "blocks": masks.blocks, "masks_sha256": masks.digest})
        print(f"{strategy} masks (seed {args.seed}): {masks.masked_tokens} masked tokens in {masks.blocks} blocks "
              f"of {args.split}, sha256 {masks.digest[:12]}")
        for (_, path), info in zip(args.checkpoints, trained, strict=True):
            score = masks.score(masks.load_model(path), device)
            rows.append({**info, "masks": strategy, "mask_seed": args.seed, "split": args.split,
                         "loss_bits": round(score.loss_bits, 6), "accuracy": round(score.accuracy, 6),
                         "masked_tokens": score.masked_tokens, "blocks": masks.blocks, "masks_sha256": masks.digest,
                         "floor_bits": round(floor.cross_entropy_bits, 6),
                         "train_entropy_bits": round(floor.train_entropy_bits, 6)})
            print(f"  {info['checkpoint']} ({info['trained_strategy'] or '?'}, seed {info['trained_seed']}, "
                  f"{info['updates']} updates): {score.loss_bits:.3f} bits "
                  f"({score.loss_bits - floor.cross_entropy_bits:+.3f} vs the floor), accuracy {score.accuracy:.2%}")
    outputs = {args.csv: _csv_text(rows)} if args.csv else {}
    if args.json:
        report = {"data": printable(args.data), "split": args.split, "floor": floor.as_dict(), "mask_sets": mask_sets,
                  "scores": rows}
        outputs[args.json] = json.dumps(report, indent=1) + "\n"
    write_files_together(outputs)
    return 0


main = command_entry_point("genemask-validate", run)


if __name__ == "__main__":
    sys.exit(main())
