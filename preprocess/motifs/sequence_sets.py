"""Are the top-PMI k-mers denser in positive sequences than in background ones?

Few-shot sequences (``--sequences`` vs ``--background``) are compared, per k-mer set,
by the per-sequence density of the set's k-mer occurrences (Mann-Whitney U) and by
presence (Fisher's exact test); sequences, not overlapping k-mers, are the units.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from genemask_preprocess.formats.text_table import read_labelled_rows
from genemask_preprocess.kmers import acgt_runs, encode_bases, kmer_codes, kmers_to_dna
from genemask_preprocess.motifs import MotifAnalysisError
from genemask_preprocess.motifs.enrichment import (
    FisherResult,
    KmerTable,
    NullComparison,
    fisher_test,
)


def read_fewshot_sequences(path: str | os.PathLike, label: str | None = None) -> list[str]:
    """DNA of a few-shot ``sequence<TAB>label`` TSV, read by :func:`read_labelled_rows`.

    ``sequence`` may be DNABERT-style space-separated overlapping k-mers or raw DNA.
    With ``label``, only rows of that label are kept.
    """
    sequences = []
    for row in read_labelled_rows(path, "\t"):
        if label is not None and row.label != label:
            continue
        try:
            sequences.append(
                kmers_to_dna(row.sequence) if " " in row.sequence else row.sequence.upper()
            )
        except ValueError as exc:
            raise MotifAnalysisError(f"{path} line {row.line}: {exc}") from None
    if not sequences:
        which = f" with label {label!r}" if label is not None else ""
        raise MotifAnalysisError(f"{path}: no sequences{which}")
    return sequences


def sequence_kmer_codes(sequence: str, k: int) -> np.ndarray:
    """Codes of the overlapping k-mers of a DNA string, split at non-ACGT letters."""
    codes = encode_bases(sequence)
    runs = acgt_runs(codes, min_length=k)
    if not len(runs):
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([kmer_codes(codes[a:b], k) for a, b in runs])


class SequenceKmers:
    """The k-mer occurrences of a set of sequences as a sparse (sequences, 4^k) count matrix."""

    def __init__(self, sequences: Sequence[str], k: int):
        from scipy.sparse import csr_matrix

        per_sequence = [sequence_kmer_codes(sequence, k) for sequence in sequences]
        lengths = np.array([len(codes) for codes in per_sequence], dtype=np.int64)
        if not lengths.any():
            raise MotifAnalysisError(f"no sequence of at least k={k} A/C/G/T bases to compare")
        rows = np.repeat(np.arange(len(per_sequence)), lengths)
        codes = np.concatenate(per_sequence)
        self.counts = csr_matrix(
            (np.ones(len(codes), dtype=np.float64), (rows, codes)), shape=(len(per_sequence), 4**k)
        )
        self.counts.sum_duplicates()
        self.lengths = lengths

    def density(self, member: np.ndarray) -> np.ndarray:
        """Per sequence (with at least one k-mer), the fraction of k-mer positions in the set."""
        keep = self.lengths > 0
        hits = self.counts @ np.asarray(member, dtype=np.float64)
        return hits[keep] / self.lengths[keep]


@dataclass(frozen=True)
class SequenceComparison:
    group: str
    positive_density: float
    background_density: float
    mannwhitney_pvalue: float
    presence: FisherResult
    """Fisher test on sequences containing at least one k-mer of the group."""


def _membership(table: KmerTable, rows: np.ndarray) -> np.ndarray:
    member = np.zeros(4**table.k, dtype=bool)
    member[table.codes[rows]] = True
    return member


def compare_sequence_sets(
    positives: Sequence[str],
    background: Sequence[str],
    table: KmerTable,
    groups: dict[str, np.ndarray],
    null_sets: np.ndarray | None = None,
) -> tuple[list[SequenceComparison], NullComparison | None]:
    """For each k-mer group, is it denser in the positive sequences than in the background ones?

    With ``null_sets`` ((draws, N) row indices, e.g. :func:`count_stratified_permutations`),
    also compares the top set's density ratio (positive / background) with theirs: is
    the enrichment more than k-mers of the same frequency show?
    """
    from scipy.stats import mannwhitneyu

    pos_kmers, neg_kmers = SequenceKmers(positives, table.k), SequenceKmers(background, table.k)
    results = []
    for name, rows in groups.items():
        member = _membership(table, rows)
        pos, neg = pos_kmers.density(member), neg_kmers.density(member)
        pvalue = float(mannwhitneyu(pos, neg, alternative="two-sided").pvalue)
        presence = fisher_test(int((pos > 0).sum()), len(pos), int((neg > 0).sum()), len(neg))
        results.append(
            SequenceComparison(name, float(pos.mean()), float(neg.mean()), pvalue, presence)
        )
    null = None
    if null_sets is not None and len(null_sets):

        def ratio(rows):
            member = _membership(table, rows)
            neg_mean = neg_kmers.density(member).mean()
            return pos_kmers.density(member).mean() / neg_mean if neg_mean > 0 else math.inf

        null = NullComparison(ratio(groups["top"]), np.array([ratio(rows) for rows in null_sets]))
    return results, null
