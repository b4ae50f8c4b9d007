import gzip

import pytest

from genemask_preprocess.errors import InputError
from genemask_preprocess.formats.text_table import iter_rows, open_text, read_labelled_rows


def test_gzip_is_sniffed_by_content_not_name(tmp_path):
    path = tmp_path / "plain.tsv"  # gzip data under a plain name
    with gzip.open(path, "wt") as handle:
        handle.write("a\tb\n")
    with open_text(path) as handle:
        assert handle.read() == "a\tb\n"


def test_rows_allow_quotes_bom_blank_lines_and_long_fields(tmp_path):
    long = "ACGT" * 100_000  # 400 kbp: beyond csv's default 131 072-character limit
    path = tmp_path / "t.tsv"
    path.write_text('\ufeff"sequence"\tlabel\n\n' + f'"{long}"\t1\n')
    rows = list(iter_rows(path))
    assert rows == [(1, ["sequence", "label"]), (3, [long, "1"])]


def test_labelled_rows_and_their_errors(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("sequence,label\nACGTAC,0\n\"ACG TTT\",1\n")
    rows = read_labelled_rows(path, delimiter=",")
    assert [(r.line, r.sequence, r.label) for r in rows] == [(2, "ACGTAC", "0"), (3, "ACG TTT", "1")]
    cases = {
        "ACGTAC\t0\n": "expected a header",
        "": "empty file",
        "sequence\tlabel\n": "no data rows",
        "sequence\tlabel\nACGT\t\n": "line 2: missing label",
        "sequence\tlabel\nACGT\ta b\n": "contains whitespace",
    }
    for text, message in cases.items():
        path = tmp_path / "bad.tsv"
        path.write_text(text)
        with pytest.raises(InputError, match=message):
            read_labelled_rows(path)


def test_unreadable_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        list(iter_rows(tmp_path / "missing.tsv"))
    with pytest.raises(InputError, match="is a directory"):
        list(iter_rows(tmp_path))
    binary = tmp_path / "b.tsv"
    binary.write_bytes(b"\xff\xfe\x00\x81" * 10)
    with pytest.raises(InputError, match="not a text file"):
        list(iter_rows(binary))
    truncated = tmp_path / "t.tsv.gz"
    rows = "".join(f"{i}\t{i * 7919 % 104729}\n" for i in range(5000)).encode()
    truncated.write_bytes(gzip.compress(rows)[:2000])
    with pytest.raises(InputError, match="truncated or corrupt"):
        list(iter_rows(truncated))
