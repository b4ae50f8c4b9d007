"""The one fairseq-train command that pretrains a GeneMask model, built from named settings.

Every pretraining run of the project starts here: the shell recipes (``examples/_common.sh``:
``pretrain_args`` runs this file), ``benchmarks/gpu_check.py`` and ``benchmarks/bench_vs_hf.py``.
What is not a named setting is the paper's (docs/genemask_mlm.md): Adam (0.9, 0.98), eps 1e-6,
weight decay 0.01, blocks of 512 tokens, no epoch checkpoints; named settings default to the
authors' too (gradient clipping at norm 1.0, the default their pretraining scripts leave in place;
linear warm-up then linear decay to 0; seed 1). docs/genemask_method.md, section 8, lists every
difference from the authors' code.

- :func:`pretraining_arguments`: ``--task genemask_mlm`` with a masking strategy or a curriculum;
- :func:`masked_lm_arguments`: the same run with fairseq's own ``--task masked_lm``, for speed ratios;
- :func:`plan_node`: a node's GPUs, compute capability and cores turned into the per-process batch,
  ``--update-freq``, precision and data workers, so that an update holds a given number of sequences.

Run as ``python -m genemask_plugin.pretraining_command`` it prints the arguments NUL-separated, for
bash's ``mapfile -d ''``; its options are the settings (``--help``), and everything after ``--`` is
passed on to fairseq-train. It imports neither torch nor fairseq, so a recipe pays a fraction of a
second per command.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from genemask_plugin.masking.config import MaskingConfig
from genemask_plugin.masking.strategies import STRATEGIES, strategy_named

PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))
DEFAULT_STRATEGY = MaskingConfig.strategy  # the dataclass default
ADAM_BETAS = (0.9, 0.98)
ADAM_EPS = 1e-6
WEIGHT_DECAY = 0.01
CLIP_NORM = "1.0"
"""The authors' gradient clipping: their scripts pass no --max_grad_norm, whose default is 1.0."""
TOKENS_PER_SAMPLE = 512

Number = int | float | str  # a string is passed on as written (the recipes keep "8e-4")


def _text(value: Number) -> str:
    """A number as a person writes it for fairseq: 1e-6, not Python's 1e-06."""
    return re.sub(r"e([-+]?)0+(?=\d)", r"e\1", str(value))


def _common_arguments(
    data, task: str, task_options: list[str], save_dir, *, arch: str, updates: int, lr: Number, warmup: int,
    batch_size: int, update_freq: int = 1, num_workers: int | None = None, device: Sequence[str] = (),
    seed: int = 1, clip_norm: Number = CLIP_NORM, lr_scheduler: str = "polynomial_decay",
    validate_every: int | None = None, extra: Sequence[str] = (),
) -> list[str]:
    """The arguments every pretraining run shares; ``task`` (also the criterion) and its options differ."""
    schedule = ["--lr-scheduler", lr_scheduler, "--warmup-updates", str(warmup)]
    if lr_scheduler == "polynomial_decay":  # its decay horizon; other schedulers reject the option
        schedule += ["--total-num-update", str(updates)]
    return [
        str(data), "--user-dir", PLUGIN_DIR, "--task", task, "--criterion", task, "--arch", arch, *task_options,
        "--tokens-per-sample", str(TOKENS_PER_SAMPLE),
        "--optimizer", "adam", "--adam-betas", f"({_text(ADAM_BETAS[0])},{_text(ADAM_BETAS[1])})",
        "--adam-eps", _text(ADAM_EPS), "--weight-decay", _text(WEIGHT_DECAY), "--clip-norm", _text(clip_norm),
        "--lr", _text(lr), *schedule, "--max-update", str(updates),
        "--batch-size", str(batch_size), "--seed", str(seed), "--no-epoch-checkpoints", "--save-dir", str(save_dir),
        *(["--update-freq", str(update_freq)] if update_freq != 1 else []),
        *(["--num-workers", str(num_workers)] if num_workers is not None else []),
        *device,
        *(["--validate-interval-updates", str(validate_every)] if validate_every else []),
        *map(str, extra),
    ]


def pretraining_arguments(data, pmi_table, save_dir, *, strategy: str | None = None, **settings) -> list[str]:
    """fairseq-train's arguments (without the program name) for ``--task genemask_mlm``.

    ``strategy`` (a masking registry entry, curricula included) defaults to the task's. The other
    settings are keyword arguments: ``arch``, ``updates``, ``lr``, ``warmup``, ``batch_size``
    (required); ``update_freq`` (1), ``num_workers`` (fairseq's), ``device`` (flags such as
    ``--bf16``, ``--cpu``), ``seed`` (1), ``clip_norm`` (1.0, the authors'; 0.0: none), ``lr_scheduler``
    (polynomial_decay, which decays to 0 at ``updates``), ``validate_every`` (updates; default: at
    epoch ends), ``extra`` (more fairseq-train options, last).
    """
    strategy = strategy_named(DEFAULT_STRATEGY if strategy is None else strategy).name
    masking = ["--mask-strategy", strategy, "--pmi-table", str(pmi_table)]
    return _common_arguments(data, "genemask_mlm", masking, save_dir, **settings)


def masked_lm_arguments(data, save_dir, **settings) -> list[str]:
    """The same run with fairseq's ``--task masked_lm`` (BERT masking), one chunk per block as ours."""
    return _common_arguments(data, "masked_lm", ["--sample-break-mode", "complete"], save_dir, **settings)


# --------------------------------------------------------------------------------------------- a node's GPUs


def split_update(seqs_per_update: int, seqs_per_gpu: int, processes: int) -> tuple[int, int]:
    """``(per-process batch, update-freq)`` for updates of ``seqs_per_update`` sequences.

    Of the batches from ``seqs_per_gpu`` down to half of it (smaller ones waste the GPU), the one whose
    update (x ``processes`` x update-freq) comes closest to ``seqs_per_update`` from above, the largest
    on a tie: exactly ``seqs_per_update`` wherever the process count allows.
    """
    if min(seqs_per_update, seqs_per_gpu, processes) < 1:
        raise ValueError("sequences per update, sequences per GPU and processes must be >= 1")

    def update_freq(batch: int) -> int:
        return math.ceil(seqs_per_update / (batch * processes))

    batch = min(range(seqs_per_gpu, (seqs_per_gpu + 1) // 2 - 1, -1), key=lambda b: b * processes * update_freq(b))
    return batch, update_freq(batch)


def mixed_precision(capability: str | None) -> str:
    """bf16 from compute capability 8.0 on (Ampere): fp16's speed with fp32's range, no loss scaling;
    fp16 before, or when the capability is unknown. (The authors trained in fp32: ``precision="fp32"``.)"""
    major = (capability or "").split(".")[0]
    return "bf16" if major.isdigit() and int(major) >= 8 else "fp16"


def data_workers(cores: int, processes: int) -> int:
    """The node's cores shared among its training processes, one left to each process itself, 1..8
    (more rarely helps fairseq's loader)."""
    return min(8, max(1, cores // max(processes, 1) - 1))


@dataclass(frozen=True)
class NodePlan:
    """How a run uses a node: what :func:`pretraining_arguments` takes, and what to tell the user."""

    batch_size: int
    update_freq: int
    num_workers: int
    device: tuple[str, ...]
    notes: tuple[str, ...]


def plan_node(*, gpus: int, nnodes: int = 1, capability: str | None = None, cores: int = 2,
              seqs_per_gpu: int, seqs_per_update: int, precision: str = "auto",
              num_workers: int | None = None) -> NodePlan:
    """The run's shape on ``nnodes`` nodes of ``gpus`` GPUs each (0: a CPU run, one process).

    ``precision`` auto picks by the weakest GPU's ``capability``; the world size is passed explicitly,
    so ``gpus`` below the node's count is what the batch arithmetic assumes.
    """
    notes = []
    if gpus >= 1:
        if precision == "auto":
            precision = mixed_precision(capability)
            notes.append(f"# compute capability {capability or 'unknown'}: --{precision} "
                         "(force with --precision bf16|fp16)")
        world = gpus * nnodes
        device = (*([] if precision == "fp32" else [f"--{precision}"]), "--distributed-world-size", str(world))
    else:  # for trying a recipe; the paper's settings need GPUs
        world, device = 1, ("--cpu",)
    batch, update_freq = split_update(seqs_per_update, seqs_per_gpu, world)
    workers = data_workers(cores, max(gpus, 1)) if num_workers is None else num_workers
    notes.append(f"# {world} process(es) x {batch} sequences x update-freq {update_freq} = "
                 f"{world * batch * update_freq} sequences per update (asked: {seqs_per_update}); "
                 f"{workers} data workers per process")
    return NodePlan(batch, update_freq, workers, device, tuple(notes))


# --------------------------------------------------------------------------------------------- command line


def _whole(minimum: int):
    def parse(text: str) -> int:
        if not text.isdigit() or int(text) < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}")
        return int(text)
    return parse


def _number(text: str) -> str:
    """A real number, kept as written."""
    try:
        float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    return text


class _OneLineErrors(argparse.ArgumentParser):
    """Usage errors in one line: the user ran a recipe, not this file, so its usage would mislead."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineErrors(
        prog="pretraining_command.py", description=__doc__.splitlines()[0],
        usage="%(prog)s --data DIR --pmi-table TSV --save-dir DIR --arch NAME --updates N --lr LR --warmup N "
              "(--batch-size N | --gpus N ...) [options] [-- fairseq-train options]",
        epilog="Prints the fairseq-train arguments NUL-separated "
               "(bash: mapfile -d '' ARGS < <(python -m genemask_plugin.pretraining_command ...)).")
    run = parser.add_argument_group("the run")
    run.add_argument("--data", required=True, help="the binarized corpus (genemask-preprocess --out)")
    run.add_argument("--pmi-table", required=True, help="the PMI table (genemask-pmi score --out)")
    run.add_argument("--save-dir", required=True, help="checkpoints")
    run.add_argument("--arch", required=True, help="a genemask_* architecture")
    run.add_argument("--strategy", choices=list(STRATEGIES),
                     help="masking strategy, curricula included (default: the task's)")
    run.add_argument("--validate-every", type=_whole(1),
                     help="validate every N updates (default: at epoch ends)")
    run.add_argument("--updates", type=_whole(1), required=True, help="updates (also the decay horizon)")
    run.add_argument("--lr", type=_number, required=True, help="peak learning rate")
    run.add_argument("--warmup", type=_whole(0), required=True, help="warm-up updates")
    run.add_argument("--seed", type=_whole(0), default=1, help="seed (default 1)")
    run.add_argument("--clip-norm", type=_number, default=CLIP_NORM,
                     help=f"gradient clipping (default {CLIP_NORM}, the authors'; 0.0: none)")
    run.add_argument("--lr-scheduler", default="polynomial_decay", help="fairseq's (default polynomial_decay)")
    run.add_argument("--num-workers", type=_whole(0), help="data workers per process (with --gpus: from --cores)")
    fixed = parser.add_argument_group("a fixed batch")
    fixed.add_argument("--batch-size", type=_whole(1), help="sequences per process and step")
    fixed.add_argument("--update-freq", type=_whole(1), default=1, help="steps per update (default 1)")
    fixed.add_argument("--cpu", action="store_true", help="train on the CPU")
    node = parser.add_argument_group("or the batch from a node's GPUs (--gpus)")
    node.add_argument("--gpus", type=_whole(0), help="GPUs per node (0: a CPU run)")
    node.add_argument("--nnodes", type=_whole(1), default=1, help="nodes (default 1)")
    node.add_argument("--capability", default="", help="the weakest GPU's compute capability, e.g. 8.0")
    node.add_argument("--cores", type=_whole(1), default=2, help="the node's cores (default 2)")
    node.add_argument("--seqs-per-gpu", type=_whole(1), default=10, help="most sequences per GPU and step (10)")
    node.add_argument("--seqs-per-update", type=_whole(1), default=1000, help="sequences per update (1000)")
    node.add_argument("--precision", choices=("auto", "bf16", "fp16", "fp32"), default="auto",
                      help="auto: bf16 from compute capability 8.0 on, else fp16; fp32: no mixed precision "
                           "(the authors' runs)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    extra = []
    if "--" in argv:  # the rest is fairseq-train's
        argv, extra = argv[:argv.index("--")], argv[argv.index("--") + 1:]
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.batch_size is None) == (args.gpus is None):
        parser.error("give either --batch-size (a fixed batch) or --gpus (the batch from the node)")
    shape: dict = {"batch_size": args.batch_size, "update_freq": args.update_freq, "num_workers": args.num_workers,
                   "device": ("--cpu",) if args.cpu else ()}
    if args.gpus is not None:
        plan = plan_node(gpus=args.gpus, nnodes=args.nnodes, capability=args.capability, cores=args.cores,
                         seqs_per_gpu=args.seqs_per_gpu, seqs_per_update=args.seqs_per_update,
                         precision=args.precision, num_workers=args.num_workers)
        shape = {"batch_size": plan.batch_size, "update_freq": plan.update_freq, "num_workers": plan.num_workers,
                 "device": plan.device}
        print("\n".join(plan.notes), file=sys.stderr)
    try:
        arguments = pretraining_arguments(
            args.data, args.pmi_table, args.save_dir, strategy=args.strategy,
            validate_every=args.validate_every, arch=args.arch,
            updates=args.updates, lr=args.lr, warmup=args.warmup, seed=args.seed, clip_norm=args.clip_norm,
            lr_scheduler=args.lr_scheduler, extra=extra, **shape)
    except ValueError as err:
        parser.error(str(err))
    sys.stdout.write("".join(f"{argument}\0" for argument in arguments))
    return 0


if __name__ == "__main__":
    sys.exit(main())
