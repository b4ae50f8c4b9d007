"""The leak meter's strategy tables of ``docs/genemask_mlm.md``: every strategy measured, beside theory.

Usage: python benchmarks/leak_table.py [--corpus fragments|yeast ...] [--work-dir DIR]

Every plain strategy of the registry, and every stage of a curriculum whose stages are settings
(RandomMask), masks samples of a bundled corpus (``CORPORA``) through the ``genemask_mlm``
task's own dataset (seed 1, epoch 1), and the leak meter (:mod:`genemask_plugin.masking.leakage`)
reads each batch. Columns, each "measured (theory)": mask % (of the DNA tokens), leak % (of the
masked tokens), hidden bases per masked span, and the share of masked tokens in spans longer
than k tokens (wider than DNABERT's k-span). The output is deterministic; the docs test compares
it with the page.

Theory (:func:`theory`) is exact for a sample without ends, so long samples approach it and
short ones (where a span at an end hides the outer bases too) depart from it:

- ``random``: i.i.d. tokens at p, a masked token left unchanged with probability u; in closed
  form (:func:`iid_theory`) a hidden token leaks when its nearest visible neighbours, at geometric
  distances d and e (a neighbour is hidden with q = p(1 - u)), satisfy d + e <= k, and a span
  hides q^k / (p (1 - p)) bases on average.
- Centred spans (``kmer_span``, ``variable_span`` and RandomMask's stages): by inclusion-exclusion
  over the positions around a token (:func:`centred_span_theory`), merged spans included. An
  isolated span of L tokens hides ``(L - k + 1)(1 - u)^k`` bases on average
  (:func:`isolated_span_hidden_bases`): DNABERT's 6-token span 1 base when none of its tokens is
  left unchanged, 0.9^6 = 0.53 on average.
- The PMI strategies' spans depend on the table and the sequence: no theory ("—").

A curriculum whose candidates are other entries (``cm_gems``, ``cm_step``) masks as those rows do.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genemask_plugin.data.genemask_mask_dataset import MASK_CANDIDATES, regular_token_ids
from genemask_plugin.masking import spans
from genemask_plugin.masking.config import MaskingConfig
from genemask_plugin.masking.leakage import measure_leakage
from genemask_plugin.masking.strategies import STRATEGIES, MaskStrategy
from genemask_plugin.tasks.genemask_mlm import GeneMaskMLMConfig, GeneMaskMLMTask
from genemask_preprocess.corpus.cli import main as preprocess_main

REPO = Path(__file__).resolve().parents[1]
FRAGMENTS = REPO / "data" / "genomes" / "human_fewshot_fragments.fa.gz"
YEAST = REPO / "data" / "genomes" / "S288C_chr01_chr06.fa.gz"
TABLE = REPO / "data" / "pmi" / "human_fragments.pmi.tsv"
START, END = "<!-- leak table: python benchmarks/leak_table.py -->", "<!-- end of leak table -->"
BATCH = 64


# ---------------------------------------------------------------- theory


@dataclass(frozen=True)
class LeakFigures:
    """Mask %, leak %, hidden bases per span, % of masked tokens in spans longer than k; None: unknown."""

    mask_pct: float | None
    leak_pct: float | None
    hidden_bases: float | None
    wide_pct: float | None


def iid_theory(p: float, k: int, u: float) -> LeakFigures:
    """BERT's i.i.d. masking at p, in closed form (a check on :func:`centred_span_theory`)."""
    q = p * (1 - u)  # a position hidden: masked and not left unchanged
    v = 1 - q
    covered = sum((n - 1) * q ** (n - 2) * v**2 for n in range(2, k + 1))  # P(d + e <= k), d, e geometric
    in_short_runs = sum(length * p ** (length - 1) * (1 - p) ** 2 for length in range(1, k + 1))
    return LeakFigures(100 * p, 100 * (u + (1 - u) * covered), q**k / (p * (1 - p)), 100 * (1 - in_short_runs))


def centred_span_theory(p: float, lengths, k: int, u: float) -> LeakFigures:
    """The exact edge-free figures of centred spans: centres i.i.d. at p, each masking L tokens
    (L uniform over ``lengths``) at offsets -floor((L-1)/2) .. +ceil((L-1)/2), then 80/10/10 with
    a masked token left unchanged with probability u.

    Every figure is a probability about the positions Ω = -k .. k around a position 0:
    P(a set S of them all unmasked) is a product over the centres that could reach S, and
    P(a set U all masked) its inclusion-exclusion sum over the subsets of U (one Möbius transform
    over the 2^(2k+1) subsets). Given the mask, each masked token is hidden (not left unchanged)
    independently with 1 - u. Then, for position 0:

    - masked: P({0} masked); a span starts there: P({-1} unmasked) - P({-1, 0} unmasked);
    - a hidden base per position: the k tokens ending at 0 all hidden, (1 - u)^k P(-k+1..0 masked),
      so hidden bases per span = that / P(a span starts);
    - 0 is hidden and not leaked exactly when it lies in k consecutive hidden tokens (d + e > k):
      inclusion-exclusion over the k windows of k tokens that hold 0;
    - 0 lies in a span longer than k: in k + 1 consecutive masked tokens, over those k + 1 windows.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    omega = np.arange(-k, k + 1)  # bit i of a subset is position omega[i]
    m = len(omega)
    subsets = np.arange(1 << m, dtype=np.int64)
    reach = int(lengths.max())
    # Bits of Ω that a centre at c covers with each length, for every centre that reaches Ω.
    centres = np.arange(-k - reach, k + reach + 1)
    starts = centres[:, None] - (lengths[None, :] - 1) // 2
    inside = (omega[None, None, :] >= starts[..., None]) & (omega[None, None, :] < (starts + lengths)[..., None])
    covered_bits = (inside.astype(np.int64) << np.arange(m)).sum(axis=-1)  # (centres, lengths)
    hits = ((subsets[:, None, None] & covered_bits[None]) != 0).mean(axis=2)  # P(a centre's span meets S)
    all_unmasked = np.prod(1.0 - p * hits, axis=1)  # P(every position of S unmasked)
    # Möbius transform: all_masked[U] = sum over S within U of (-1)^|S| all_unmasked[S].
    sizes = np.array([bin(s).count("1") for s in subsets])
    all_masked = np.where(sizes % 2, -all_unmasked, all_unmasked)
    for bit in range(m):
        has = (subsets >> bit) & 1 == 1
        all_masked[has] += all_masked[subsets[has] ^ (1 << bit)]

    def bits(positions) -> int:
        return int(sum(1 << int(np.flatnonzero(omega == q)[0]) for q in positions))

    def any_window(width: int, hidden: bool) -> float:
        """P(0 lies in ``width`` consecutive masked tokens (hidden ones, if ``hidden``))."""
        windows = [bits(range(j - width + 1, j + 1)) for j in range(width)]
        total = 0.0
        for chosen in range(1, 1 << width):
            union = 0
            for i in range(width):
                if chosen >> i & 1:
                    union |= windows[i]
            weight = (1 - u) ** bin(union).count("1") if hidden else 1.0
            total += (-1) ** (bin(chosen).count("1") + 1) * weight * all_masked[union]
        return total

    masked = 1.0 - all_unmasked[bits([0])]
    span_starts = all_unmasked[bits([-1])] - all_unmasked[bits([-1, 0])]
    hidden_per_position = (1 - u) ** k * all_masked[bits(range(-k + 1, 1))]
    return LeakFigures(
        float(100 * masked),
        float(100 * (1 - any_window(k, hidden=True) / masked)),
        float(hidden_per_position / span_starts),
        float(100 * any_window(k + 1, hidden=False) / masked),
    )


def isolated_span_hidden_bases(length: int, k: int, u: float) -> float:
    """Mean hidden bases of one span of ``length`` tokens between visible neighbours: ``length - k + 1``
    when no token of it is left unchanged; any unchanged token among k consecutive ones reveals a base."""
    return max(0, length - k + 1) * (1 - u) ** k


def theory(config: MaskingConfig) -> LeakFigures:
    """The exact edge-free figures of ``config``'s strategy where a stationary model exists:
    i.i.d. tokens and centred spans. The PMI strategies' spans depend on the table (None)."""
    select, k, u = config.strategy_entry.select, config.k, config.leave_unmasked_prob
    if select is spans.select_random_tokens:
        return centred_span_theory(config.centre_prob, [1], k, u)
    if select is spans.select_kmer_spans:
        return centred_span_theory(config.centre_prob, [k], k, u)
    if select is spans.select_variable_spans:
        return centred_span_theory(config.centre_prob, np.arange(k, config.mask_boundary + 1), k, u)
    return LeakFigures(None, None, None, None)


# ---------------------------------------------------------------- measurement


def rows_to_measure(k: int = 6) -> list[tuple[str, MaskStrategy, int]]:
    """``(label, entry, candidate)``: every plain strategy, and each stage of a curriculum whose
    candidates are settings of one entry."""
    rows = []
    for entry in STRATEGIES.values():
        if entry.pmi_lookup is not None and entry.pmi_lookup.table_view != "token_scores":
            continue  # pmi_span: collocations of non-overlapping tokens, not these overlapping 6-mers
        if not entry.is_curriculum:
            rows.append((f"`{entry.name}`", entry, 0))
        elif entry.candidate_configs is not None:
            for i, candidate in enumerate(MaskingConfig(entry.name, k=k).candidates()):
                rows.append((f"`{entry.name}` stage {i + 1} (spans of {k}..{candidate.mask_boundary})", entry, i))
    return rows


def measure(data: Path, entry: MaskStrategy, candidate: int, split: str, items: int | None) -> LeakFigures:
    """The leak meter over the first ``items`` samples of ``split``, masked by the task's dataset."""
    cfg = GeneMaskMLMConfig(data=str(data), mask_strategy=entry.name, pmi_table=str(TABLE), seed=1, max_update=1)
    task = GeneMaskMLMTask.setup_task(cfg)
    task.load_dataset(split)
    dataset = task.dataset(split)
    masking = task.masking.candidates()[candidate]
    carries_bases = np.zeros(len(task.dictionary), dtype=bool)
    carries_bases[regular_token_ids(task.dictionary.symbols, task.dictionary.nspecial, task.mask_idx)] = True
    pad = task.dictionary.pad()
    n = len(dataset) if items is None else min(items, len(dataset))
    totals = dict.fromkeys(("dna", "masked", "leaked", "spans", "hidden", "wide"), 0)
    for first in range(0, n, BATCH):
        batch = dataset.collater([dataset[i] for i in range(first, min(first + BATCH, n))])
        mask = batch if candidate == 0 else batch[MASK_CANDIDATES]["masks"][candidate - 1]
        source, target = mask["net_input"]["src_tokens"].numpy(), mask["target"].numpy()
        reading = measure_leakage(source, target, carries_bases, pad, masking.k)
        totals["dna"] += int(carries_bases[np.where(target != pad, target, source)].sum())
        totals["masked"] += reading.num_masked
        totals["leaked"] += reading.num_leaked
        totals["spans"] += len(reading.span_lengths)
        totals["hidden"] += reading.hidden_bases
        totals["wide"] += int(reading.span_lengths[reading.span_lengths > (masking.k or 1)].sum())
    return LeakFigures(100 * totals["masked"] / totals["dna"], 100 * totals["leaked"] / totals["masked"],
                       totals["hidden"] / totals["spans"], 100 * totals["wide"] / totals["masked"])


def markdown_table(data: Path, split: str = "valid", items: int | None = None) -> str:
    header = ["strategy", "mask %", "leak %", "hidden bases / span", "masked tokens in spans > k, %"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, entry, candidate in rows_to_measure():
        measured = measure(data, entry, candidate, split, items)
        expected = theory(MaskingConfig(entry.name, k=6).candidates()[candidate])
        cells = [_cell(m, t, digits) for m, t, digits in zip(
            (measured.mask_pct, measured.leak_pct, measured.hidden_bases, measured.wide_pct),
            (expected.mask_pct, expected.leak_pct, expected.hidden_bases, expected.wide_pct),
            (1, 1, 2, 1), strict=True)]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(measured: float, expected: float | None, digits: int) -> str:
    return f"{measured:.{digits}f} (" + ("—" if expected is None else f"{expected:.{digits}f}") + ")"


CORPORA = {
    # name: (genome, extra genemask-preprocess options, split, samples, what the samples are)
    "fragments": (FRAGMENTS, [], "valid", None,
                  "the bundled human fragments (`examples/_common.sh`'s corpus), valid split, one chunk per sample: "
                  "mostly 35-token samples"),
    "yeast": (YEAST, ["--full-chunk-probability", "1"], "train", 500,
              "the bundled yeast chromosomes I and VI cut into 511-base chunks, the first 500 training samples: "
              "506 tokens each, what packed 512-token blocks approach"),
}


def bundled_corpus(name: str, work: Path) -> Path:
    """A bundled genome preprocessed as ``CORPORA`` says (k=6, seed 1)."""
    genome, options, _, _, _ = CORPORA[name]
    out = work / f"{name}_k6"
    if not (out / "valid.idx").exists():
        argv = [str(genome), "--k", "6", "--out", str(out), "--seed", "1", *options, "--force", "--quiet"]
        if preprocess_main(argv) != 0:
            raise SystemExit("genemask-preprocess failed")
    return out


def tables(work: Path, corpora=tuple(CORPORA)) -> str:
    """The docs' leak tables, one per bundled corpus, between their markers."""
    parts = [START]
    for name in corpora:
        _, _, split, items, description = CORPORA[name]
        parts += [f"On {description}:", "", markdown_table(bundled_corpus(name, work), split, items), ""]
    return "\n".join([*parts[:-1], END])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, help="keep the preprocessed corpora here (default: a temp dir)")
    parser.add_argument("--corpus", choices=list(CORPORA), action="append",
                        help="only this bundled corpus (repeatable; default: all)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(tables(args.work_dir or Path(tmp), tuple(args.corpus or CORPORA)))


if __name__ == "__main__":
    main()
