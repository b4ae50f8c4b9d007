"""The console commands under fault injection: one row per command, one function per file kind.

To cover a new command, add a :class:`Command` row to :data:`COMMANDS` (and, if it reads a new
kind of file, its corruptions to :data:`CORRUPTIONS`). Every test in ``test_faults.py`` is
parametrised over these tables, so the new row gets every fault class.

Paths in ``argv`` are relative to the case's workspace, a fresh copy of the inputs that
:func:`build_inputs` made once per session.
"""

from __future__ import annotations

import gzip
import json
import random
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PREPROCESS = "genemask_preprocess.corpus.cli:main"
PMI = "genemask_preprocess.pmi.cli:main"
MOTIFS = "genemask_preprocess.motifs.cli:main"
FEWSHOT = "genemask_plugin.fewshot.cli:main"
HF = "genemask_plugin.hf.cli:main"
VALIDATE = "genemask_plugin.validation.cli:main"


@dataclass(frozen=True)
class Command:
    """A console command and one good invocation of it.

    ``reads`` maps each input argument's path to its file kind (a key of CORRUPTIONS);
    ``out`` is what the command writes (file or folder); ``fsize`` a file-size limit that
    the good invocation's output exceeds; ``pause`` where the run is stopped for the signal
    cases (see fault_harness); ``slow`` marks rows that run fairseq-train.
    """

    name: str
    prog: str
    entry: str
    argv: tuple[str, ...]
    out: str
    reads: dict[str, str] = field(default_factory=dict)
    fsize: int | None = 4096
    pause: str = "commit"
    pause_module: str | None = None
    slow: bool = False
    extra_cases: dict[str, tuple[str, Callable[[Path], None]]] = field(default_factory=dict)
    """Command-specific hostile inputs: name -> (path, edit)."""
    force: str | None = None
    """The option that lets the command write into a folder holding other files (``--force``)."""


# ---------------------------------------------------------------------------------------------
# The inputs, made once per session


def random_dna(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("ACGT") for _ in range(n))


def write_fasta(path: Path, records: dict[str, str], width: int = 60) -> None:
    with open(path, "w") as handle:
        for name, seq in records.items():
            handle.write(f">{name}\n")
            handle.writelines(seq[i : i + width] + "\n" for i in range(0, len(seq), width))


def write_fewshot(path: Path, rows: list[tuple[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("sequence\tlabel\n" + "".join(f"{s}\t{label}\n" for s, label in rows))


def build_inputs(root: Path, run: Callable[[str, list[str]], None]) -> None:
    """Every file a command reads, made by the commands themselves (``run(entry, argv)``)."""
    rng = random.Random(0)
    write_fasta(root / "genome.fa", {f"chr{i}": random_dna(rng, 3000) for i in range(4)})
    with open(root / "genome.fa", "rb") as src, gzip.open(root / "genome.fa.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    for name, n in (("train.tsv", 10), ("test.tsv", 10)):
        write_fewshot(root / name, [(random_dna(rng, 40), str(i % 2)) for i in range(n)])
    for name in ("10/train.tsv", "test.tsv"):  # the protocol's layout: DATASET/SHOTS/train.tsv, DATASET/test.tsv
        write_fewshot(root / "fewshot_root" / "Toy" / name, [(random_dna(rng, 40), str(i % 2)) for i in range(10)])
    run(PREPROCESS, ["genome.fa", "--k", "3", "--out", "corpus", "--workers", "1", "--quiet"])
    run(PMI, ["count", "genome.fa", "--max-n", "4", "--out", "counts.npz", "--workers", "1", "--quiet"])
    run(PMI, ["count", "genome.fa", "--max-n", "4", "--out", "counts.tsv", "--tsv", "--workers", "1", "--quiet"])
    run(PMI, ["score", "counts.npz", "--out", "pmi.tsv", "--min-count", "1"])
    run(FEWSHOT, ["prepare", "train.tsv", "--test", "test.tsv", "--dict", "corpus/dict.txt", "--out", "prep"])
    run(FEWSHOT, ["finetune", "none", "prep", "--shots", "10", "--max-updates", "1", "--out", "ft"])
    (root / "ft" / "train.log").unlink()
    run("fault_commands:pretrain", ["corpus", "--user-dir", str(Path(__file__).resolve().parents[2] / "genemask_plugin"),
                                    "--task", "genemask_mlm", "--criterion", "genemask_mlm", "--arch", "genemask_tiny",
                                    "--mask-strategy", "kmer_span", "--optimizer", "adam", "--lr", "1e-3",
                                    "--batch-size", "4", "--max-update", "1", "--cpu", "--num-workers", "0",
                                    "--disable-validation", "--no-epoch-checkpoints", "--save-dir", "pre"])
    run(HF, ["export", "pre/checkpoint_last.pt", "hf_model", "--data", "corpus"])


def pretrain(argv: list[str]) -> int:
    """``fairseq-train ARGV`` in this process (the fault harness runs an entry as ``entry(argv)``)."""
    import sys

    from fairseq_cli import train

    # fairseq skips --user-dir's tasks/ and models/ when the package is already imported (this process
    # imports genemask_plugin for other rows); registering it is then ours to do, as docs/genemask_mlm.md says.
    import genemask_plugin.registration  # noqa: F401

    sys.argv = ["fairseq-train", *argv]
    train.cli_main()
    return 0


# ---------------------------------------------------------------------------------------------
# Corruptions: each edits one input in place, as a damaged disk or a hand edit would


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def binary_garbage(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 8)


def empty(path: Path) -> None:
    path.write_bytes(b"")


def _fasta_lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def _edit_sequence_line(path: Path, text: str) -> None:
    lines = _fasta_lines(path)
    lines[3] = lines[3][:20] + text + lines[3][20 + len(text) :]
    path.write_text("".join(lines))


def fasta_nul(path: Path) -> None:
    _edit_sequence_line(path, "\0")


def fasta_space(path: Path) -> None:
    _edit_sequence_line(path, " ")


def fasta_tab(path: Path) -> None:
    _edit_sequence_line(path, "\t")


def fasta_star(path: Path) -> None:
    _edit_sequence_line(path, "*")


def fasta_digit(path: Path) -> None:
    _edit_sequence_line(path, "7")


def fasta_header_only(path: Path) -> None:
    path.write_text(">chr1 nothing here\n")


def fasta_all_n(path: Path) -> None:
    write_fasta(path, {"chr1": "N" * 500, "chr2": "n" * 300})


def fasta_too_short(path: Path) -> None:
    write_fasta(path, {"chr1": "AC", "chr2": "G"})


def fasta_duplicate_names(path: Path) -> None:
    write_fasta(path, {"a": "ACGT" * 100})
    with open(path, "a") as handle:
        handle.write(">a\n" + "ACGT" * 100 + "\n")


def gz_truncate(path: Path) -> None:
    truncate(path)


def _npz_edit(path: Path, edit: Callable[[dict], None]) -> None:
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    edit(arrays)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def _first_count_key(arrays: dict, n: int = 2) -> str:
    return f"dense_{n}" if f"dense_{n}" in arrays else f"counts_{n}"


def npz_nan(path: Path) -> None:
    def edit(arrays):
        key = _first_count_key(arrays)
        values = arrays[key].astype(np.float64)
        values[3] = np.nan
        arrays[key] = values
    _npz_edit(path, edit)


def npz_negative(path: Path) -> None:
    def edit(arrays):
        key = _first_count_key(arrays)
        values = arrays[key].astype(np.int64)
        values[3] = -5
        arrays[key] = values
    _npz_edit(path, edit)


def npz_short_array(path: Path) -> None:
    def edit(arrays):
        key = _first_count_key(arrays, 3)
        arrays[key] = arrays[key][:-7]
    _npz_edit(path, edit)


def npz_inconsistent_across_n(path: Path) -> None:
    """One 4-gram counted far more often than its 3-gram prefix (a hand edit)."""
    def edit(arrays):
        key = _first_count_key(arrays, 4)
        values = arrays[key].astype(np.int64)
        values[values.argmax()] += 10**6
        arrays[key] = values
    _npz_edit(path, edit)


def npz_beyond_int64(path: Path) -> None:
    def edit(arrays):
        key = _first_count_key(arrays)
        values = arrays[key].astype(np.uint64)
        values[1] = np.uint64(2**63 + 5)
        arrays[key] = values
    _npz_edit(path, edit)


def npz_missing_length(path: Path) -> None:
    def edit(arrays):
        for key in [k for k in arrays if k.endswith(f"_{int(arrays['max_n'])}")]:
            del arrays[key]
    _npz_edit(path, edit)


def _tsv_edit(path: Path, edit: Callable[[list[list[str]]], None]) -> None:
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    edit(rows)
    path.write_text("".join("\t".join(row) + "\n" for row in rows))


def _row_of(rows, n):
    return next(i for i, row in enumerate(rows[1:], 1) if len(row[0]) == n)


def counts_tsv_nan(path: Path) -> None:
    _tsv_edit(path, lambda rows: rows[_row_of(rows, 2)].__setitem__(1, "nan"))


def counts_tsv_negative(path: Path) -> None:
    _tsv_edit(path, lambda rows: rows[_row_of(rows, 2)].__setitem__(1, "-4"))


def counts_tsv_beyond_int64(path: Path) -> None:
    _tsv_edit(path, lambda rows: rows[_row_of(rows, 2)].__setitem__(1, str(2**64 + 1)))


def counts_tsv_inconsistent(path: Path) -> None:
    _tsv_edit(path, lambda rows: rows[_row_of(rows, 4)].__setitem__(1, str(10**6)))


def counts_tsv_truncated(path: Path) -> None:
    """Cut in the middle of the 3-grams: the 3-grams no longer add up to the 2-grams."""
    lines = path.read_text().splitlines(keepends=True)
    first3 = next(i for i, line in enumerate(lines[1:], 1) if len(line.split("\t")[0]) == 3)
    path.write_text("".join(lines[: first3 + 20]) + lines[first3 + 20][:2])


def _table_edit(path: Path, column: str, value: str, n: int | None = None) -> None:
    def edit(rows):
        index = rows[0].index(column)
        target = next(i for i, row in enumerate(rows[1:], 1) if n is None or row[1] == str(n))
        rows[target][index] = value
    _tsv_edit(path, edit)


def table_n_plus(path: Path) -> None:
    _table_edit(path, "n", "+4", n=4)


def table_n_leading_zero(path: Path) -> None:
    _table_edit(path, "n", "04", n=4)


def table_inf(path: Path) -> None:
    _table_edit(path, "npmi", "inf", n=4)


def table_nan(path: Path) -> None:
    _table_edit(path, "npmi", "nan", n=4)


def table_short_row(path: Path) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[5] = "\t".join(lines[5].split("\t")[:3]) + "\n"
    path.write_text("".join(lines))


def table_empty_quoted_field(path: Path) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = '""\t' + lines[2].split("\t", 1)[1]
    path.write_text("".join(lines))


def fewshot_float_labels(path: Path) -> None:
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    rows[1][1] = "1.0"
    rows[2][1] = "1"
    path.write_text("".join("\t".join(row) + "\n" for row in rows))


def fewshot_special_label(path: Path) -> None:
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    rows[1][1] = "<unk>"
    path.write_text("".join("\t".join(row) + "\n" for row in rows))


def fewshot_bos_label(path: Path) -> None:
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    rows[3][1] = "<s>"
    path.write_text("".join("\t".join(row) + "\n" for row in rows))


def fewshot_empty_quoted_first(path: Path) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = '""\t' + lines[2].split("\t", 1)[1]
    path.write_text("".join(lines))


def fewshot_nul(path: Path) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = lines[2][:10] + "\0" + lines[2][11:]
    path.write_text("".join(lines))


def dictionary_hand_edit(path: Path) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[5] = "ACGTTT 1\n"  # a 6-mer among 3-mers
    path.write_text("".join(lines))


def prepared_meta_garbage(path: Path) -> None:
    (path / "fewshot.json").write_text("{not json")


def prepared_meta_wrong_types(path: Path) -> None:
    meta = json.loads((path / "fewshot.json").read_text())
    meta["labels"] = "01"
    meta["splits"]["train"]["rows"] = "ten"
    (path / "fewshot.json").write_text(json.dumps(meta))


def prepared_bin_truncated(path: Path) -> None:
    for split in ("train", "test"):
        truncate(path / "input0" / f"{split}.bin")


def prepared_idx_garbage(path: Path) -> None:
    for split in ("train", "test"):
        binary_garbage(path / "input0" / f"{split}.idx")


def prepared_three_labels(path: Path) -> None:
    """The data's label dictionary gains a class the model was not trained on."""
    (path / "label" / "dict.txt").write_text("0 5\n1 5\n2 1\n")
    meta = json.loads((path / "fewshot.json").read_text())
    meta["labels"] = ["0", "1", "2"]
    (path / "fewshot.json").write_text(json.dumps(meta))


def checkpoint_tensor(path: Path) -> None:
    import torch

    torch.save(torch.zeros(3), path)


def checkpoint_list(path: Path) -> None:
    import torch

    torch.save([1, 2, 3], path)


def checkpoint_no_model(path: Path) -> None:
    import torch

    torch.save({"cfg": None}, path)


def _struct_garbage(path: Path) -> None:
    path.write_bytes(b"PK\x03\x04" + struct.pack("<I", 7) * 64)


CORRUPTIONS: dict[str, dict[str, Callable[[Path], None]]] = {
    "fasta": {
        "truncated-empty": empty, "binary": binary_garbage, "nul-byte": fasta_nul, "space": fasta_space,
        "tab": fasta_tab, "star": fasta_star, "digit": fasta_digit, "header-only": fasta_header_only,
        "all-n": fasta_all_n, "too-short": fasta_too_short, "duplicate-names": fasta_duplicate_names,
    },
    "fasta_gz": {"truncated": gz_truncate, "binary": binary_garbage},
    "counts_npz": {
        "truncated": truncate, "zip-garbage": _struct_garbage, "nan": npz_nan, "negative": npz_negative,
        "short-array": npz_short_array, "inconsistent-across-n": npz_inconsistent_across_n,
        "beyond-int64": npz_beyond_int64, "missing-longest-length": npz_missing_length,
    },
    "counts_tsv": {
        "truncated": counts_tsv_truncated, "nan": counts_tsv_nan, "negative": counts_tsv_negative,
        "beyond-int64": counts_tsv_beyond_int64, "inconsistent-across-n": counts_tsv_inconsistent,
        "binary": binary_garbage,
    },
    "pmi_table": {
        "truncated": truncate, "n-plus-sign": table_n_plus, "n-leading-zero": table_n_leading_zero,
        "inf-score": table_inf, "nan-score": table_nan, "short-row": table_short_row,
        "empty-quoted-ngram": table_empty_quoted_field, "binary": binary_garbage, "empty": empty,
    },
    "fewshot_tsv": {
        "labels-1-and-1.0": fewshot_float_labels, "label-unk": fewshot_special_label,
        "label-bos": fewshot_bos_label, "empty-quoted-first-field": fewshot_empty_quoted_first,
        "nul-byte": fewshot_nul, "binary": binary_garbage, "empty": empty,
    },
    "dictionary": {"truncated-empty": empty, "hand-edited": dictionary_hand_edit, "binary": binary_garbage},
    "prepared_dir": {
        "meta-garbage": prepared_meta_garbage, "meta-wrong-types": prepared_meta_wrong_types,
        "bin-truncated": prepared_bin_truncated, "idx-garbage": prepared_idx_garbage,
    },
    "safetensors": {"truncated": truncate, "empty": empty, "binary": binary_garbage},
    "json": {"truncated": truncate, "empty": empty, "binary": binary_garbage, "a-list": lambda p: p.write_text("[]\n")},
    "checkpoint": {
        "truncated": truncate, "tensor": checkpoint_tensor, "list": checkpoint_list,
        "no-model": checkpoint_no_model, "text": lambda p: p.write_text("hello\n"),
    },
}


# ---------------------------------------------------------------------------------------------
# The commands: add a row to cover a new command

COMMANDS = [
    Command(
        "preprocess", "genemask-preprocess", PREPROCESS,
        ("genome.fa", "--k", "3", "--out", "corpus_out", "--workers", "2", "--quiet"),
        out="corpus_out", reads={"genome.fa": "fasta"},
        pause="worker", pause_module="genemask_preprocess.corpus.build", force="--force",
    ),
    Command(
        "preprocess-gz", "genemask-preprocess", PREPROCESS,
        ("genome.fa.gz", "--k", "3", "--out", "corpus_out", "--workers", "1", "--quiet"),
        out="corpus_out", reads={"genome.fa.gz": "fasta_gz"},
    ),
    Command(
        "pmi-count", "genemask-pmi", PMI,
        ("count", "genome.fa", "--max-n", "4", "--out", "counts_out.npz", "--workers", "2", "--quiet"),
        out="counts_out.npz", reads={"genome.fa": "fasta"}, fsize=1024,
        pause="worker", pause_module="genemask_preprocess.pmi.ngram_counts",
    ),
    Command(
        "pmi-count-tsv", "genemask-pmi", PMI,
        ("count", "genome.fa", "--max-n", "4", "--out", "counts_out.tsv", "--tsv", "--workers", "1", "--quiet"),
        out="counts_out.tsv", reads={"genome.fa": "fasta"}, fsize=1024,
    ),
    Command(  # an interrupted shard leaves nothing half-written (issue 16)
        "pmi-count-shard", "genemask-pmi", PMI,
        ("count", "genome.fa", "--max-n", "4", "--shard", "1/3", "--out", "shard_out.npz", "--workers", "2",
         "--quiet"),
        out="shard_out.npz", reads={"genome.fa": "fasta"}, fsize=1024,
        pause="worker", pause_module="genemask_preprocess.pmi.ngram_counts",
    ),
    Command(  # token n-grams of a binarized corpus (issue 22)
        "pmi-count-tokens", "genemask-pmi", PMI,
        ("count", "--tokens", "corpus", "--max-n", "3", "--out", "counts_out.npz", "--workers", "2", "--quiet"),
        out="counts_out.npz", fsize=1024, pause="worker", pause_module="genemask_preprocess.pmi.token_ngrams",
        extra_cases={"tokens-dict-empty": ("corpus/dict.txt", empty),
                     "tokens-dict-binary": ("corpus/dict.txt", binary_garbage),
                     "tokens-bin-truncated": ("corpus/train.bin", truncate)},
    ),
    Command(
        "hf-export", "genemask-hf", HF,
        ("export", "ft/checkpoint_last.pt", "hf_out"),
        out="hf_out", reads={"ft/checkpoint_last.pt": "checkpoint"}, fsize=2048,
    ),
    Command(  # the export above, read back as a fairseq checkpoint
        "hf-import", "genemask-hf", HF,
        ("import", "hf_model", "hf_imported"),
        out="hf_imported", fsize=2048,
        reads={"hf_model/model.safetensors": "safetensors", "hf_model/config.json": "json",
               "hf_model/tokenizer.json": "json"},
    ),
    Command(
        "validate", "genemask-validate", VALIDATE,
        ("pre/checkpoint_last.pt", "--data", "corpus", "--cpu", "--tokens-per-sample", "64",
         "--csv", "validate_out/losses.csv", "--json", "validate_out/losses.json"),
        out="validate_out", reads={"pre/checkpoint_last.pt": "checkpoint"}, fsize=512,
        # Any dictionary of the checkpoint's size loads (SentencePiece ones too), so only damage it can see:
        extra_cases={"dictionary-empty": ("corpus/dict.txt", empty),
                     "dictionary-binary": ("corpus/dict.txt", binary_garbage)},
    ),
    Command(
        "pmi-score", "genemask-pmi", PMI,
        ("score", "counts.npz", "--out", "pmi_out.tsv", "--min-count", "1"),
        out="pmi_out.tsv", reads={"counts.npz": "counts_npz"},
    ),
    Command(
        "pmi-score-tsv", "genemask-pmi", PMI,
        ("score", "counts.tsv", "--out", "pmi_out.tsv", "--min-count", "1"),
        out="pmi_out.tsv", reads={"counts.tsv": "counts_tsv"},
    ),
    Command(
        "motifs", "genemask-motifs", MOTIFS,
        ("pmi.tsv", "--k", "4", "--top", "10", "--null-draws", "5", "--out", "motifs_out"),
        out="motifs_out", reads={"pmi.tsv": "pmi_table"}, force="",
    ),
    Command(
        "fewshot-prepare", "genemask-fewshot", FEWSHOT,
        ("prepare", "train.tsv", "--test", "test.tsv", "--dict", "corpus/dict.txt", "--out", "prep_out"),
        out="prep_out", reads={"train.tsv": "fewshot_tsv", "corpus/dict.txt": "dictionary"},
        fsize=300, force="--force",
    ),
    Command(
        "fewshot-finetune", "genemask-fewshot", FEWSHOT,
        ("finetune", "none", "prep", "--shots", "10", "--max-updates", "1", "--out", "ft_out"),
        out="ft_out", reads={"prep": "prepared_dir"}, pause="subprocess", fsize=500,
        pause_module="genemask_plugin.fewshot.finetune", slow=True,
    ),
    Command(
        "fewshot-evaluate", "genemask-fewshot", FEWSHOT,
        ("evaluate", "ft/checkpoint_last.pt", "prep", "--out", "eval_out/metrics.json",
         "--predictions", "eval_out/predictions.tsv"),
        out="eval_out", reads={"ft/checkpoint_last.pt": "checkpoint", "prep": "prepared_dir"},
        fsize=300, extra_cases={"data-has-a-class-the-model-lacks": ("prep", prepared_three_labels)},
    ),
    Command(
        "fewshot-grid", "genemask-fewshot", FEWSHOT,
        ("grid", "--checkpoint", "scratch=none", "--datasets", "Toy", "--shots", "10", "--seeds", "1",
         "--fewshot-root", "fewshot_root", "--dict", "corpus/dict.txt", "--max-updates", "1",
         "--out", "grid_out", "--no-progress"),
        out="grid_out", reads={"fewshot_root/Toy/10/train.tsv": "fewshot_tsv"}, fsize=300, slow=True,
    ),
]
