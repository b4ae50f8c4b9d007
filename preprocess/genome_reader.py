"""The one genome reader: FASTA (plain, gzip or bgzip, via pysam) or DNABERT-style TSV, streamed record by record.

Every command that reads a genome (``genemask-preprocess``, ``genemask-pmi count``)
goes through :func:`open_genome`, so input checks and non-ACGT handling are the
same everywhere. At most one record (one chromosome) is held in memory.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pysam

from preprocess.kmers import kmers_to_dna


class GenomeInputError(Exception):
    """Bad genome input; its message is one line meant for the user, shown without a traceback."""


_SNIFF_BYTES = 1 << 16
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

    def records(self) -> Iterator[GenomeRecord]:
        """Stream records in file order; raises :class:`GenomeInputError` on duplicate names or bad rows."""
        reader = _fasta_records if self.format == "fasta" else _tsv_records
        seen: set[str] = set()
        for record in reader(self.path):
            if record.name in seen:
                raise GenomeInputError(f"{self.path}: duplicate record name {record.name!r}")
            seen.add(record.name)
            yield record


def open_genome(path: str | os.PathLike) -> GenomeSource:
    """Check that ``path`` is a readable, non-empty FASTA or TSV file and sniff which."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise GenomeInputError(f"{path}: no such file")
    if os.path.isdir(path):
        raise GenomeInputError(f"{path}: is a directory, expected a FASTA or TSV file")
    if not os.access(path, os.R_OK):
        raise GenomeInputError(f"{path}: permission denied")
    head = _read_head(path)
    text = head.lstrip()
    if not text:
        raise GenomeInputError(f"{path}: file is empty")
    if text.startswith(">"):
        return GenomeSource(path, "fasta", _total_from_fai(path))
    if len(head) == _SNIFF_BYTES and "\n" in text:
        text = text[: text.rindex("\n")]  # the last line of the sniffed head may be cut short
    rows = [row for row in _tsv_rows(io.StringIO(text)) if row][:50]
    has_header = not _looks_like_sequence(rows[0][0])
    if has_header:
        rows = rows[1:]
    if has_header and not rows:
        raise GenomeInputError(f"{path}: TSV has a header but no rows")
    if all(_looks_like_sequence(row[0]) for row in rows):
        return GenomeSource(path, "tsv", None)
    raise GenomeInputError(
        f"{path}: not a FASTA file (no '>' header) nor a TSV whose first column is DNA or k-mers"
    )


def _tsv_rows(handle) -> Iterator[list[str]]:
    """Rows of a tab-separated file (quoted fields allowed), first fields stripped."""
    for row in csv.reader(handle, delimiter="\t"):
        if row and row[0].strip():
            yield [row[0].strip(), *row[1:]]
        else:
            yield []


def _looks_like_sequence(field: str) -> bool:
    return bool(_DNA_RE.match(field) or _KMER_STRING_RE.match(field))


def _read_head(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            magic = handle.read(2)
        opener = gzip.open if magic == b"\x1f\x8b" else open
        with opener(path, "rb") as handle:
            raw = handle.read(_SNIFF_BYTES)
    except (OSError, EOFError) as err:
        raise GenomeInputError(f"{path}: cannot read: {err}") from None
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise GenomeInputError(f"{path}: not a text FASTA or TSV file (binary content)") from None


def _total_from_fai(path: str) -> int | None:
    fai = path + ".fai"
    if not os.path.exists(fai):
        return None
    try:
        with open(fai) as handle:
            return sum(int(line.split("\t")[1]) for line in handle if line.strip())
    except (OSError, ValueError, IndexError):
        return None


def _fasta_records(path: str) -> Iterator[GenomeRecord]:
    # htslib would print its own "[E::bgzf_read_block] ..." lines next to our one-line error.
    previous_verbosity = pysam.set_verbosity(0)
    try:
        with pysam.FastxFile(path) as handle:
            for entry in handle:
                if entry.sequence is None:  # a FASTQ-less oddity; treat as empty
                    yield GenomeRecord(entry.name, "")
                else:
                    yield GenomeRecord(entry.name, entry.sequence)
    except (OSError, ValueError) as err:  # pysam raises ValueError on a truncated or corrupt file
        raise GenomeInputError(f"{path}: cannot read FASTA (truncated or corrupt?): {err}") from None
    finally:
        pysam.set_verbosity(previous_verbosity)


def _tsv_records(path: str) -> Iterator[GenomeRecord]:
    """Rows of a TSV whose first column is raw DNA or space-separated overlapping k-mers."""
    try:
        yield from _tsv_rows_as_records(path)
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise GenomeInputError(f"{path}: cannot read TSV (truncated or corrupt?): {err}") from None


def _tsv_rows_as_records(path: str) -> Iterator[GenomeRecord]:
    base = os.path.basename(path)
    with open(path, "rb") as handle:
        gzipped = handle.read(2) == b"\x1f\x8b"  # sniffed as _read_head does, whatever the file name
    opener = gzip.open if gzipped else open
    with opener(path, "rt", newline="") as handle:
        for row_no, row in enumerate(_tsv_rows(handle), start=1):
            if not row:
                continue
            field = row[0]
            if row_no == 1 and not _looks_like_sequence(field):
                continue  # header row, e.g. "sequence<TAB>label"
            if " " in field:
                try:
                    dna = kmers_to_dna(field)
                except ValueError as err:
                    raise GenomeInputError(f"{path}: row {row_no}: {err}") from None
            elif _DNA_RE.match(field):
                dna = field
            else:
                raise GenomeInputError(f"{path}: row {row_no}: first column is not DNA: {field[:40]!r}")
            yield GenomeRecord(f"{base}:{row_no}", dna)
