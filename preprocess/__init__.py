"""Genome-side tools: FASTA -> k-mer corpora -> fairseq binarized data, n-gram counts and PMI tables.

Pure numpy/pysam; nothing here imports fairseq.
"""
