"""SentencePiece BPE over DNA (DNABERT-2 style), as an alternative to the fixed k-mer vocabulary.

The model is trained on a seeded sample of the genome's chunks, upper-case A/C/G/T, with no whitespace handling
(``add_dummy_prefix=False``, identity normalisation) and no specials except
``<unk>`` at id 0. The fairseq dictionary is the model's pieces in id order, so a
SentencePiece id maps to fairseq id ``id + 3`` (``<unk>`` 0 -> fairseq ``<unk>`` 3).
"""

from __future__ import annotations

import io
import itertools
import os

import numpy as np
import sentencepiece as spm

from genemask_preprocess.corpus.chunking import (
    ChunkingOptions,
    chunk_record,
    record_key,
    splitmix64,
)
from genemask_preprocess.corpus.encoding import chunk_fingerprints
from genemask_preprocess.formats.genome import GenomeSource
from genemask_preprocess.kmers import EOS_ID, encode_bases
from genemask_preprocess.native_paths import native_path

FAIRSEQ_ID_SHIFT = 3
"""fairseq id of SentencePiece id i is i + 3: SentencePiece's <unk> (0) lands on fairseq's <unk> (3)."""


def sample_training_chunks(source: GenomeSource, seed: int, chunking: ChunkingOptions, limit: int) -> list[str]:
    """Training text: the ``limit`` chunks with the smallest seeded fingerprint keys (a bottom-n sample)."""
    keys = np.zeros(0, dtype=np.uint64)
    texts: list[str] = []
    salt = splitmix64(np.array([seed ^ 0x5350], dtype=np.uint64))
    for record in source.records():
        codes = encode_bases(record.sequence)
        chunks = chunk_record(codes, record_key(seed, record.name), chunking)
        if not len(chunks):
            continue
        record_keys = splitmix64(chunk_fingerprints(codes, chunks)[0] ^ salt)
        if len(keys) >= limit:
            candidates = np.flatnonzero(record_keys < keys.max())
        else:
            candidates = np.arange(len(chunks))
        if not len(candidates):
            continue
        new_texts = [
            record.sequence[s : s + n].upper()
            for s, n in zip(chunks.starts[candidates].tolist(), chunks.lengths[candidates].tolist(), strict=True)
        ]
        keys = np.concatenate([keys, record_keys[candidates]])
        texts += new_texts
        if len(keys) > limit:
            order = np.argsort(keys, kind="stable")[:limit]
            keys = keys[order]
            texts = [texts[i] for i in order.tolist()]
    order = np.argsort(keys, kind="stable")
    return [texts[i] for i in order.tolist()]


def train_bpe_model(sentences: list[str], model_path: str | os.PathLike, vocab_size: int, threads: int = 1) -> None:
    """Train a BPE model on DNA sentences and write it to ``model_path`` (plus a ``.vocab`` listing next to it)."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        model_type="bpe",
        vocab_size=vocab_size,
        character_coverage=1.0,
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        bos_id=-1,
        eos_id=-1,
        pad_id=-1,
        unk_id=0,
        max_sentence_length=1 << 20,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        hard_vocab_limit=False,
        num_threads=max(1, threads),
        minloglevel=2,
    )
    with open(model_path, "wb") as handle:
        handle.write(model.getvalue())
    processor = spm.SentencePieceProcessor(model_proto=model.getvalue())
    vocab_path = os.path.splitext(os.fspath(model_path))[0] + ".vocab"
    with open(vocab_path, "w") as handle:
        for i in range(processor.get_piece_size()):
            handle.write(f"{processor.id_to_piece(i)}\t{processor.get_score(i)}\n")


class SentencePieceEncoder:
    """Encodes DNA strings into fairseq token ids with a trained model."""

    def __init__(self, model_path: str | os.PathLike):
        with native_path(model_path) as path:  # sentencepiece takes UTF-8 file names only
            self.processor = spm.SentencePieceProcessor(model_file=path)

    @property
    def pieces(self) -> list[str]:
        """The regular pieces in SentencePiece id order (``<unk>`` excluded): the ``dict.txt`` symbols."""
        return [self.processor.id_to_piece(i) for i in range(1, self.processor.get_piece_size())]

    def encode(self, sequences: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """fairseq token ids of the sequences, each followed by ``</s>``, as ``(flat uint16 tokens, int32 sizes)``."""
        ids = self.processor.encode(sequences, out_type=int)
        sizes = np.fromiter((len(piece_ids) + 1 for piece_ids in ids), dtype=np.int64, count=len(ids))
        flat = np.fromiter(
            itertools.chain.from_iterable(piece_ids + [EOS_ID - FAIRSEQ_ID_SHIFT] for piece_ids in ids),
            dtype=np.int64,
            count=int(sizes.sum()),
        )
        return (flat + FAIRSEQ_ID_SHIFT).astype(np.uint16), sizes.astype(np.int32)
