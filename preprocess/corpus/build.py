"""Genome -> chunked, deduplicated, train/valid-split, tokenized pretraining corpus on disk.

Data flow (:func:`build_corpus`):

1. The main process streams records with :func:`genemask_preprocess.formats.genome.open_genome`,
   genome after genome, and groups each genome's records into batches of about 1 Mbp (a
   chromosome is a batch of its own).
2. Workers (:func:`genemask_preprocess.parallel_map.parallel_map`) chunk each batch
   (:mod:`~genemask_preprocess.corpus.chunking`), fingerprint the chunks, assign the split
   from the fingerprint (:mod:`~genemask_preprocess.corpus.fingerprints`), and tokenize:
   k-mer ids by array operations (:mod:`~genemask_preprocess.corpus.encoding`), or SentencePiece.
   A genome given a ``--sample`` fraction keeps each chunk with that probability
   (:func:`~genemask_preprocess.corpus.chunking.sample_chunks`, counter-based like the chunking).
3. The main process drops exact duplicates across all genomes (:class:`~genemask_preprocess.corpus.dedup.FingerprintSet`)
   and appends the rest to the train/valid writers.

Every random choice is a function of ``(seed, record name)`` or of the chunk's
fingerprint, so the output does not depend on the number of workers. Everything is
written into an :func:`~genemask_preprocess.atomic_output.atomic_directory` and moved
into place only when complete, ``preprocess.json`` last.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from genemask_preprocess.atomic_output import atomic_directory
from genemask_preprocess.corpus.chunking import (
    ChunkingOptions,
    Chunks,
    chunk_records,
    record_key,
    sample_chunks,
)
from genemask_preprocess.corpus.dedup import FingerprintSet
from genemask_preprocess.corpus.encoding import encode_chunks
from genemask_preprocess.corpus.fingerprints import valid_split_mask
from genemask_preprocess.corpus.summary import (
    CorpusSummary,
    RecordStats,
    RecordTally,
    describe_skipped,
)
from genemask_preprocess.corpus.text_corpus import TextCorpusWriter
from genemask_preprocess.errors import InputError
from genemask_preprocess.formats.fairseq_dictionary import write_dictionary, write_kmer_dictionary
from genemask_preprocess.formats.genome import GenomeSource, open_genome
from genemask_preprocess.formats.indexed_dataset import IndexedDatasetWriter
from genemask_preprocess.formats.input_file import require_regular_file
from genemask_preprocess.kmers import (
    FAIRSEQ_SPECIALS,
    INVALID,
    KmerTokenization,
    check_k,
    decode_bases,
    encode_bases,
    reverse_complement_dna,
)
from genemask_preprocess.parallel_map import parallel_map

SPLITS = ("train", "valid")
OUTPUT_FILES = (
    "train.bin", "train.idx", "valid.bin", "valid.idx", "train.txt", "valid.txt",
    "dict.txt", "spm.model", "spm.vocab", "preprocess.json",
)
"""Every name this command may write; ``--force`` replaces exactly these and keeps any other file."""

_BATCH_BASES = 1 << 20
_SPOOL_BYTES = 1 << 23


class PreprocessError(InputError):
    """Bad options, or a genome with nothing usable in it."""


@dataclass
class CorpusConfig:
    genome: str | list[str]
    """One genome, or several made into one corpus (deduplicated across all of them)."""
    out_dir: str
    k: int | None = 6
    tokenizer: str = "kmer"  # "kmer" or "sentencepiece"
    stride: int = 1
    """k-mers: 1 (overlapping) or k (non-overlapping, remainder as single bases: the Nucleotide Transformer)."""
    output_format: str = "binary"  # "binary" or "text"
    seed: int = 1
    valid_fraction: float = 0.1
    reverse_complement: bool = False
    workers: int = 1
    force: bool = False
    chunking: ChunkingOptions = field(default_factory=ChunkingOptions)
    sp_vocab_size: int = 4096
    sp_training_chunks: int = 20000
    sample: dict[str, float] = field(default_factory=dict)
    """Genome (as given, or its file name) -> fraction of its chunks to keep; the others keep all."""

    @property
    def genomes(self) -> list[str]:
        return [self.genome] if isinstance(self.genome, (str, os.PathLike)) else list(self.genome)

    def sample_fractions(self) -> list[float]:
        """The fraction of chunks each genome keeps, in order; raises on a ``--sample`` that names no genome."""
        fractions = [1.0] * len(self.genomes)
        for name, fraction in self.sample.items():
            matches = [i for i, g in enumerate(self.genomes) if os.fspath(g) == name]
            matches = matches or [i for i, g in enumerate(self.genomes) if os.path.basename(os.fspath(g)) == name]
            if len(matches) != 1:
                what = "is not one of the genomes given" if not matches else "names several genomes; give its path"
                raise PreprocessError(f"--sample {name}={fraction}: {name} {what}")
            if not 0.0 < fraction <= 1.0:
                raise PreprocessError(f"--sample {name}={fraction}: the fraction must be in (0, 1]")
            fractions[matches[0]] = float(fraction)
        return fractions

    def validate(self) -> None:
        if not self.genomes:
            raise PreprocessError("no genome given")
        self.sample_fractions()
        if self.tokenizer not in ("kmer", "sentencepiece"):
            raise PreprocessError(f"unknown tokenizer {self.tokenizer!r}")
        if self.output_format not in ("binary", "text"):
            raise PreprocessError(f"unknown output format {self.output_format!r}")
        if self.tokenizer == "kmer":
            if self.k is None:
                raise PreprocessError("--k is required with the k-mer tokenizer")
            try:
                check_k(self.k)
            except ValueError as err:
                raise PreprocessError(str(err)) from None
            if self.stride not in (1, self.k):
                raise PreprocessError(f"--stride must be 1 (overlapping k-mers) or --k {self.k} (non-overlapping "
                                      f"{self.k}-mers), got {self.stride}")
        elif self.k is not None:
            raise PreprocessError("--k applies to the k-mer tokenizer only; leave it out with sentencepiece")
        elif self.stride != 1:
            raise PreprocessError("--stride applies to the k-mer tokenizer only; leave it out with sentencepiece")
        if not 0.0 <= self.valid_fraction < 1.0:
            raise PreprocessError(f"--valid-fraction must be in [0, 1), got {self.valid_fraction}")
        if self.workers < 1:
            raise PreprocessError(f"--workers must be >= 1, got {self.workers}")
        if not 8 <= self.sp_vocab_size <= 65000:
            raise PreprocessError(f"--sp-vocab-size must be in 8..65000, got {self.sp_vocab_size}")
        if self.sp_training_chunks < 1:
            raise PreprocessError(f"--sp-training-chunks must be >= 1, got {self.sp_training_chunks}")
        if self.chunking.length > 65536:
            raise PreprocessError("--chunk-length must be at most 65536")


# --- per-batch work (runs in the workers) ---------------------------------------------------


@dataclass
class BatchResult:
    """One batch of records: per-record stats plus all their items (forward chunks, then reverse complements)."""

    records: list[RecordStats]
    keys: np.ndarray  # uint64 fingerprint per item (dedup key)
    valid: np.ndarray  # bool per item
    tokens: np.ndarray | None  # flat uint16, each item ends with </s> (None while spooled to a file)
    sizes: np.ndarray  # int32 per item
    tokens_file: str | None = None  # large results travel through a file, not a pickle
    genome: int = 0  # index of the genome the records come from
    sampled_out: tuple[int, int] = (0, 0)  # chunks and bases --sample dropped


class _Worker:
    """Per-process state: the config and, for SentencePiece, the loaded model."""

    def __init__(self, config: CorpusConfig, sp_model: str | None):
        self.config = config
        self.sp = None
        if sp_model is not None:
            from genemask_preprocess.corpus.sentencepiece_tokenizer import SentencePieceEncoder

            self.sp = SentencePieceEncoder(sp_model)

    def process(self, batch: list[tuple[str, str]], fraction: float = 1.0) -> BatchResult:
        """Chunk, fingerprint, split and tokenize a batch of records with array operations over all of them.

        ``fraction`` < 1 keeps each chunk with that probability (``--sample``).
        """
        config = self.config
        min_bases = config.k or 1
        names = [name for name, _ in batch]
        record_lengths = np.array([len(sequence) for _, sequence in batch], dtype=np.int64)
        codes = encode_bases(batch[0][1] if len(batch) == 1 else "".join(sequence for _, sequence in batch))
        record_starts = np.cumsum(record_lengths) - record_lengths
        if len(batch) == 1:
            acgt = np.array([np.count_nonzero(codes != INVALID)])
        else:  # batches of several records are small (see _record_batches)
            acgt_before = np.concatenate([[0], np.cumsum(codes != INVALID, dtype=np.int64)])
            acgt = acgt_before[record_starts + record_lengths] - acgt_before[record_starts]
        keys = np.array([record_key(config.seed, name) for name in names], dtype=np.uint64)
        chunks, record_of_chunk = chunk_records(codes, record_starts, keys, config.chunking, min_bases)
        had_chunks = np.bincount(record_of_chunk, minlength=len(batch)) > 0
        sampled_out = (0, 0)
        if fraction < 1.0:
            kept = sample_chunks(keys, record_of_chunk, fraction)
            sampled_out = (int(np.count_nonzero(~kept)), int(chunks.lengths[~kept].sum()))
            chunks, record_of_chunk = Chunks(chunks.starts[kept], chunks.lengths[kept]), record_of_chunk[kept]
        chunked = np.bincount(record_of_chunk, weights=chunks.lengths, minlength=len(batch)).astype(np.int64)
        stats = []
        for i, name in enumerate(names):
            skipped = None
            if record_lengths[i] < min_bases:
                skipped = "shorter_than_k"
            elif acgt[i] == 0:
                skipped = "all_n"
            elif not had_chunks[i]:
                skipped = "no_chunk"
            stats.append(RecordStats(name, int(record_lengths[i]), int(acgt[i]), int(chunked[i]), skipped))
        if not len(chunks):
            empty = np.zeros(0, dtype=np.uint64)
            return BatchResult(stats, empty, empty.astype(bool), empty.astype(np.uint16), empty.astype(np.int32),
                               sampled_out=sampled_out)
        k = None if self.sp is not None else config.k
        forward, reverse, tokens, sizes = encode_chunks(codes, chunks, k, config.reverse_complement, config.stride)
        valid = valid_split_mask(np.minimum(forward, reverse), config.seed, config.valid_fraction)
        if self.sp is not None:
            letters = decode_bases(codes)
            texts = [letters[s : s + n] for s, n in zip(chunks.starts.tolist(), chunks.lengths.tolist(), strict=True)]
            if config.reverse_complement:
                texts += [reverse_complement_dna(text) for text in texts]
            tokens, sizes = self.sp.encode(texts)
        keys = forward
        if config.reverse_complement:
            keys = np.concatenate([forward, reverse])
            valid = np.concatenate([valid, valid])  # a chunk and its reverse complement share a split
        return BatchResult(stats, keys, valid, tokens, sizes, sampled_out=sampled_out)


_WORKER: _Worker | None = None
_SPOOL_DIR: str | None = None
_spooled = 0


def _init_worker(config: CorpusConfig, sp_model: str | None, spool_dir: str | None) -> None:
    global _WORKER, _SPOOL_DIR, _spooled
    _WORKER = _Worker(config, sp_model)
    _SPOOL_DIR, _spooled = spool_dir, 0


def _process_batch(item: tuple[int, float, list[tuple[str, str]]]) -> BatchResult:
    global _spooled
    genome, fraction, batch = item
    result = _WORKER.process(batch, fraction)
    result.genome = genome
    if _SPOOL_DIR is not None and result.tokens.nbytes >= _SPOOL_BYTES:
        # Pickling a chromosome's tokens would copy them three times; the page cache copies them once.
        _spooled += 1
        path = os.path.join(_SPOOL_DIR, f"tokens-{os.getpid()}-{_spooled}.u16")
        result.tokens.tofile(path)
        result.tokens, result.tokens_file = None, path
    return result


def _record_batches(records: Iterable) -> Iterator[list[tuple[str, str]]]:
    """Small records grouped up to ``_BATCH_BASES``; a record at least that long is a batch of its own."""
    batch, bases = [], 0
    for record in records:
        if len(record.sequence) >= _BATCH_BASES:
            if batch:
                yield batch
                batch, bases = [], 0
            yield [(record.name, record.sequence)]
            continue
        batch.append((record.name, record.sequence))
        bases += len(record.sequence)
        if bases >= _BATCH_BASES:
            yield batch
            batch, bases = [], 0
    if batch:
        yield batch


def _unspool(result: BatchResult) -> BatchResult:
    if result.tokens_file is not None:
        result.tokens = np.memmap(result.tokens_file, dtype=np.uint16, mode="r")
        os.remove(result.tokens_file)  # the mapping keeps the data until it is dropped
        result.tokens_file = None
    return result


# --- the whole run (main process) -----------------------------------------------------------


def build_corpus(
    config: CorpusConfig, progress: Callable[[int | None], Callable[[int], None]] | None = None
) -> CorpusSummary:
    """Run the whole preprocessing into ``config.out_dir``.

    Options, genome and output folder are checked once, first; then ``progress(total_bases)``
    (``None`` if unknown) is called once and returns the callback to which the bases of
    each finished batch are passed. Raises :class:`PreprocessError`,
    :class:`~genemask_preprocess.formats.genome.GenomeInputError` or
    :class:`~genemask_preprocess.errors.OutputError` with one-line messages.
    """
    started = time.perf_counter()
    config.validate()
    if config.tokenizer == "sentencepiece":
        for genome in config.genomes:
            require_regular_file(genome, "--tokenizer sentencepiece reads each genome twice (to train the "
                                         "tokenizer on a sample, then to encode it)")
    sources = [open_genome(genome) for genome in config.genomes]
    totals = [source.total_bases for source in sources]
    with atomic_directory(config.out_dir, force=config.force, owned=OUTPUT_FILES) as tmp_dir:
        update = progress(None if None in totals else sum(totals)) if progress is not None else None
        return _build_into(config, sources, tmp_dir, update, started)


@dataclass
class _Genomes:
    """Several genome sources read as one (what SentencePiece training samples from)."""

    sources: list[GenomeSource]

    def records(self) -> Iterator:
        for source in self.sources:
            yield from source.records()


def _prepare_vocabulary(
    config: CorpusConfig, source, tmp_dir: Path, warnings: list[str]
) -> tuple[list[str], str | None]:
    """Write ``dict.txt`` (and, for SentencePiece, train ``spm.model``); return the symbols and the model path."""
    if config.tokenizer == "kmer":
        write_kmer_dictionary(tmp_dir / "dict.txt", config.k, config.stride)
        return [*FAIRSEQ_SPECIALS, *KmerTokenization(config.k, config.stride).symbols], None
    from genemask_preprocess.corpus.sentencepiece_tokenizer import (
        SentencePieceEncoder,
        sample_training_chunks,
        train_bpe_model,
    )

    sentences = sample_training_chunks(source, config.seed, config.chunking, config.sp_training_chunks)
    if not sentences:
        raise PreprocessError(f"{', '.join(map(os.fspath, config.genomes))}: no chunk to train SentencePiece on")
    sp_model = str(tmp_dir / "spm.model")
    try:
        train_bpe_model(sentences, sp_model, config.sp_vocab_size, threads=config.workers)
    except RuntimeError as err:
        raise PreprocessError(f"SentencePiece training failed: {str(err).splitlines()[0]}") from None
    encoder = SentencePieceEncoder(sp_model)
    write_dictionary(tmp_dir / "dict.txt", encoder.pieces)
    learned = encoder.processor.get_piece_size()
    if learned < config.sp_vocab_size:  # sentencepiece stops early when the data has no more merges
        warnings.append(
            f"--sp-vocab-size {config.sp_vocab_size} is more than these {len(sentences)} training chunks "
            f"allow: the vocabulary has {learned} pieces"
        )
    return [*FAIRSEQ_SPECIALS, *encoder.pieces], sp_model


def _build_into(
    config: CorpusConfig, sources: list[GenomeSource], tmp_dir: Path, progress, started: float
) -> CorpusSummary:
    warnings: list[str] = []
    source = sources[0] if len(sources) == 1 else _Genomes(sources)
    symbols, sp_model = _prepare_vocabulary(config, source, tmp_dir, warnings)
    fractions = config.sample_fractions()
    splits = SPLITS if config.valid_fraction > 0 else ("train",)
    if config.output_format == "binary":
        writers = {s: IndexedDatasetWriter(tmp_dir / s, dtype=np.uint16) for s in splits}
    else:
        writers = {s: TextCorpusWriter(tmp_dir / f"{s}.txt", symbols) for s in splits}

    seen = FingerprintSet()
    tally = RecordTally()
    duplicates = 0
    per_genome = [_GenomeTally(splits) for _ in sources]

    def work() -> Iterator[tuple[int, float, list[tuple[str, str]]]]:
        for index, source in enumerate(sources):  # a batch never mixes genomes
            for batch in _record_batches(source.records()):
                yield index, fractions[index], batch

    with contextlib.ExitStack() as stack:
        for writer in writers.values():
            stack.enter_context(writer)
        spool_dir = str(tmp_dir) if config.workers > 1 else None  # spooled files are gone before the commit
        results = parallel_map(
            _process_batch, work(), config.workers,
            initializer=_init_worker, initargs=(config, sp_model, spool_dir), max_pending=config.workers + 1,
        )
        for result in results:
            if spool_dir is not None:
                result = _unspool(result)
            genome = per_genome[result.genome]
            for record in result.records:
                tally.add(record)
                genome.records.add(record)
            dropped = _write_result(result, seen, writers, genome.splits)
            duplicates += dropped
            genome.duplicates += dropped
            genome.sampled_out = [a + b for a, b in zip(genome.sampled_out, result.sampled_out, strict=True)]
            if progress:
                progress(sum(record.bases for record in result.records))

    if tally.used == 0:
        raise PreprocessError(
            f"{', '.join(map(os.fspath, config.genomes))}: no usable sequence: all {tally.total} records were skipped "
            f"({describe_skipped(tally.skipped)})"
        )
    if config.valid_fraction > 0 and writers["valid"].num_items == 0:
        warnings.append("the valid split is empty (genome too small for --valid-fraction); fairseq cannot load it")
    for source, genome in zip(sources, per_genome, strict=True):
        if len(sources) > 1 and genome.records.used == 0:
            warnings.append(f"{source.path}: no usable sequence ({describe_skipped(genome.records.skipped)})")
    paths = [os.path.abspath(source.path) for source in sources]
    summary = CorpusSummary(
        source=paths[0] if len(paths) == 1 else paths,
        source_format=sources[0].format if len(sources) == 1 else [source.format for source in sources],
        tokenizer=config.tokenizer,
        k=config.k,
        stride=config.stride if config.tokenizer == "kmer" else None,
        seed=config.seed,
        valid_fraction=config.valid_fraction,
        reverse_complement=config.reverse_complement,
        output_format=config.output_format,
        chunking=asdict(config.chunking),
        records=tally.records(),
        bases=dict(tally.bases),
        duplicates_removed=duplicates,
        splits={s: {"chunks": w.num_items, "tokens": w.num_tokens} for s, w in writers.items()},
        files=sorted(p.name for p in tmp_dir.iterdir()) + ["preprocess.json"],
        seconds=round(time.perf_counter() - started, 3),
        warnings=warnings,
        genomes=[
            genome.summary(path, source.format, fraction)
            for path, source, genome, fraction in zip(paths, sources, per_genome, fractions, strict=True)
        ],
    )
    (tmp_dir / "preprocess.json").write_text(summary.to_json())
    return summary


@dataclass
class _GenomeTally:
    """One genome's share of the corpus (its entry in ``preprocess.json``'s ``genomes``)."""

    split_names: tuple
    records: RecordTally = field(default_factory=RecordTally)
    duplicates: int = 0
    sampled_out: list = field(default_factory=lambda: [0, 0])
    splits: dict = field(default_factory=dict)

    def __post_init__(self):
        self.splits = {s: {"chunks": 0, "tokens": 0} for s in self.split_names}

    def summary(self, path: str, source_format: str, fraction: float) -> dict:
        return {
            "source": path,
            "source_format": source_format,
            "sample_fraction": fraction,
            "records": self.records.records(),
            "bases": dict(self.records.bases),
            "sampled_out": {"chunks": self.sampled_out[0], "bases": self.sampled_out[1]},
            "duplicates_removed": self.duplicates,
            "splits": self.splits,
        }


def _write_result(result: BatchResult, seen: FingerprintSet, writers: dict, counts: dict | None = None) -> int:
    """Append a batch's new items to the split writers (adding to ``counts[split]``); returns the duplicates dropped."""
    keep = seen.first_seen(result.keys)
    duplicates = int(len(keep) - np.count_nonzero(keep))
    for split, writer in writers.items():
        chosen = keep & (result.valid if split == "valid" else ~result.valid)
        if counts is not None:
            counts[split]["chunks"] += int(np.count_nonzero(chosen))
            counts[split]["tokens"] += int(result.sizes[chosen].sum())
        if chosen.all():
            writer.add_many(result.tokens, result.sizes)
        elif chosen.any():
            writer.add_chosen(result.tokens, result.sizes, chosen)
    return duplicates
