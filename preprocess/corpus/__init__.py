"""The corpus stage, genome -> fairseq pretraining corpus: a FASTA or TSV genome is chunked as
GeneMask does (:mod:`.chunking`), each chunk is fingerprinted (:mod:`.fingerprints`) so exact
duplicates are dropped (:mod:`.dedup`) and the train/valid split is seeded, the chunks are
tokenized into fixed k-mer ids (:mod:`.encoding`) or SentencePiece pieces
(:mod:`.sentencepiece_tokenizer`), and written as fairseq's binarized data or as text
(:mod:`.text_corpus`), with a ``preprocess.json`` summary (:mod:`.summary`). :mod:`.build`
runs the pipeline on worker processes and :mod:`.cli` is ``genemask-preprocess``.
"""
