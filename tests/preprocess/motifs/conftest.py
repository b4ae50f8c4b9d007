"""Fixtures of the motif tests: small PMI tables with a known npmi order."""

import numpy as np
import pytest

from genemask_preprocess.kmers import kmer_of_code

PMI_HEADER = "ngram\tn\tcount\tnaive_pmi\tpmi\tnpmi\trank\n"


def write_pmi_rows(path, rows):
    """A PMI table of ``(ngram, count, npmi)`` rows, ranked in the given order."""
    path.write_text(
        PMI_HEADER
        + "".join(
            f"{g}\t{len(g)}\t{c}\t0.1\t0.1\t{s}\t{r}\n" for r, (g, c, s) in enumerate(rows, start=1)
        )
    )
    return path


@pytest.fixture
def pmi_table_file():
    """:func:`write_pmi_rows`, for tests that build their own table."""
    return write_pmi_rows


@pytest.fixture
def toy_table(tmp_path):
    """All 64 3-mers with a fixed, known order by npmi and counts from 1000 down, plus one n=4 row."""
    kmers = [kmer_of_code(c, 3) for c in range(64)]
    order = np.random.default_rng(7).permutation(64)
    rows = [(kmers[j], 1000 - 10 * i, 0.9 - 0.01 * i) for i, j in enumerate(order)]
    rows.append(("ACGT", 5, 0.99))  # n=4 row: ignored for k=3
    return write_pmi_rows(tmp_path / "toy.tsv", rows), [kmers[j] for j in order]
