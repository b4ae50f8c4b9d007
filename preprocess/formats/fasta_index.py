"""FASTA index files: ``.fai`` and bgzip's ``.gzi``, read, and checked against the FASTA they index.

- ``GENOME.fai`` (``samtools faidx``): one line per record,
  ``NAME<TAB>LENGTH<TAB>OFFSET<TAB>LINEBASES<TAB>LINEWIDTH``: the record's bases, the byte offset
  of its first base in the uncompressed file, and the bases and bytes of each full line.
- ``GENOME.gzi`` (``bgzip -i``, or ``samtools faidx`` of a bgzip file): a little-endian uint64
  count, then that many ``(compressed offset, uncompressed offset)`` uint64 pairs, one per
  BGZF block after the first. Plain gzip has no blocks, hence no random access.

An index describes its FASTA only until the FASTA changes, and a wrong one gives wrong
counts silently, so one is used only when it is at least as new as the FASTA (htslib warns
otherwise; bgzip needs its ``.gzi`` too) and its records follow each other without overlap to
the end of the file. While reading by region (:class:`IndexedFasta`), each record read is
checked where it is read: the line before its offset is its header, every line read has the
index's layout (LINEBASES bases, then a line end), and the record ends where the index says.
A mismatch is a one-line :class:`FastaIndexError`. Nothing is written, ever: htslib builds a
missing ``.gzi`` (rewriting the ``.fai``) beside the user's genome; this reader never builds one.
The bytes read are returned as they are; what counts as sequence is decided by the one FASTA
reader (:mod:`.genome`), for the indexed path as for the streaming one.
"""

from __future__ import annotations

import bisect
import os
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from genemask_preprocess.errors import InputError

_BGZF_MAGIC = b"\x1f\x8b\x08\x04"
_LINE_END_BYTES = b" \t\r"  # what may come before a line's "\n" (as the streaming reader drops it)
_SKIP_AHEAD = 1 << 22  # read on rather than seek back to a block when the next region is this close


class FastaIndexError(InputError):
    """An index that does not describe its FASTA (found while reading by region)."""


@dataclass(frozen=True)
class FaiRecord:
    name: str
    length: int
    offset: int
    line_bases: int
    line_width: int

    def byte_of(self, base: int) -> int:
        """Uncompressed byte offset of base ``base`` (0-based) of this record."""
        return self.offset + (base // self.line_bases) * self.line_width + base % self.line_bases

    @property
    def end(self) -> int:
        """The byte after the record's last base."""
        return self.byte_of(self.length - 1) + 1 if self.length else self.offset


@dataclass(frozen=True)
class FastaIndex:
    """A FASTA's ``.fai`` (and ``.gzi`` for bgzip), checked to fit it; see :func:`load_fasta_index`."""

    fasta: str
    fai: str
    records: tuple[FaiRecord, ...]
    blocks: tuple[tuple[int, int], ...] | None
    """bgzip: ``(uncompressed, compressed)`` offsets of every block, the first included; None for plain text."""
    by_region: bool
    """Whether the FASTA can be read by region (plain text, or bgzip with its ``.gzi``)."""

    @property
    def total_bases(self) -> int:
        return sum(record.length for record in self.records)


def load_fasta_index(fasta: str) -> tuple[FastaIndex | None, str | None]:
    """``FASTA.fai`` if it exists and fits ``fasta``; else None and why (None if there is no index).

    The index's ``by_region`` says whether regions can be read (a ``.fai`` of a plain gzip
    file, or of a bgzip one without ``.gzi``, still gives the record lengths).
    """
    fai, gzi = fasta + ".fai", fasta + ".gzi"
    if not os.path.isfile(fai):
        return None, None
    name, fai_name = os.path.basename(fasta), os.path.basename(fai)
    try:
        records = _read_fai(fai)
        fasta_time = os.stat(fasta).st_mtime_ns
        if os.stat(fai).st_mtime_ns < fasta_time:
            return None, f"{fai_name} is older than {name}, so it may not describe it"
        with open(fasta, "rb") as handle:
            head = handle.read(16)
    except (OSError, ValueError, UnicodeDecodeError) as err:
        return None, f"{fai_name} cannot be read as a FASTA index ({err})"
    blocks = None
    if head.startswith(b"\x1f\x8b"):
        if not (head.startswith(_BGZF_MAGIC) and head[12:14] == b"BC"):
            return FastaIndex(fasta, fai, records, None, False), f"{name} is gzip, not bgzip, so it has no random access"
        if not os.path.isfile(gzi):
            return FastaIndex(fasta, fai, records, None, False), f"{name} has a .fai but no .gzi"
        try:
            if os.stat(gzi).st_mtime_ns < fasta_time:
                return None, f"{os.path.basename(gzi)} is older than {name}, so it may not describe it"
            blocks = _read_gzi(gzi)
        except (OSError, ValueError, struct.error) as err:
            return None, f"{os.path.basename(gzi)} cannot be read as a bgzip index ({err})"
    index = FastaIndex(fasta, fai, records, blocks, True)
    problem = _layout_problem(index)
    if problem:
        return None, f"{fai_name} does not describe {name}: {problem}"
    return index, None


def _read_fai(fai: str) -> tuple[FaiRecord, ...]:
    records, names = [], set()
    with open(fai, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) != 5:
                raise ValueError(f"line {number} has {len(fields)} fields, expected 5")
            length, offset, line_bases, line_width = (int(field) for field in fields[1:])
            if min(length, offset) < 0 or (length and not 0 < line_bases < line_width) or fields[0] in names:
                raise ValueError(f"line {number} is not a FASTA record's entry")
            names.add(fields[0])
            records.append(FaiRecord(fields[0], length, offset, max(line_bases, 1), max(line_width, 2)))
    return tuple(records)


def _read_gzi(gzi: str) -> tuple[tuple[int, int], ...]:
    with open(gzi, "rb") as handle:
        data = handle.read()
    (count,) = struct.unpack_from("<Q", data)
    if len(data) != 8 + 16 * count:
        raise ValueError(f"{len(data)} bytes for {count} blocks")
    pairs = struct.unpack_from(f"<{2 * count}Q", data, 8)
    blocks = [(0, 0), *((pairs[i + 1], pairs[i]) for i in range(0, 2 * count, 2))]
    if any(b[0] <= a[0] or b[1] <= a[1] for a, b in zip(blocks, blocks[1:], strict=False)):
        raise ValueError("its blocks are not in order")
    return tuple(blocks)


def _layout_problem(index: FastaIndex) -> str | None:
    """Whether the records follow each other without overlap and end where the file ends."""
    position = 0
    for record in index.records:
        if record.offset < position + len(record.name) + 2:  # room for ">NAME\n" before the bases
            return f"record {record.name!r} overlaps the one before it"
        position = record.end
    try:
        with IndexedFasta(index) as fasta:
            size = fasta.size()
            tail = fasta.read_at(position, min(size - position, 1 << 16)) if size > position else b""
    except (OSError, zlib.error, FastaIndexError) as err:
        return str(err)
    if size < position or tail.translate(None, _LINE_END_BYTES + b"\n"):
        last = index.records[-1].name if index.records else "?"
        return f"the file does not end after record {last!r} ({size} bytes, the index says {position})"
    return None


class IndexedFasta:
    """A FASTA opened for reading by region, through its checked :class:`FastaIndex`."""

    def __init__(self, index: FastaIndex):
        self.index = index
        self.by_name = {record.name: record for record in index.records}
        self.handle = open(index.fasta, "rb")
        self.checked: set[str] = set()  # records whose header was checked
        self._cursor: tuple[int, int, zlib._Decompress | None, bytes] | None = None

    def __enter__(self) -> IndexedFasta:
        return self

    def __exit__(self, *exc) -> None:
        self.handle.close()

    def record(self, name: str) -> FaiRecord:
        return self.by_name[name]

    def bases(self, name: str, start: int, stop: int) -> bytes:
        """The bytes of bases ``[start, stop)`` of record ``name``, line ends removed, checked against the index."""
        record = self.by_name[name]
        if name not in self.checked:
            self._check_header(record)
            self.checked.add(name)
        if start >= stop:
            return b""
        bases, width = record.line_bases, record.line_width
        first, last = start // bases, (stop - 1) // bases
        record_last_line = (record.length - 1) // bases
        last_line_bases = record.length - record_last_line * bases if last == record_last_line else bases
        begin = record.offset + first * width
        end = record.offset + last * width + last_line_bases + (width - bases)
        data = np.frombuffer(self.read_at(begin, end - begin), dtype=np.uint8)
        lines = last - first + 1
        full = data[: (lines - 1) * width].reshape(lines - 1, width)
        tail = data[(lines - 1) * width :]
        at_file_end = len(tail) < last_line_bases + (width - bases)
        self._check_line_ends(record, full[:, bases:], tail[last_line_bases:], at_file_end)
        found = np.concatenate([full[:, :bases].ravel(), tail[:last_line_bases]])
        if len(found) != (last - first) * bases + last_line_bases or (found == ord("\n")).any():
            raise self._mismatch(record, "a line is shorter than the index says")
        if (full[:, 0] == ord(">")).any() or tail[:1].tobytes() == b">":  # a header where bases should be
            raise self._mismatch(record, "a header line lies where the index has bases")
        if stop == record.length:
            self._check_record_end(record, begin + len(data))
        offset = start - first * bases
        return found[offset : offset + stop - start].tobytes()

    def _check_line_ends(self, record: FaiRecord, ends: np.ndarray, last_end: np.ndarray, at_file_end: bool) -> None:
        if ends.shape[1] and not ((ends[:, -1] == ord("\n")).all() and np.isin(ends[:, :-1], list(_LINE_END_BYTES)).all()):
            raise self._mismatch(record, f"its lines are not {record.line_bases} bases each")
        complete = len(last_end) == record.line_width - record.line_bases
        if (complete and last_end[-1] != ord("\n")) or (not complete and not at_file_end) or not np.isin(
            last_end[:-1] if complete else last_end, list(_LINE_END_BYTES + b"\n")
        ).all():
            raise self._mismatch(record, f"its lines are not {record.line_bases} bases each")

    def _check_header(self, record: FaiRecord) -> None:
        want = min(record.offset, 1 << 12)
        while True:
            before = self.read_at(record.offset - want, want)
            cut = before.rfind(b"\n", 0, len(before) - 1)
            if cut >= 0 or want == record.offset or want >= 1 << 20:
                break
            want = min(record.offset, want * 16)
        line = before[cut + 1 :].rstrip(b"\r\n")
        words = line[1:].split()
        if not before.endswith(b"\n") or not line.startswith(b">") or not words or words[0] != record.name.encode():
            raise self._mismatch(record, "the line before its offset is not its header")

    def _check_record_end(self, record: FaiRecord, position: int) -> None:
        """After the record's last line only blank lines may come before the next header (or the end)."""
        while True:
            chunk = self.read_at(position, 1 << 12)
            if not chunk:
                return
            stripped = chunk.lstrip(_LINE_END_BYTES + b"\n")
            if stripped:
                between = chunk[: len(chunk) - len(stripped)]
                if stripped.startswith(b">") and (between.endswith(b"\n") or (not between and self._after_newline(position))):
                    return
                raise self._mismatch(record, "the record goes on past its length in the index")
            position += len(chunk)

    def _after_newline(self, position: int) -> bool:
        return position > 0 and self.read_at(position - 1, 1) == b"\n"

    def _mismatch(self, record: FaiRecord, what: str) -> FastaIndexError:
        fasta = self.index.fasta
        return FastaIndexError(
            f"{self.index.fai}: does not describe {fasta} (record {record.name!r}: {what}); "
            f"re-index it (samtools faidx {fasta}) or delete it"
        )

    # --- bytes at uncompressed offsets ------------------------------------------------------

    def size(self) -> int:
        """Uncompressed size of the FASTA."""
        if self.index.blocks is None:
            return os.fstat(self.handle.fileno()).st_size
        last_start = self.index.blocks[-1][0]
        return last_start + len(self.read_at(last_start, None))

    def read_at(self, position: int, size: int | None) -> bytes:
        """``size`` bytes (None: to the end) from uncompressed offset ``position``."""
        if self.index.blocks is None:
            self.handle.seek(position)
            return self.handle.read(-1 if size is None else size)
        return self._read_bgzf(position, size)

    def _read_bgzf(self, position: int, size: int | None) -> bytes:
        cursor = self._cursor
        if cursor is None or not cursor[0] <= position < cursor[0] + _SKIP_AHEAD:
            blocks = self.index.blocks
            block = blocks[bisect.bisect_right(blocks, (position, float("inf"))) - 1]
            self.handle.seek(block[1])
            if self.handle.read(2) != b"\x1f\x8b":  # a block starts there, or the .gzi is of another file
                raise FastaIndexError(
                    f"{self.index.fasta}.gzi: does not describe {self.index.fasta} (no bgzip block at byte "
                    f"{block[1]}); re-index it (samtools faidx) or delete it"
                )
            self.handle.seek(block[1])
            cursor = (block[0], block[1], None, b"")
        at, compressed_at, inflater, pending = cursor
        parts, wanted = [], None if size is None else position - at + size
        have = len(pending)
        parts.append(pending)
        while wanted is None or have < wanted:
            chunk = self.handle.read(1 << 16)
            if not chunk:
                break
            while chunk:  # one gzip member per BGZF block
                if inflater is None:
                    inflater = zlib.decompressobj(31)
                out = inflater.decompress(chunk)
                parts.append(out)
                have += len(out)
                chunk, inflater = (inflater.unused_data, None) if inflater.eof else (b"", inflater)
        data = b"".join(parts)
        skip = position - at
        result = data[skip:] if size is None else data[skip : skip + size]
        consumed = skip + len(result)
        self._cursor = (at + consumed, compressed_at, inflater, data[consumed:])
        return result
