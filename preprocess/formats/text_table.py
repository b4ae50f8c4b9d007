"""Delimited text tables: the one row reader (files open through :mod:`.input_file`: plain or gzip, pipes too).

Used by the labelled-sequence tables and genome TSVs: few-shot ``sequence<TAB>label`` files and
GUE ``sequence,label`` CSVs (``genemask-fewshot prepare``, the motif sequence sets) and DNABERT-style
genome TSVs (:mod:`.genome`). COUNTS and PMI tables, plain numeric TSVs, have their own
readers (:mod:`.ngram_counts_file`, :mod:`.pmi_table`). Fields may be double-quoted, a UTF-8 BOM
is ignored, fields of any length are accepted (a long sequence is valid input), and a malformed
file raises :class:`~genemask_preprocess.errors.InputError` naming file and line.
"""

from __future__ import annotations

import csv
import gzip
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from genemask_preprocess.errors import InputError
from genemask_preprocess.formats.input_file import check_input_file, open_text

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # a chromosome-long TSV field is valid input


def iter_rows(path: str | os.PathLike, delimiter: str = "\t") -> Iterator[tuple[int, list[str]]]:
    """``(line number, fields)`` of every non-blank row of a delimited text file."""
    check_input_file(path)
    try:
        with open_text(path) as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            for fields in reader:
                if not fields or all(not field.strip() for field in fields):
                    continue
                yield reader.line_num, fields
    except csv.Error as err:
        raise InputError(f"{path} line {reader.line_num}: {err}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file (binary or non-UTF-8 content)") from None
    except (EOFError, gzip.BadGzipFile, OSError) as err:
        raise InputError(f"{path}: cannot read (truncated or corrupt?): {err}") from None


@dataclass(frozen=True)
class LabelledRow:
    line: int
    sequence: str
    """The ``sequence`` field, stripped: raw DNA or space-separated overlapping k-mers."""
    label: str


def read_labelled_rows(path: str | os.PathLike, delimiter: str = "\t") -> list[LabelledRow]:
    """Rows of a table with a ``sequence`` and a ``label`` column, named in its header.

    This is DNABERT's few-shot TSV (``sequence<TAB>label``) and, with ``delimiter=","``,
    GUE's CSV. A missing or whitespace-holding label, or a missing header, is an
    :class:`InputError`; the caller checks the sequences.
    """
    rows = iter_rows(path, delimiter)
    first = next(rows, None)
    if first is None:
        raise InputError(f"{path}: empty file, expected a header 'sequence{_show(delimiter)}label'")
    names = [name.strip().lower() for name in first[1]]
    if "sequence" not in names or "label" not in names:
        raise InputError(f"{path}: expected a header 'sequence{_show(delimiter)}label', got {first[1]!r}")
    seq_col, label_col = names.index("sequence"), names.index("label")
    out = []
    for line, fields in rows:
        label = fields[label_col].strip() if label_col < len(fields) else ""
        if not label:
            raise InputError(f"{path} line {line}: missing label")
        if any(c.isspace() for c in label):
            raise InputError(f"{path} line {line}: label {label!r} contains whitespace")
        sequence = fields[seq_col].strip() if seq_col < len(fields) else ""
        out.append(LabelledRow(line, sequence, label))
    if not out:
        raise InputError(f"{path}: no data rows")
    return out


def _show(delimiter: str) -> str:
    return "<TAB>" if delimiter == "\t" else delimiter
