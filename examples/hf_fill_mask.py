"""The quick start's last step: load an exported model with transformers alone and fill in masked k-mers.

Usage: python examples/hf_fill_mask.py MODEL_DIR   (a folder written by `genemask-hf export`)

Five sequences of the Prom-core test set (human promoter cores and non-promoters, none of them in the
pretraining corpus) each get one k-mer masked, at a fixed position. Overlapping k-mers spell their neighbours' bases, so a model
that has learned to read context ranks the true k-mer first; one that has learned only k-mer
frequencies guesses the common ones (TTTTTT, AAAAAA). For each it prints the true k-mer's rank and
the top 5, then ``true 6-mer in the top 5 at N of 5 positions``.

Only transformers and torch are needed to use the model; the k-mer string is built with our
helper, ``genemask_preprocess.kmers.dna_to_kmer_string``. The folder is read locally
(``local_files_only``): a missing folder is a one-line error, never a download attempt.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer

from genemask_preprocess.kmers import dna_to_kmer_string

TOP = 5
PROBES = (
    # (70 bp from data/fewshot/Prom-core/test.tsv, data row; the masked k-mer's position, 1-based, of 65)
    ("GGCGGCGGCGTGCGAAATGTTCACCGCGGCGGGGGCGCAGGACAGAGAGGTGAACTCACCGCATCGTCGG", 10),  # row 1
    ("CCCCTGTTCTTACCCCCGCCACGTCACCACGCTCACAGTGTAAAAGGAATGTTACCGGGGTTGTCTGGTT", 22),  # row 1000
    ("AAGGAGCGTGCCCTGTTTCCTGGCAACGGGGGTCGGCGGAAGATGGCGGCCGGCGAAAAGTGTGCGTGCC", 33),  # row 2000
    ("AGCCCCATGGCACAAGGCCCAGGGTGCGTTCGCATGCGCTGGCGGGTGTGCTTAACGGATTGCCAAGATC", 44),  # row 3000
    ("AGCAGGTTCCCGGCTTCCGGTTCCGCCACGGCCCAGAGGCTGTGTTGAGGCTAATGGCGGTGCCCACGGA", 56),  # row 4000
)


@dataclass(frozen=True)
class MaskedKmer:
    """What the model made of one masked k-mer."""

    position: int
    """1-based, among the sequence's overlapping k-mers."""
    kmers: int
    truth: str
    rank: int
    """1 when the true k-mer is the model's first guess; out of the whole vocabulary."""
    vocabulary: int
    top: tuple[tuple[str, float], ...]
    """The model's best guesses with their probabilities, best first."""


def fill_masked_kmer(tokenizer, model, dna: str, position: int, top: int = TOP) -> MaskedKmer:
    """Mask the k-mer at ``position`` (1-based) of ``dna``'s overlapping k-mers, the others intact, and rank
    the model's guesses for it. ``model`` is a transformers masked LM (anything returning ``.logits``)."""
    k = len(tokenizer.convert_ids_to_tokens(4))  # the first k-mer after the four specials
    kmers = dna_to_kmer_string(dna, k).split()
    if not 1 <= position <= len(kmers):
        raise ValueError(f"position {position} is outside the sequence's {len(kmers)} {k}-mers")
    truth, kmers[position - 1] = kmers[position - 1], tokenizer.mask_token
    batch = tokenizer(" ".join(kmers), return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    where = int((batch["input_ids"][0] == tokenizer.mask_token_id).nonzero()[0, 0])
    probs = torch.softmax(logits[0, where].double(), -1)
    best = probs.topk(top)
    rank = int((probs > probs[tokenizer.convert_tokens_to_ids(truth)]).sum()) + 1
    guesses = tuple((tokenizer.convert_ids_to_tokens(int(i)), float(p))
                    for p, i in zip(best.values.tolist(), best.indices.tolist(), strict=True))
    return MaskedKmer(position, len(kmers), truth, rank, len(probs), guesses)


def describe(result: MaskedKmer) -> str:
    guesses = ", ".join(f"{kmer} {p:.3f}" for kmer, p in result.top)
    return (f"{len(result.truth)}-mer {result.position} of {result.kmers}: true {result.truth} ranked "
            f"{result.rank} of {result.vocabulary}; top {len(result.top)}: {guesses}")


def in_top(results: list[MaskedKmer], top: int = TOP) -> int:
    """How many of ``results`` have the true k-mer among the model's ``top`` guesses."""
    return sum(result.rank <= top for result in results)


def main(model_dir: str) -> int:
    if not (Path(model_dir) / "config.json").is_file():
        print(f"hf_fill_mask.py: error: {model_dir}: no model folder there (no config.json); write one with "
              "genemask-hf export CHECKPOINT DIR", file=sys.stderr)
        return 1
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForMaskedLM.from_pretrained(model_dir, local_files_only=True).eval()
    results = [fill_masked_kmer(tokenizer, model, dna, position) for dna, position in PROBES]
    for number, result in enumerate(results, 1):
        print(f"sequence {number}, {describe(result)}")
    k = len(results[0].truth)
    print(f"true {k}-mer in the top {TOP} at {in_top(results)} of {len(results)} positions")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[2])
    sys.exit(main(sys.argv[1]))
