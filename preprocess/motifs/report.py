"""Outputs of ``genemask-motifs``: ``report.md``, ``matches.tsv`` and ``enrichment.png``.

:func:`write_outputs` builds the three in a temporary folder and moves them into place
only when all are complete (:func:`~genemask_preprocess.atomic_output.atomic_directory`),
so a full disk or an interrupt never leaves a truncated report, or a report beside the
matches of an earlier run. matplotlib is imported only to draw the plot.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from genemask_preprocess.atomic_output import atomic_directory
from genemask_preprocess.motifs.enrichment import (
    COUNT_STRATA,
    MATCH_NEIGHBOURS,
    EnrichmentResult,
    FisherResult,
    NullComparison,
)
from genemask_preprocess.motifs.pwm_scoring import MotifScores, is_match
from genemask_preprocess.motifs.sequence_sets import SequenceComparison

REPORT, MATCHES, PLOT = "report.md", "matches.tsv", "enrichment.png"
OUTPUT_NAMES = (REPORT, MATCHES, PLOT)

GROUP_LABELS = {
    "top": "top-N by npmi",
    "bottom": "bottom-N by npmi",
    "random": "random, count-matched",
}


@dataclass(frozen=True)
class RunInfo:
    """What the report states about how it was made."""

    table_path: str
    release: str
    tax_group: str
    min_window_ic: float
    seed: int
    sequences_path: str | None = None
    background_path: str | None = None
    sequences_label: str | None = None
    background_label: str | None = None


def _fmt_p(p: float) -> str:
    return "nan" if math.isnan(p) else (f"{p:.2e}" if p < 1e-3 else f"{p:.3f}")


def _fmt_or(test: FisherResult) -> str:
    def one(x: float) -> str:
        return "nan" if math.isnan(x) else ("inf" if math.isinf(x) else f"{x:.2f}")

    return f"{one(test.odds_ratio)} ({one(test.ci_low)}–{one(test.ci_high)})"


def write_matches(out: TextIO, result: EnrichmentResult, scores: MotifScores) -> None:
    """``matches.tsv`` to ``out``: one row per scored k-mer, best npmi first, with its groups and the motifs it matches."""
    table = result.table
    membership = [[] for _ in range(len(table))]
    for name in ("top", "bottom", "random"):
        for row in result.groups[name]:
            membership[row].append(name)
    row_scores = scores.scores[:, table.codes]
    matches = is_match(row_scores, result.threshold)
    matrices = scores.matrices
    out.write(
        "kmer\trank\tnpmi\tcount\tgroup\tn_motifs\tbest_score\tbest_motif_id\tbest_motif_name"
        "\tbest_strand\tbest_offset\tmatched_motifs\n"
    )
    for row, kmer in enumerate(table.kmers):
        best = int(result.best_motif[row])
        code = table.codes[row]
        hit = np.flatnonzero(matches[:, row])
        hit = hit[np.argsort(-row_scores[hit, row], kind="stable")]
        strand = "+" if scores.strands[best, code] > 0 else "-"
        out.write(
            f"{kmer}\t{row + 1}\t{table.npmi[row]:.6g}\t{table.counts[row]}\t{','.join(membership[row])}"
            f"\t{len(hit)}\t{result.best_score[row]:.4f}\t{matrices[best].matrix_id}\t{matrices[best].name}"
            f"\t{strand}\t{scores.offsets[best, code]}\t{','.join(matrices[i].matrix_id for i in hit)}\n"
        )


def plot_enrichment(path: str | os.PathLike, result: EnrichmentResult, title: str) -> None:
    """Match fraction by PMI-rank decile, one line per threshold of the sweep (the chosen one bold)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.2), dpi=120)
    axes = figure.subplots()
    deciles = np.arange(1, 11)
    for threshold, fractions in sorted(result.deciles.items()):
        chosen = math.isclose(threshold, result.threshold)
        axes.plot(
            deciles,
            fractions,
            marker="o",
            linewidth=2.5 if chosen else 1.0,
            alpha=1.0 if chosen else 0.6,
            label=f"≥ {threshold:.2f}" + (" (chosen)" if chosen else ""),
        )
    axes.set_xticks(deciles)
    axes.set_xlabel("npmi rank decile (1 = highest PMI)")
    axes.set_ylabel("fraction matching any motif")
    axes.set_ylim(-0.02, 1.02)
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(title="relative score", fontsize=8, title_fontsize=8, loc="best")
    figure.tight_layout()
    figure.savefig(path)


def summary_sentence(result: EnrichmentResult) -> str:
    """One plain sentence on the main comparison (top vs count-matched random)."""
    frac = result.sweep[result.threshold]["fractions"]
    test = result.tests["top vs random"]
    if test.pvalue >= 0.05:
        verdict = "no significant difference from count-matched random k-mers"
    elif test.odds_ratio > 1:
        verdict = "top-PMI k-mers match known motifs MORE often than count-matched random k-mers"
    else:
        verdict = "top-PMI k-mers match known motifs LESS often than count-matched random k-mers"
    return (
        f"At relative score ≥ {result.threshold:.2f}, {frac['top']:.1%} of the top-{len(result.groups['top'])} "
        f"k-mers match a motif vs {frac['random']:.1%} of count-matched random k-mers and "
        f"{frac['bottom']:.1%} of the bottom ones: {verdict} "
        f"(Fisher p = {_fmt_p(test.pvalue)}, odds ratio {_fmt_or(test)})."
    )


def report_text(
    result: EnrichmentResult,
    scores: MotifScores,
    info: RunInfo,
    sequences: Sequence[SequenceComparison] | None = None,
    n_sequences: tuple[int, int] | None = None,
    sequence_null: NullComparison | None = None,
    n_listed_kmers: int = 20,
) -> str:
    """``report.md``: settings, group table, tests, threshold sweep, motifs, k-mers, sequences."""
    table, k, n = result.table, result.table.k, len(result.groups["top"])
    mode = scores.mode
    lines = [
        f"# Do top-PMI {k}-mers match known TF motifs?",
        "",
        f"- PMI table: `{info.table_path}`, {len(table)} scored {k}-mers (rows with n = {k}), ranked by npmi.",
        f"- Motifs: JASPAR {info.release.removeprefix('JASPAR')} CORE {info.tax_group}, "
        f"{len(scores.matrices)} motifs (latest versions, JASPAR pseudocounts, uniform background), via pyjaspar + Biopython.",
        f"- A k-mer matches a motif when its best relative PWM score over placements and both strands is ≥ {result.threshold:.2f}; "
        + (
            "k-mers shorter than the motif are scored *embedded* (the rest of the site is background, relative to the full motif's range)."
            if mode == "embedded"
            else f"k-mers shorter than the motif are scored against each k-long *window* relative to its own range "
            f"(windows with < {info.min_window_ic:g} bits/column skipped)."
        ),
        f"- Sets: top-{n} and bottom-{n} by npmi; random: {n} k-mers outside the top set, each drawn among the {MATCH_NEIGHBOURS} nearest in log count to one top k-mer (seed {info.seed}).",
        f"- Background: {result.matched.mean():.1%} of all {len(table)} scored {k}-mers match at least one motif.",
        "",
        "## Result",
        "",
        summary_sentence(result),
        "",
        "| k-mer set | k-mers | match any motif | fraction | mean motifs matched | median count |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, rows in result.groups.items():
        lines.append(
            f"| {GROUP_LABELS[name]} | {len(rows)} | {int(result.matched[rows].sum())} | {result.matched[rows].mean():.3f} "
            f"| {result.match_counts[rows].mean():.2f} | {np.median(table.counts[rows]):.0f} |"
        )
    lines.append(
        f"| all scored | {len(table)} | {int(result.matched.sum())} | {result.matched.mean():.3f} "
        f"| {result.match_counts.mean():.2f} | {np.median(table.counts):.0f} |"
    )
    lines += [
        "",
        "Fisher's exact test (two-sided) on the 2×2 table [matched, not matched] × [top, other]; sample odds ratio with 95% CI:",
        "",
        "| comparison | top matched/not | other matched/not | odds ratio (95% CI) | p |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, test in result.tests.items():
        (a, b), (c, d) = test.table
        lines.append(f"| {name} | {a}/{b} | {c}/{d} | {_fmt_or(test)} | {_fmt_p(test.pvalue)} |")
    if result.null_match is not None:
        null = result.null_match
        low, high = null.null_interval
        lines += [
            "",
            f"Count-stratified permutation test ({len(null.null)} draws; the top-N labels shuffled within "
            f"{COUNT_STRATA} log-count strata): top fraction {null.observed:.3f}, null mean {null.null_mean:.3f} "
            f"(95% of draws in {low:.3f}–{high:.3f}), two-sided empirical p = {_fmt_p(null.pvalue)}.",
        ]
    lines += [
        "",
        "## Threshold sweep",
        "",
        "| relative score ≥ | all | top | bottom | random | OR top vs random | p | OR top vs bottom | p |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for threshold, row in sorted(result.sweep.items()):
        f, tests = row["fractions"], row["tests"]
        tr, tb = tests["top vs random"], tests["top vs bottom"]
        lines.append(
            f"| {threshold:.2f} | {row['all']:.3f} | {f['top']:.3f} | {f['bottom']:.3f} | {f['random']:.3f} "
            f"| {_fmt_or(tr)} | {_fmt_p(tr.pvalue)} | {_fmt_or(tb)} | {_fmt_p(tb.pvalue)} |"
        )
    lines += [
        "",
        "`enrichment.png`: fraction matching any motif by npmi rank decile, one line per threshold.",
        "",
        f"## Motifs most matched by the top-{n} k-mers",
        "",
        "Expected = N × the fraction of all scored k-mers that match the motif.",
        "",
        "| motif | TF | top k-mers matched | expected | ratio |",
        "|---|---|---:|---:|---:|",
    ]
    for hit in result.top_motifs:
        expected = n * hit.background_fraction
        ratio = hit.top_matches / expected if expected > 0 else math.inf
        lines.append(
            f"| {hit.matrix_id} | {hit.name} | {hit.top_matches} | {expected:.2f} | {ratio:.1f} |"
        )
    if not result.top_motifs:
        lines.append("| none | | 0 | | |")
    lines += [
        "",
        f"## Top {min(n_listed_kmers, n)} k-mers",
        "",
        "| rank | k-mer | npmi | count | motifs matched | best motif | best score |",
        "|---:|---|---:|---:|---:|---|---:|",
    ]
    kmers = table.kmers
    for row in result.groups["top"][:n_listed_kmers]:
        best = scores.matrices[int(result.best_motif[row])]
        lines.append(
            f"| {row + 1} | {kmers[row]} | {table.npmi[row]:.4f} | {table.counts[row]} | {int(result.match_counts[row])} "
            f"| {best.matrix_id} {best.name} | {result.best_score[row]:.3f} |"
        )
    if sequences is not None:
        pos_desc = f"`{info.sequences_path}`" + (
            f" (label {info.sequences_label})" if info.sequences_label else ""
        )
        neg_desc = f"`{info.background_path}`" + (
            f" (label {info.background_label})" if info.background_label else ""
        )
        n_pos, n_neg = n_sequences or (0, 0)
        lines += [
            "",
            "## Sequences: are top-PMI k-mers enriched in the positives?",
            "",
            f"Positives: {pos_desc}, {n_pos} sequences. Background: {neg_desc}, {n_neg} sequences.",
            "Density = fraction of a sequence's k-mer positions whose k-mer is in the set (Mann-Whitney U, two-sided); "
            "presence = sequences containing at least one (Fisher's exact test). Sequences, not overlapping k-mers, are the units.",
            "",
            "| k-mer set | density pos | density bg | ratio | Mann-Whitney p | with ≥1 pos | with ≥1 bg | OR (95% CI) | Fisher p |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for item in sequences:
            (a, b), (c, d) = item.presence.table
            ratio = (
                item.positive_density / item.background_density
                if item.background_density > 0
                else math.inf
            )
            lines.append(
                f"| {GROUP_LABELS[item.group]} | {item.positive_density:.4f} | {item.background_density:.4f} | {ratio:.2f} "
                f"| {_fmt_p(item.mannwhitney_pvalue)} | {a / (a + b):.3f} | {c / (c + d):.3f} | {_fmt_or(item.presence)} "
                f"| {_fmt_p(item.presence.pvalue)} |"
            )
        if sequence_null is not None:
            low, high = sequence_null.null_interval
            lines += [
                "",
                f"Is the top set's enrichment more than frequency explains? Its density ratio (pos/bg) is "
                f"{sequence_null.observed:.2f}; {len(sequence_null.null)} count-stratified permutations of the "
                f"top-N labels give {sequence_null.null_mean:.2f} on average (95% of draws in {low:.2f}–{high:.2f}); "
                f"two-sided empirical p = {_fmt_p(sequence_null.pvalue)}.",
            ]
    return "\n".join(lines) + "\n"


def write_outputs(
    out_dir: str | os.PathLike,
    result: EnrichmentResult,
    scores: MotifScores,
    info: RunInfo,
    plot_title: str,
    sequences: Sequence[SequenceComparison] | None = None,
    n_sequences: tuple[int, int] | None = None,
    sequence_null: NullComparison | None = None,
) -> None:
    """Write ``report.md``, ``matches.tsv`` and ``enrichment.png`` into ``out_dir``, all or nothing.

    ``out_dir`` is created if needed; an earlier run's three files are replaced, any
    other file there is kept.
    """
    text = report_text(result, scores, info, sequences, n_sequences, sequence_null)
    # force: the command has always replaced its own outputs in --out (it has no --force),
    # and force mode replaces only OUTPUT_NAMES, never the user's other files there.
    with atomic_directory(out_dir, force=True, owned=OUTPUT_NAMES) as tmp:
        (tmp / REPORT).write_text(text, encoding="utf-8")
        with open(tmp / MATCHES, "w", encoding="utf-8") as handle:
            write_matches(handle, result, scores)
        plot_enrichment(tmp / PLOT, result, plot_title)
