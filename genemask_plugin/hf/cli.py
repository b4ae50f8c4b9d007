"""``genemask-hf``: export our checkpoints to transformers, import DNABERT-layout BERT models (and our own exports)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from genemask_preprocess.atomic_output import Output, claim_outputs
from genemask_preprocess.command_line import command_entry_point, warn
from genemask_preprocess.errors import InputError
from genemask_preprocess.kmers import KmerTokenization
from genemask_preprocess.resource_limits import memory_limits

TRANSFORMERS_ADDRESS_SPACE = 512 << 20
"""Address space to leave for importing transformers and loading a model (its import alone maps about 280 MiB)."""


class MemoryLimitError(InputError):
    """Too little memory under a per-process limit to load transformers (refused before it is tried)."""


def require_room_for_transformers() -> None:
    """Refuse in one line, before importing transformers, under a per-process limit it cannot load within:
    its compiled extensions can die of SIGSEGV, which no handler catches, when an allocation fails."""
    for limit in memory_limits():
        if limit.per_process and limit.available < TRANSFORMERS_ADDRESS_SPACE:
            raise MemoryLimitError(f"loading transformers needs about {TRANSFORMERS_ADDRESS_SPACE >> 20} MiB of "
                                   f"memory, but only {limit.available >> 20} MiB is available ({limit.source})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genemask-hf",
        description="Hugging Face interop: fairseq RoBERTa checkpoint <-> transformers folder (offline).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("export", help="fairseq checkpoint -> transformers RoBERTa folder + tokenizer",
                       description="Write a fairseq checkpoint as a transformers folder: RobertaForMaskedLM (a "
                                   "pretrained model) or RobertaForSequenceClassification (a fine-tuned one), "
                                   "with a fast k-mer tokenizer and a model card.")
    p.add_argument("checkpoint", type=Path,
                   help="a genemask_mlm (masked LM) or sentence_prediction (classifier) checkpoint")
    p.add_argument("out", type=Path, help="output folder (config.json, model.safetensors, tokenizer, README.md)")
    p.add_argument("--data", type=Path,
                   help="the data folder the checkpoint was trained on, if it moved: the pretraining "
                        "corpus (dict.txt) or the prepared few-shot folder (input0/, label/)")
    p.add_argument("--force", action="store_true", help="replace the export files in a non-empty OUT")
    p = sub.add_parser("import", help="DNABERT-layout BertForMaskedLM folder (or a masked LM exported by "
                                      "'genemask-hf export') -> fairseq checkpoint + dict.txt",
                       description="Convert a DNABERT-layout BertForMaskedLM folder (or a masked LM exported by "
                                   "'genemask-hf export') into a fairseq checkpoint and dict.txt that genemask_mlm "
                                   "pretraining and genemask-fewshot continue from.")
    p.add_argument("model", type=Path, help="folder with config.json, model.safetensors or "
                                            "pytorch_model.bin, and vocab.txt (BERT) or tokenizer.json (our export)")
    p.add_argument("out", type=Path, help="output folder (checkpoint.pt, dict.txt, import.json)")
    p.add_argument("--k", type=int, help="fail unless vocab.txt holds k-mers of this k")
    p.add_argument("--force", action="store_true", help="replace the import files in a non-empty OUT")
    return parser


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging  # noqa: PLC0415

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def cmd_export(args) -> int:
    require_room_for_transformers()
    from .export import EXPORT_FILES, export_checkpoint  # noqa: PLC0415  (imports transformers)

    _quiet_transformers()
    with claim_outputs([Output(args.out, "OUT_DIR", folder=True, owned=EXPORT_FILES)], [args.checkpoint, args.data]):
        result = export_checkpoint(args.checkpoint, args.out, data=args.data, force=args.force)
    classes = f", classes {', '.join(result.labels)}" if result.labels else ""
    print(f"{result.out}: {result.kind}, {KmerTokenization(result.k, result.stride).describe()} tokenizer{classes}")
    return 0


def cmd_import(args) -> int:
    require_room_for_transformers()
    from .dnabert_import import IMPORT_FILES, WEIGHT_FILES, import_dnabert  # noqa: PLC0415  (imports transformers)
    from .roberta_import import import_roberta, is_roberta_folder  # noqa: PLC0415

    _quiet_transformers()
    read = [args.model / name for name in ("config.json", "vocab.txt", *WEIGHT_FILES)]
    importer = import_roberta if is_roberta_folder(args.model) else import_dnabert
    with claim_outputs([Output(args.out, "OUT_DIR", folder=True, owned=IMPORT_FILES)], read):
        result = importer(args.model, args.out, expected_k=args.k, force=args.force)
    checkpoint = result.out / "checkpoint.pt"
    if result.untrained_lm_head:
        warn(f"{result.untrained_lm_head.removeprefix('imported from ')}: imported its encoder only, with an "
             "untrained head (genemask-fewshot finetune starts from it; fairseq-train --task genemask_mlm "
             "trains the head from scratch)")
    tokens = KmerTokenization(result.k, result.stride).describe()
    print(f"{checkpoint}: {tokens}, {' '.join(result.fairseq_flags())}; dictionary {result.out / 'dict.txt'}")
    print("continue pretraining: fairseq-train CORPUS --user-dir genemask_plugin --task genemask_mlm "
          f"--criterion genemask_mlm {shlex.join(result.fairseq_flags())} --restore-file {shlex.quote(str(checkpoint))} "
          "--reset-optimizer --reset-dataloader --reset-meters --reset-lr-scheduler ...")
    return 0


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local; never reach the hub
    # transformers' per-file progress bars would add lines to a one-line error or signal message.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    return {"export": cmd_export, "import": cmd_import}[args.command](args)


main = command_entry_point("genemask-hf", run)


if __name__ == "__main__":
    sys.exit(main())
