"""Genome input: FASTA (plain, gzip or bgzip) or DNABERT-style TSV, streamed record by record.

- FASTA: ``>name description`` headers; a record's name is its first word. Letters
  are kept as written (soft-masked lower case, ``N`` and IUPAC codes included).
- TSV: tab-separated rows (quoted fields allowed) whose first column is raw DNA or
  space-separated overlapping k-mers (turned back into DNA); an optional first-line
  header such as ``sequence<TAB>label`` is skipped. The record on line ``L`` of
  ``x.tsv`` is named ``x.tsv:L``.

Compression is recognised by content, not by name. Record names must be unique.
Every command that reads a genome (``genemask-preprocess``, ``genemask-pmi count``)
goes through :func:`open_genome`, so input checks and non-ACGT handling are the
same everywhere. At most one record (one chromosome) is held in memory. A pipe or process
substitution is read once, its sniffed head replayed (:mod:`.input_file`).

A FASTA with a ``.fai`` (and a bgzip one with its ``.gzi``) can also be read by region
(:meth:`GenomeSource.regions`), through :mod:`.fasta_index`, which checks the index against
the file; the bytes read by region pass the same per-character decision as the stream.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from genemask_preprocess.errors import InputError
from genemask_preprocess.formats.fasta_index import FastaIndex, IndexedFasta, load_fasta_index
from genemask_preprocess.formats.input_file import check_input_file, is_pipe, open_input
from genemask_preprocess.formats.text_table import iter_rows
from genemask_preprocess.kmers import kmers_to_dna


class GenomeInputError(InputError):
    """Bad genome input (missing, empty, not FASTA/TSV, corrupt, duplicate names)."""


_SNIFF_BYTES = 1 << 16
_SNIFF_ROWS = 50
_IUPAC = "ACGTUNRYKMSWBDHVacgtunrykmswbdhv"
_DNA_RE = re.compile(rf"^[{_IUPAC}]+$")
_KMER_STRING_RE = re.compile(rf"^[{_IUPAC}]+( [{_IUPAC}]+)+$")


@dataclass(frozen=True)
class GenomeRecord:
    name: str
    sequence: str


@dataclass
class GenomeSource:
    """An opened, sniffed genome file. Iterate :meth:`records` to stream it."""

    path: str
    format: str  # "fasta" or "tsv"
    total_bases: int | None  # known up front from a .fai index, else None
    fasta_index: FastaIndex | None = None
    index_note: str | None = None
    """Why an index beside the FASTA is not used to read it by region (stale, no .gzi, ...); None if none."""

    def records(self) -> Iterator[GenomeRecord]:
        """Stream records in file order; raises :class:`GenomeInputError` on duplicate names or bad rows."""
        reader = _fasta_records if self.format == "fasta" else _tsv_records
        seen: set[str] = set()
        for record in reader(self.path):
            if record.name in seen:
                raise GenomeInputError(f"{self.path}: duplicate record name {record.name!r}")
            seen.add(record.name)
            yield record

    def index(self) -> list[tuple[str, int]] | None:
        """``(name, length)`` of every record from the ``.fai``, when this FASTA can be read by region.

        That needs a ``.fai`` (``samtools faidx``) that fits the file, and a plain or bgzip file
        (plain gzip has no random access; bgzip also needs its ``.gzi``). None otherwise.
        """
        if self.fasta_index is None or not self.fasta_index.by_region:
            return None
        return [(record.name, record.length) for record in self.fasta_index.records]

    def regions(self, spans: Iterable[tuple[str, int, int]]) -> Iterator[str]:
        """The bases ``[start, stop)`` of each ``(name, start, stop)``, read by region (see :meth:`index`).

        Every byte read is checked as the stream checks it (:func:`_check_sequence`), and the
        index against the file where it is read (:class:`~.fasta_index.IndexedFasta`).
        """
        if self.index() is None:
            raise GenomeInputError(f"{self.path}: cannot be read by region ({self.index_note or 'no .fai index'})")
        try:
            with IndexedFasta(self.fasta_index) as fasta:
                for name, start, stop in spans:
                    raw = fasta.bases(name, start, stop)
                    odd = _first_odd(raw)
                    if odd >= 0:
                        record = fasta.record(name)
                        base = start + odd
                        line = _line_of_offset(fasta, record.offset) + base // record.line_bases
                        raise _odd_character(self.path, line, base % record.line_bases + 1, name, raw[odd])
                    yield raw.decode("ascii")
        except (OSError, EOFError, zlib.error) as err:
            raise GenomeInputError(f"{self.path}: cannot read FASTA by region (truncated or corrupt?): {err}") from None


def _line_of_offset(fasta: IndexedFasta, offset: int) -> int:
    """The 1-based line number at byte ``offset`` (counted only to name the line of an error)."""
    lines, position, block = 1, 0, 1 << 24
    while position < offset:
        chunk = fasta.read_at(position, min(block, offset - position))
        if not chunk:
            break
        lines += chunk.count(b"\n")
        position += len(chunk)
    return lines


def genome_files(paths: Iterable[str | os.PathLike]) -> list[str]:
    """The files a command reading these genomes reads: each genome and the index files beside it."""
    return [name for path in paths for name in (os.fspath(path), *(os.fspath(path) + ext for ext in (".fai", ".gzi")))
            if os.path.lexists(name)]


def open_genome(path: str | os.PathLike) -> GenomeSource:
    """Check that ``path`` is a readable, non-empty FASTA or TSV file and sniff which."""
    path = os.fspath(path)
    try:
        check_input_file(path, "FASTA or TSV file")
    except InputError as err:
        raise GenomeInputError(str(err)) from None
    text = _read_head(path).lstrip()
    if not text:
        raise GenomeInputError(f"{path}: file is empty")
    if text.startswith(">"):
        if is_pipe(path):
            return GenomeSource(path, "fasta", None)
        fasta_index, note = load_fasta_index(path)
        return GenomeSource(path, "fasta", fasta_index.total_bases if fasta_index else None, fasta_index, note)
    with contextlib.closing(_first_fields(path)) as rows:
        firsts = list(itertools.islice(rows, _SNIFF_ROWS))
    if firsts and not _looks_like_sequence(firsts[0][1]):
        if firsts[0][0] != 1:
            firsts = []  # a header is only ever the first line
        elif len(firsts) == 1:
            raise GenomeInputError(f"{path}: TSV has a header but no rows")
        else:
            firsts = firsts[1:]
    if firsts and all(_looks_like_sequence(field) for _, field in firsts):
        return GenomeSource(path, "tsv", None)
    raise GenomeInputError(
        f"{path}: not a FASTA file (no '>' header) nor a TSV whose first column is DNA or k-mers"
    )


def _first_fields(path: str) -> Iterator[tuple[int, str]]:
    """``(line, first field stripped)`` of the TSV rows whose first field is not blank."""
    for line, fields in iter_rows(path, "\t"):
        first = fields[0].strip()
        if first:
            yield line, first


def _looks_like_sequence(field: str) -> bool:
    return bool(_DNA_RE.match(field) or _KMER_STRING_RE.match(field))


def _read_head(path: str) -> str:
    try:
        with open_input(path) as handle:
            raw = handle.read(_SNIFF_BYTES)
    except (OSError, EOFError) as err:
        raise GenomeInputError(f"{path}: cannot read: {err}") from None
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise GenomeInputError(f"{path}: not a text FASTA or TSV file (binary content)") from None


_NUCLEOTIDE_BYTES = _IUPAC.encode("ascii")
_LINE_END = b"\r\n \t"


_BLOCK_BYTES = 1 << 24


def _fasta_records(path: str) -> Iterator[GenomeRecord]:
    """FASTA records; every sequence letter must be an IUPAC nucleotide code (see docs/reliability.md).

    Whitespace at a line's end (CR, trailing spaces) is dropped. Anything else that is not a
    nucleotide code (a NUL byte, a space or tab inside a line, ``*``, ``-``, ``.``, a digit) is
    refused with the record and line: silently reading it as N, or cutting the line there, would
    give wrong output with exit 0. Read in large blocks (no per-line Python loop); one record is
    held in memory at a time.
    """
    try:
        with open_input(path) as handle:
            name, first_line, parts = None, 0, []
            line_no, leftover = 1, b""  # line_no: the line that `work` starts with
            while True:
                block = handle.read(_BLOCK_BYTES)
                data = leftover + block
                if block:
                    cut = data.rfind(b"\n") + 1
                    if cut == 0:  # a line longer than a block: keep reading
                        leftover = data
                        continue
                    work, leftover = data[:cut], data[cut:]
                else:
                    work, leftover = data, b""
                pos, counted_to, lines_before = 0, 0, line_no  # pos is always at a line start
                while pos < len(work):
                    if work.startswith(b">", pos):
                        start = pos
                    else:
                        found = work.find(b"\n>", pos)
                        start = found + 1 if found >= 0 else -1
                    if start < 0:
                        parts.append(work[pos:])
                        break
                    parts.append(work[pos:start])
                    if name is not None:
                        yield _fasta_record(path, name, first_line, parts)
                    lines_before += work.count(b"\n", counted_to, start)
                    counted_to = start
                    end = work.find(b"\n", start)
                    end = len(work) if end < 0 else end + 1
                    name, first_line, parts = _fasta_name(path, lines_before, work[start:end]), lines_before + 1, []
                    pos = end
                line_no += work.count(b"\n")
                if not block:
                    break
            if name is not None:
                yield _fasta_record(path, name, first_line, parts)
    except (OSError, EOFError, zlib.error) as err:
        raise GenomeInputError(f"{path}: cannot read FASTA (truncated or corrupt?): {err}") from None


def _fasta_name(path: str, line_no: int, line: bytes) -> str:
    words = line[1:].split()
    try:
        name = words[0].decode("ascii") if words else ""
    except UnicodeDecodeError:
        raise GenomeInputError(f"{path} line {line_no}: record name is not ASCII text") from None
    if not name:
        raise GenomeInputError(f"{path} line {line_no}: FASTA header without a record name")
    return name


def _fasta_record(path: str, name: str, first_line: int, parts: list[bytes]) -> GenomeRecord:
    raw = b"".join(parts)
    parts.clear()
    sequence = (raw.replace(b"\r\n", b"\n") if b"\r" in raw else raw).replace(b"\n", b"")
    if sequence.translate(None, _NUCLEOTIDE_BYTES):  # trailing whitespace, or an odd character
        lines = [line.rstrip(_LINE_END) for line in raw.split(b"\n")]
        sequence = b"".join(lines)
        odd = sequence.translate(None, _NUCLEOTIDE_BYTES)
        if odd:
            index, line = next((i, line) for i, line in enumerate(lines) if line.translate(None, _NUCLEOTIDE_BYTES))
            raise _odd_character(path, first_line + index, line.index(odd[:1]) + 1, name, odd[0])
    del raw
    return GenomeRecord(name, sequence.decode("ascii"))


_IS_NUCLEOTIDE = np.zeros(256, dtype=bool)
_IS_NUCLEOTIDE[np.frombuffer(_NUCLEOTIDE_BYTES, dtype=np.uint8)] = True


def _first_odd(sequence: bytes) -> int:
    """Index of the first byte of ``sequence`` that is not a nucleotide code, or -1."""
    if not sequence.translate(None, _NUCLEOTIDE_BYTES):
        return -1
    return int(np.argmin(_IS_NUCLEOTIDE[np.frombuffer(sequence, dtype=np.uint8)]))


def _odd_character(path: str, line: int, column: int, name: str, byte: int) -> GenomeInputError:
    """The one refusal of a character that is not sequence, for the streamed and the indexed reader alike."""
    return GenomeInputError(
        f"{path} line {line} column {column} (record {name!r}): {_describe_odd(chr(byte))} "
        "in a sequence line; only IUPAC nucleotide codes are sequence (see docs/reliability.md)"
    )


def _describe_odd(char: str) -> str:
    if char == "\0":
        return "a NUL byte (a corrupt or binary file?)"
    if char in " \t":
        return f"{char!r} inside a line (a formatted or damaged sequence?)"
    if char in "-.":
        return f"{char!r} (an alignment gap: this reads genomes, not alignments)"
    if char == "*":
        return "'*' (a protein stop?)"
    return f"{char!r}, not a nucleotide code"


def _tsv_records(path: str) -> Iterator[GenomeRecord]:
    """Rows of a TSV whose first column is raw DNA or space-separated overlapping k-mers."""
    base = os.path.basename(path)
    for line, field in _first_fields(path):
        if line == 1 and not _looks_like_sequence(field):
            continue  # header row, e.g. "sequence<TAB>label"
        if " " in field:
            try:
                dna = kmers_to_dna(field)
            except ValueError as err:
                raise GenomeInputError(f"{path}: row {line}: {err}") from None
        elif _DNA_RE.match(field):
            dna = field
        else:
            raise GenomeInputError(f"{path}: row {line}: first column is not DNA: {field[:40]!r}")
        yield GenomeRecord(f"{base}:{line}", dna)
