"""Helpers shared by the chunking and encoding tests."""

import numpy as np

from genemask_preprocess.corpus.chunking import ChunkingOptions, chunk_record, record_key
from genemask_preprocess.kmers import encode_bases

PAPER = ChunkingOptions()


def random_dna(n, seed=0):
    return "".join(np.random.default_rng(seed).choice(list("ACGT"), size=n))


def chunk(dna, seed=1, name="chr", options=PAPER, min_bases=1):
    codes = encode_bases(dna)
    return codes, chunk_record(codes, record_key(seed, name), options, min_bases=min_bases)
