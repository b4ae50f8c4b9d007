"""Fault injection, round 3 (files): special outputs, outputs aliasing inputs, outputs on another
file system, pipes as inputs, concurrent writers, and FASTA index files.

Each class runs over every command row of ``fault_commands.py`` it applies to, with the suite's
assertions: a refusal exits 1 with exactly one stderr line naming the command, no traceback,
and nothing new, changed or removed on disk; a case that must work gives the same output as
the plain path. See docs/reliability.md.
"""

from __future__ import annotations

import errno
import gzip
import os
import random
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from fault_commands import COMMANDS, Command, random_dna, write_fasta
from fault_harness import assert_clean_failure, run_case, snapshot, start_case
from special_files import identity, make_character_device, make_socket

pytestmark = pytest.mark.filterwarnings("ignore")
BY_NAME = {command.name: command for command in COMMANDS}
FILE_KINDS = ("fasta", "fasta_gz", "counts_npz", "counts_tsv", "pmi_table", "fewshot_tsv", "dictionary", "checkpoint")
ATOMIC = [c for c in COMMANDS if c.name not in ("fewshot-finetune", "fewshot-grid")]
"""Rows whose output is renamed into place (finetune and grid fill their folder in place)."""


def _param(command: Command, *rest, name: str = "", slow: bool | None = None):
    slow = command.slow if slow is None else slow
    return pytest.param(command, *rest, marks=[pytest.mark.slow] if slow else [],
                        id="-".join(filter(None, [command.name, name])))


def _run(command: Command, workspace: Path, argv=None, **kwargs):
    return run_case(command.entry, list(argv or command.argv), workspace, **kwargs)


def _out_arg(command: Command) -> str:
    """The argument naming the row's output: its ``out``, or a file inside it (evaluate's --out)."""
    return next(arg for arg in command.argv if arg == command.out or arg.startswith(command.out + "/"))


def _replace(argv, old: str, new: str) -> list[str]:
    return [new if arg == old else arg for arg in argv]


def _moved_out(command: Command, new_out: str) -> list[str]:
    out = command.out
    return [new_out + arg[len(out):] if arg == out or arg.startswith(out + "/") else arg for arg in command.argv]


FORCE = {"preprocess-gz": "--force", "hf-export": "--force", "hf-import": "--force"}
"""The force option of rows that do not name it (their command has one)."""


def _force(command: Command) -> str | None:
    return FORCE.get(command.name, command.force)


def _with_force(command: Command, argv) -> list[str]:
    return [*argv, _force(command)] if _force(command) else list(argv)


def _same_output(got: Path, want: Path) -> None:
    """Two runs' outputs agree: the same names, and the same content wherever content is deterministic
    (metadata naming the input or the time, and plots, are compared by name only)."""
    if want.is_dir():
        names = sorted(str(p.relative_to(want)) for p in want.rglob("*"))
        assert sorted(str(p.relative_to(got)) for p in got.rglob("*")) == names
        pairs = [(got / name, want / name) for name in names if (want / name).is_file()]
    else:
        pairs = [(got, want)]
    for mine, theirs in pairs:
        if mine.suffix == ".npz":  # counts compared as arrays; a shard's metadata names its input
            with np.load(mine) as a, np.load(theirs) as b:
                keys = sorted(set(a.files) - {"shard"})
                assert keys == sorted(set(b.files) - {"shard"}), mine
                assert all(np.array_equal(a[k], b[k]) for k in keys), mine
        elif mine.suffix not in (".json", ".md", ".png", ".log", ".pt"):
            assert mine.read_bytes() == theirs.read_bytes(), mine


@pytest.fixture(scope="session")
def reference(inputs, tmp_path_factory):
    """The output of each row's plain run, made on demand in a workspace of its own."""
    made = {}

    def output(command: Command) -> Path:
        if command.name not in made:
            ws = tmp_path_factory.mktemp("reference") / "ws"
            shutil.copytree(inputs, ws, symlinks=True)
            outcome = _run(command, ws)
            assert outcome.code == 0, outcome.stderr
            made[command.name] = ws / command.out
        return made[command.name]

    return output


# ---------------------------------------------------------------------------------------------
# Class 2: outputs that are not plain files or folders


def _link_to_character_device(path: Path, workspace: Path) -> None:
    devices = workspace.parent / "devices"  # outside the workspace that the case snapshots
    devices.mkdir(exist_ok=True)
    path.symlink_to(make_character_device(devices / "full"))


SPECIAL_OUTPUTS = {
    "fifo": (lambda path, _: os.mkfifo(path), "FIFO"),
    "link-to-character-device": (_link_to_character_device, "character device"),
    "socket": (lambda path, _: make_socket(path), "socket"),
    "link-to-proc-self-fd-1": (lambda path, _: path.symlink_to("/proc/self/fd/1"), "file descriptor"),
}


@pytest.mark.parametrize("command, kind", [_param(c, k, name=k, slow=False) for c in COMMANDS for k in SPECIAL_OUTPUTS])
def test_output_that_is_not_a_file_or_folder_is_refused(command, kind, workspace):
    make, word = SPECIAL_OUTPUTS[kind]
    target = workspace / _out_arg(command)
    target.parent.mkdir(parents=True, exist_ok=True)
    make(target, workspace)
    before = snapshot(workspace)
    devices = {str(p): identity(p) for p in {target.resolve(), Path("/dev/null")} if p.exists()}
    outcome = _run(command, workspace)
    assert_clean_failure(outcome, command.prog, 1, before, snapshot(workspace), match=word)
    assert {p: identity(p) for p in devices} == devices, "a device was replaced"


# Output aliasing an input: the same path, ./path, a symlink or a hard link to it.

def _alias(workspace: Path, path: str, how: str) -> str:
    if how == "same":
        return path
    if how == "dot-slash":
        return "./" + path
    alias = workspace / "alias"
    if how == "symlink":
        alias.symlink_to(workspace / path)
    else:
        os.link(workspace / path, alias)
    return "alias"


def _aliasing_cases():
    for command in COMMANDS:
        for path, kind in command.reads.items():
            if kind == "prepared_dir" and command.name == "fewshot-finetune":
                continue  # fine-tuning into the prepared folder writes beside its inputs, not over them
            for how in ("same", "dot-slash", "symlink", *(("hard-link",) if kind in FILE_KINDS else ())):
                yield _param(command, path, how, name=f"{kind}-{how}", slow=False)


@pytest.mark.parametrize("command, path, how", list(_aliasing_cases()))
def test_output_that_is_an_input_is_refused(command, path, how, workspace):
    argv = _replace(command.argv, _out_arg(command), _alias(workspace, path, how))
    before = snapshot(workspace)
    outcome = _run(command, workspace, argv=_with_force(command, argv))
    assert_clean_failure(outcome, command.prog, 1, before, snapshot(workspace))


def _preprocess_input_among_replaced(ws: Path) -> list[str]:
    (ws / "corpus_out").mkdir()
    shutil.copy(ws / "genome.fa", ws / "corpus_out" / "dict.txt")
    return ["corpus_out/dict.txt", "--k", "3", "--out", "corpus_out", "--force", "--workers", "1", "--quiet"]


def _prepare_dictionary_inside_out(ws: Path) -> list[str]:
    return ["prepare", "train.tsv", "--dict", "prep/input0/dict.txt", "--out", "prep", "--force"]


def _finetune_checkpoint_inside_out(ws: Path) -> list[str]:
    return ["finetune", "ft/checkpoint_last.pt", "prep", "--shots", "10", "--max-updates", "1", "--out", "ft"]


def _evaluate_two_outputs_one_file(ws: Path) -> list[str]:
    (ws / "x.json").symlink_to(ws / "metrics.json")
    return ["evaluate", "ft/checkpoint_last.pt", "prep", "--out", "metrics.json", "--predictions", "./x.json"]


def _evaluate_out_inside_input_folder(ws: Path) -> list[str]:
    return ["evaluate", "ft/checkpoint_last.pt", "prep", "--out", "prep/input0/m.json"]


def _count_out_is_the_genomes_index(ws: Path) -> list[str]:
    import pysam

    pysam.faidx(str(ws / "genome.fa"))
    return ["count", "genome.fa", "--max-n", "3", "--out", "genome.fa.fai", "--quiet"]


def _merge_out_is_a_shard(ws: Path) -> list[str]:
    for i in range(2):
        outcome = _run(BY_NAME["pmi-count"], ws, argv=["count", "genome.fa", "--max-n", "3", "--shard", f"{i}/2",
                                                        "--out", f"s{i}.npz", "--quiet"])
        assert outcome.code == 0, outcome.stderr
    return ["merge", "s0.npz", "s1.npz", "--out", "s1.npz", "--quiet"]


ALIASING = {
    "preprocess-force-input-among-the-replaced-files": ("preprocess", _preprocess_input_among_replaced),
    "prepare-force-dictionary-inside-out": ("fewshot-prepare", _prepare_dictionary_inside_out),
    "finetune-checkpoint-inside-out": ("fewshot-finetune", _finetune_checkpoint_inside_out),
    "evaluate-out-and-predictions-one-file": ("fewshot-evaluate", _evaluate_two_outputs_one_file),
    "evaluate-out-inside-the-prepared-folder": ("fewshot-evaluate", _evaluate_out_inside_input_folder),
    "count-out-is-the-genomes-fai": ("pmi-count", _count_out_is_the_genomes_index),
    "merge-out-is-one-of-its-shards": ("pmi-count", _merge_out_is_a_shard),
}


@pytest.mark.parametrize("case", list(ALIASING))
def test_output_aliasing_an_input_or_another_output_is_refused(case, workspace):
    name, make = ALIASING[case]
    command = BY_NAME[name]
    argv = make(workspace)
    before = snapshot(workspace)
    outcome = _run(command, workspace, argv=argv)
    assert_clean_failure(outcome, command.prog, 1, before, snapshot(workspace))


# Outputs on another file system: renames across it fail with EXDEV (simulated: the folder
# other_fs is "another file system"), and a failed replace must put the old output back.

def _simulate_other_file_system(root: Path, fail_placing: int | None = None):
    """For the child: os.rename/os.replace raise EXDEV across ``root/other_fs``; with
    ``fail_placing`` the n-th rename into the output folder there fails (EIO) instead."""
    boundary = str(root / "other_fs") + os.sep

    def setup():
        real_rename, real_replace = os.rename, os.replace
        placed = [0]

        def guarded(real):
            def call(src, dst, *args, **kwargs):
                src_in, dst_in = (os.path.realpath(p).startswith(boundary) for p in (src, dst))
                if src_in != dst_in:
                    raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), src)
                if fail_placing is not None and dst_in and ".tmp-" not in os.path.basename(os.path.dirname(dst)):
                    placed[0] += 1
                    if placed[0] == fail_placing:
                        raise OSError(errno.EIO, os.strerror(errno.EIO), dst)
                return real(src, dst, *args, **kwargs)
            return call

        os.rename, os.replace = guarded(real_rename), guarded(real_replace)

    return setup


def _old_output_on_other_fs(command: Command, ws: Path, reference: Path) -> None:
    """An earlier output (the names a run writes, old bytes) in other_fs/, a symlink where the row
    writes, and, in a folder output, a file of the user's."""
    real = ws / "other_fs" / command.out
    real.parent.mkdir()
    if reference.is_dir():
        for path in sorted(reference.rglob("*")):
            old = real / path.relative_to(reference)
            if path.is_dir():
                old.mkdir(parents=True, exist_ok=True)
            else:
                old.parent.mkdir(parents=True, exist_ok=True)
                old.write_bytes(b"an earlier run's " + path.name.encode())
        (real / "mine.txt").write_text("the user's own file\n")
    else:
        real.write_bytes(b"an earlier run's output")
    (ws / command.out).symlink_to(real)


@pytest.mark.parametrize("command", [_param(c) for c in ATOMIC])
def test_force_through_a_link_to_another_file_system(command, workspace, reference):
    """--force with --out a symlink to a folder (or file) on another file system: the new output
    replaces the old in place, the link and the user's other files are kept, nothing is lost."""
    _old_output_on_other_fs(command, workspace, reference(command))
    case = start_case(command.entry, _with_force(command, command.argv), workspace,
                      setup=_simulate_other_file_system(workspace))
    outcome = case.finish()
    assert outcome.code == 0, outcome.stderr
    assert (workspace / command.out).is_symlink()
    real = workspace / "other_fs" / command.out
    if real.is_dir():
        assert (real / "mine.txt").read_text() == "the user's own file\n"
        (real / "mine.txt").unlink()
    _same_output(real, reference(command))
    leftovers = [p.name for p in [*workspace.iterdir(), *(workspace / "other_fs").iterdir()]
                 if ".tmp-" in p.name or p.name.endswith(".lock")]
    assert not leftovers, leftovers


@pytest.mark.parametrize("command", [_param(c) for c in ATOMIC if _force(c) is not None])
def test_a_failed_replace_puts_the_old_output_back(command, workspace, reference):
    """The second file moved into place fails (EIO): every old file is back, byte for byte."""
    _old_output_on_other_fs(command, workspace, reference(command))
    before = snapshot(workspace)
    case = start_case(command.entry, _with_force(command, command.argv), workspace,
                      setup=_simulate_other_file_system(workspace, fail_placing=2))
    assert_clean_failure(case.finish(), command.prog, 1, before, snapshot(workspace))


# ---------------------------------------------------------------------------------------------
# Class 6: pipes, FIFOs and process substitutions as inputs


class _Pipe:
    """``path``'s bytes through a process substitution (/dev/fd/N of a ``cat``) or a FIFO."""

    def __init__(self, workspace: Path, path: str, how: str):
        source = str(workspace / path)
        if how == "process-substitution":
            self.writer = subprocess.Popen(["cat", source], stdout=subprocess.PIPE)
            self.name = f"/dev/fd/{self.writer.stdout.fileno()}"
        else:
            fifo = workspace / "in.fifo"
            os.mkfifo(fifo)
            self.writer = subprocess.Popen(["sh", "-c", 'cat "$1" > "$2"', "sh", source, str(fifo)])
            self.name = "in.fifo"

    def close(self) -> None:
        if self.writer.stdout is not None:
            self.writer.stdout.close()
        self.writer.kill()
        self.writer.wait()


PIPE_REFUSED = {("pmi-count-shard", "fasta"), ("hf-export", "checkpoint"), ("fewshot-evaluate", "checkpoint"),
                ("validate", "checkpoint")}
"""Inputs read twice where a pipe is large: refused up front, in one line naming the pipe."""


def _pipe_cases():
    for command in COMMANDS:
        for path, kind in command.reads.items():
            if kind not in FILE_KINDS or path not in command.argv:
                continue
            hows = ["process-substitution"]
            if kind in ("fasta", "fasta_gz", "fewshot_tsv", "pmi_table", "counts_tsv"):
                hows.append("fifo")
            for how in hows:
                yield _param(command, path, how, name=f"{kind}-{how}")


@pytest.mark.parametrize("command, path, how", list(_pipe_cases()))
def test_pipe_input_reads_like_the_file(command, path, how, workspace, reference):
    """A pipe gives the plain path's output (sniffing loses nothing), or a one-line refusal
    where the command reads the input twice."""
    kind = command.reads[path]
    pipe = _Pipe(workspace, path, how)
    try:
        before = snapshot(workspace)
        outcome = _run(command, workspace, argv=_replace(command.argv, path, pipe.name))
    finally:
        pipe.close()
    if (command.name, kind) in PIPE_REFUSED:
        assert_clean_failure(outcome, command.prog, 1, before, snapshot(workspace), match="pipe")
        return
    assert outcome.code == 0, outcome.stderr
    _same_output(workspace / command.out, reference(command))


def _gzip_copy(workspace: Path, path: str) -> str:
    with open(workspace / path, "rb") as src, gzip.open(workspace / (path + ".gz"), "wb") as dst:
        shutil.copyfileobj(src, dst)
    return path + ".gz"


@pytest.mark.parametrize("name, path", [("pmi-count", "genome.fa"), ("preprocess", "genome.fa"),
                                        ("fewshot-prepare", "train.tsv")])
def test_gzip_through_a_pipe_reads_like_the_file(name, path, workspace, reference):
    command = BY_NAME[name]
    pipe = _Pipe(workspace, _gzip_copy(workspace, path), "process-substitution")
    try:
        outcome = _run(command, workspace, argv=_replace(command.argv, path, pipe.name))
    finally:
        pipe.close()
    assert outcome.code == 0, outcome.stderr
    _same_output(workspace / command.out, reference(command))


def test_a_large_pipe_read_twice_is_one_line(workspace):
    """Past the replayed head, a pipe cannot be read again: SentencePiece's two passes are refused."""
    command = BY_NAME["preprocess"]
    pipe = _Pipe(workspace, "genome.fa", "process-substitution")
    try:
        before = snapshot(workspace)
        outcome = _run(command, workspace, argv=[pipe.name, "--tokenizer", "sentencepiece", "--sp-vocab-size", "50",
                                                 "--out", "sp", "--workers", "1", "--quiet"])
    finally:
        pipe.close()
    assert_clean_failure(outcome, command.prog, 1, before, snapshot(workspace), match="pipe")


# ---------------------------------------------------------------------------------------------
# Class 8: concurrent writers


@pytest.mark.parametrize("command", [_param(c) for c in COMMANDS])
def test_a_second_run_on_the_same_output_is_refused(command, workspace, reference):
    """Run A is held at its pause point; run B on the same --out fails in one line; A then finishes
    into one complete output, the same as a plain run's, and B left nothing behind."""
    first = start_case(command.entry, list(command.argv), workspace, pause=command.pause,
                       pause_module=command.pause_module)
    try:
        first.wait_for_pause()
        second = _run(command, workspace, argv=_with_force(command, command.argv))
    finally:
        first.resume()
        outcome = first.finish()
    assert "Traceback" not in second.stderr, second.stderr
    assert second.code == 1 and len(second.stderr_lines) == 1, second.stderr
    assert second.stderr_lines[0].startswith(f"{command.prog}: ") and "another run" in second.stderr, second.stderr
    assert outcome.code == 0, outcome.stderr
    _same_output(workspace / command.out, reference(command))
    assert not [p for p in workspace.rglob("*") if p.name.endswith(".lock") or ".tmp-" in p.name]


def _written_meanwhile(workspace: Path, command: Command) -> Path:
    target = workspace / _out_arg(command)
    if target == workspace / command.out and command.name in ("preprocess", "preprocess-gz", "hf-export",
                                                               "hf-import", "fewshot-prepare"):
        target.mkdir()
        target = target / "theirs.txt"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("written by another program\n")
    return target


@pytest.mark.parametrize("command", [_param(c) for c in ATOMIC if c.force != ""])
def test_an_output_that_appears_meanwhile_is_not_replaced(command, workspace):
    """Another program (no lock) writes the output while the run works: the run leaves it as it is."""
    start = snapshot(workspace)
    case = start_case(command.entry, list(command.argv), workspace, pause="commit")
    try:
        case.wait_for_pause()
        theirs = _written_meanwhile(workspace, command)
        meanwhile = snapshot(workspace)  # also holds the run's temporary files
    finally:
        case.resume()
        outcome = case.finish()
    theirs_entries = {str(p.relative_to(workspace)) for p in (theirs, *theirs.parents) if workspace in p.parents}
    expected = {**start, **{name: meanwhile[name] for name in theirs_entries}}
    assert_clean_failure(outcome, command.prog, 1, expected, snapshot(workspace), match="appeared or changed")
    assert theirs.read_text() == "written by another program\n"


# ---------------------------------------------------------------------------------------------
# Class 1: FASTA index files (.fai, .gzi), read by `count --shard` and beside every genome input

COUNT = BY_NAME["pmi-count"]


def _indexed_genome(folder: Path, width: int = 60) -> dict[str, str]:
    """A genome of about 130 kbp (bgzip: several blocks), plain and bgzip, each with its indexes."""
    import pysam

    rng = random.Random(7)
    records = {f"chr{i}": random_dna(rng, n) for i, n in enumerate((40_000, 3, 25_000, 61, 64_000))}
    folder.mkdir(parents=True, exist_ok=True)
    write_fasta(folder / "g.fa", records, width)
    pysam.tabix_compress(str(folder / "g.fa"), str(folder / "g.fa.gz"))
    for name in ("g.fa", "g.fa.gz"):
        pysam.faidx(str(folder / name))
    return records


def _count(ws: Path, genome: str, out: str, *extra: str):
    return _run(COUNT, ws, argv=["count", genome, "--max-n", "4", "--workers", "1", "--quiet", "--out", out, *extra])


def _shards_never_disagree(ws: Path, genome: str, plain: Path, shards: int = 3) -> list:
    """Every shard either refuses in one line or counts; when all count, the merge is the plain count."""
    outcomes = [_count(ws, genome, f"shard{i}.npz", "--shard", f"{i}/{shards}") for i in range(shards)]
    for outcome in outcomes:
        assert "Traceback" not in outcome.stderr, outcome.stderr
        assert outcome.code in (0, 1), outcome.stderr
        if outcome.code == 1:
            assert len(outcome.stderr_lines) == 1 and outcome.stderr_lines[0].startswith("genemask-pmi: error: ")
    if all(outcome.code == 0 for outcome in outcomes):
        merged = _run(COUNT, ws, argv=["merge", *(f"shard{i}.npz" for i in range(shards)), "--out", "merged.npz"])
        assert merged.code == 0, merged.stderr
        _same_output(ws / "merged.npz", plain)
    return outcomes


@pytest.fixture
def genome_ws(workspace) -> Path:
    _indexed_genome(workspace / "genomes")
    outcome = _count(workspace, "genomes/g.fa", "plain.npz")  # before any index is damaged
    assert outcome.code == 0, outcome.stderr
    return workspace


@pytest.mark.parametrize("genome", ["g.fa", "g.fa.gz"])
def test_good_indexes_give_the_plain_count_by_region(genome, genome_ws):
    outcomes = _shards_never_disagree(genome_ws, f"genomes/{genome}", genome_ws / "plain.npz", shards=4)
    assert all(outcome.code == 0 for outcome in outcomes)
    assert not any("note:" in outcome.stderr for outcome in outcomes)  # read by region, not streamed


def _grow_a_record(ws: Path) -> None:
    """A record grew after indexing (the indexes are older than the FASTA), for both genomes."""
    records = _indexed_genome(ws / "genomes")
    old = os.stat(ws / "genomes" / "g.fa.fai").st_mtime_ns
    records["chr2"] += "ACGTTGCA" * 80
    write_fasta(ws / "genomes" / "g.fa", records)
    for name in ("g.fa", "g.fa.gz"):
        if name.endswith(".gz"):
            os.remove(ws / "genomes" / name)
            import pysam

            pysam.tabix_compress(str(ws / "genomes" / "g.fa"), str(ws / "genomes" / name))
        os.utime(ws / "genomes" / name, ns=(old + 10**9, old + 10**9))


def _index_of_another_width(ws: Path) -> None:
    """The FASTA was rewrapped at 70 bases a line after indexing; the .fai was touched since."""
    records = _indexed_genome(ws / "genomes", width=60)
    write_fasta(ws / "genomes" / "g.fa", records, width=70)
    os.utime(ws / "genomes" / "g.fa.fai")


def _index_of_another_file(ws: Path) -> None:
    """Same record names and layout, other lengths: the .fai of another genome (and newer)."""
    _indexed_genome(ws / "genomes")
    other = ws / "other"
    rng = random.Random(8)
    write_fasta(other, {f"chr{i}": random_dna(rng, n) for i, n in enumerate((39_990, 3, 25_010, 61, 64_000))})
    import pysam

    pysam.faidx(str(other))
    shutil.copy(ws / "other.fai", ws / "genomes" / "g.fa.fai")


def _lines_rewrapped_in_place(ws: Path) -> None:
    """One record's line breaks moved, the file's size kept: only reading that record can tell."""
    _indexed_genome(ws / "genomes")
    path = ws / "genomes" / "g.fa"
    data = bytearray(path.read_bytes())
    start = data.index(b">chr2")
    first = data.index(b"\n", data.index(b"\n", start) + 1)  # the end of chr2's first sequence line
    data[first - 5 : first + 1] = b"\n" + bytes(data[first - 5 : first])
    path.write_bytes(bytes(data))
    os.utime(ws / "genomes" / "g.fa.fai")


def _gzi_of_another_file(ws: Path) -> None:
    _indexed_genome(ws / "genomes")
    import pysam

    other = ws / "other.fa"
    rng = random.Random(9)
    write_fasta(other, {"x": random_dna(rng, 200_000)})
    pysam.tabix_compress(str(other), str(ws / "other.fa.gz"))
    pysam.faidx(str(ws / "other.fa.gz"))
    shutil.copy(ws / "other.fa.gz.gzi", ws / "genomes" / "g.fa.gz.gzi")


INDEX_FAULTS = {
    "record-grew-after-indexing": (_grow_a_record, ("g.fa", "g.fa.gz")),
    "fai-of-another-line-width": (_index_of_another_width, ("g.fa",)),
    "fai-of-another-file": (_index_of_another_file, ("g.fa",)),
    "lines-rewrapped-in-place": (_lines_rewrapped_in_place, ("g.fa",)),
    "gzi-of-another-file": (_gzi_of_another_file, ("g.fa.gz",)),
}


@pytest.mark.parametrize("fault, genome", [(f, g) for f, (_, gs) in INDEX_FAULTS.items() for g in gs])
def test_an_index_that_does_not_fit_never_gives_wrong_counts(fault, genome, workspace):
    """Shards refuse in one line, or read without the index and say so; never a silently wrong merge."""
    make, _ = INDEX_FAULTS[fault]
    make(workspace)
    plain = _count(workspace, f"genomes/{genome}", "plain.npz")  # the stream: what the truth is
    assert plain.code == 0, plain.stderr
    outcomes = _shards_never_disagree(workspace, f"genomes/{genome}", workspace / "plain.npz")
    if fault in ("record-grew-after-indexing", "gzi-of-another-file"):  # found up front: streamed instead
        assert all(outcome.code == 0 and "note:" in outcome.stderr for outcome in outcomes)


ODD_BYTES = {"star": b"*", "nul": b"\0", "space": b" ", "tab": b"\t", "digit": b"7", "gap": b"-"}


def _bgzip_index(path: Path) -> None:
    """Write ``path``.gzi from its BGZF blocks (samtools would, but refuses some odd bytes)."""
    data = path.read_bytes()
    blocks, compressed, uncompressed = [], 0, 0
    while compressed < len(data):
        size = struct.unpack_from("<H", data, compressed + 16)[0] + 1  # BSIZE: block size - 1
        uncompressed += struct.unpack_from("<I", data, compressed + size - 4)[0]  # ISIZE
        compressed += size
        blocks.append((compressed, uncompressed))
    blocks = blocks[:-2]  # the last data block's end and the empty EOF block start no data
    path.with_name(path.name + ".gzi").write_bytes(
        struct.pack("<Q", len(blocks)) + b"".join(struct.pack("<QQ", c, u) for c, u in blocks)
    )


@pytest.mark.parametrize("odd, genome", [*((o, "g.fa") for o in ODD_BYTES), *((o, "g.fa.gz") for o in ("nul", "star", "space"))])
def test_odd_bytes_are_refused_by_region_as_by_the_stream(odd, genome, workspace):
    """A byte the streaming reader refuses, in a FASTA whose (fresh) .fai fits it: the shard that
    reads it refuses it with the stream's very message."""
    import pysam

    records = _indexed_genome(workspace / "genomes")
    path = workspace / "genomes" / "g.fa"
    data = bytearray(path.read_bytes())
    at = data.index(b">chr2")
    at = data.index(b"\n", at) + 1 + 3 * 61 + 17  # line 4 of chr2, column 18
    data[at : at + 1] = ODD_BYTES[odd]
    path.write_bytes(bytes(data))
    if genome.endswith(".gz"):
        os.remove(workspace / "genomes" / genome)
        pysam.tabix_compress(str(path), str(workspace / "genomes" / genome))
        _bgzip_index(workspace / "genomes" / genome)
    for name in (genome + ".fai", genome + ".gzi"):
        if (workspace / "genomes" / name).exists():
            os.utime(workspace / "genomes" / name)  # the index is newer: it is used
    assert len(records["chr2"]) > 4 * 60
    plain = _count(workspace, f"genomes/{genome}", "plain.npz")
    assert plain.code == 1 and len(plain.stderr_lines) == 1, plain.stderr
    message = plain.stderr_lines[0]
    before = snapshot(workspace)
    shards = [_count(workspace, f"genomes/{genome}", f"s{i}.npz", "--shard", f"{i}/3") for i in range(3)]
    refusing = [outcome for outcome in shards if outcome.code != 0]
    assert refusing, "no shard refused the odd byte"
    for outcome in refusing:
        assert outcome.code == 1 and outcome.stderr_lines == [message], outcome.stderr
    assert not any("note:" in outcome.stderr for outcome in shards)  # read by region, not streamed
    assert set(snapshot(workspace)) - set(before) <= {f"s{i}.npz" for i in range(3)}


@pytest.mark.parametrize("name", ["preprocess", "pmi-count", "pmi-count-shard"])
def test_a_bgzip_genome_without_gzi_is_read_and_nothing_is_written_beside_it(name, workspace, reference):
    """htslib would build the .gzi and rewrite the .fai in the genome's folder: nothing may change there."""
    _indexed_genome(workspace / "genomes")
    os.remove(workspace / "genomes" / "g.fa.gz.gzi")
    shutil.copy(workspace / "genome.fa", workspace / "genomes" / "fault.fa")
    import pysam

    pysam.tabix_compress(str(workspace / "genome.fa"), str(workspace / "genomes" / "fault.fa.gz"))
    pysam.faidx(str(workspace / "genomes" / "fault.fa.gz"))
    os.remove(workspace / "genomes" / "fault.fa.gz.gzi")
    folder = snapshot(workspace / "genomes")
    command = BY_NAME[name]
    outcome = _run(command, workspace, argv=_replace(command.argv, "genome.fa", "genomes/fault.fa.gz"))
    assert outcome.code == 0, outcome.stderr
    assert snapshot(workspace / "genomes") == folder
    _same_output(workspace / command.out, reference(command))
