"""The quick start's last step: load an exported model with transformers alone and predict a masked k-mer.

Usage: python examples/hf_fill_mask.py MODEL_DIR   (a folder written by `genemask-hf export`)

Only transformers and torch are needed to use the model; the k-mer string is built with our
helper, ``genemask_preprocess.kmers.dna_to_kmer_string``.
"""

import sys

import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer

from genemask_preprocess.kmers import dna_to_kmer_string

# A promoter from the bundled Prom-core test set (tests/data/gue_prom_core/test.csv, first row).
DNA = "CCTGGCACCTTTCCCTGGGCAGTAACAGCGAACTGTTCCATCCATCCCGGTAAGGCGTCTAACAGGCACA"


def main(model_dir: str) -> None:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForMaskedLM.from_pretrained(model_dir).eval()
    k = len(tokenizer.convert_ids_to_tokens(4))  # the first k-mer after the four specials
    kmers = dna_to_kmer_string(DNA, k).split()
    middle = len(kmers) // 2
    truth, kmers[middle] = kmers[middle], tokenizer.mask_token
    batch = tokenizer(" ".join(kmers), return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    position = int((batch["input_ids"][0] == tokenizer.mask_token_id).nonzero()[0, 0])
    probs = torch.softmax(logits[0, position], -1)
    top = probs.topk(5)
    guesses = ", ".join(f"{tokenizer.convert_ids_to_tokens(int(i))} {p:.3f}"
                        for p, i in zip(top.values.tolist(), top.indices.tolist(), strict=True))
    rank = int((probs > probs[tokenizer.convert_tokens_to_ids(truth)]).sum()) + 1
    print(f"masked {k}-mer {middle + 1} of {len(kmers)}: true {truth} ranked {rank} of {len(probs)}; "
          f"top 5 by transformers: {guesses}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[2])
    main(sys.argv[1])
