"""Genome -> chunked, deduplicated, train/valid-split, tokenized pretraining corpus on disk.

Data flow (``build_corpus``):

1. The main process streams records with :func:`preprocess.genome_reader.open_genome`
   and groups them into batches of about 1 Mbp (a chromosome is a batch of its own).
2. Workers (a ``multiprocessing`` pool, ordered results, a bounded number of batches
   in flight) chunk each record (:mod:`preprocess.chunking`), fingerprint the chunks,
   assign the split from the fingerprint, and tokenize: k-mer ids by array
   operations, or SentencePiece.
3. The main process drops exact duplicates (a set of 64-bit fingerprints kept as
   sorted numpy arrays) and appends the rest to the train/valid writers.

Every random choice is a function of ``(seed, record name)`` or of the chunk's
fingerprint, so the output does not depend on the number of workers. Everything
is written into a temporary directory next to the output and moved into place
only when complete.
"""

from __future__ import annotations

import collections
import json
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field

import numpy as np

from preprocess.binarize import IndexedDatasetWriter
from preprocess.chunking import (
    ChunkingOptions,
    chunk_fingerprints,
    chunk_record,
    chunk_records,
    encode_chunks,
    record_key,
    reverse_complement_dna,
    splitmix64,
    valid_split_mask,
)
from preprocess.genome_reader import GenomeInputError, open_genome
from preprocess.kmers import INVALID, all_kmers, check_k, encode_bases, write_kmer_dictionary

SPLITS = ("train", "valid")
SKIP_REASONS = {
    "shorter_than_k": "shorter than k",
    "all_n": "no A/C/G/T base (all N)",
    "no_chunk": "no A/C/G/T run long enough for a chunk",
}
OUTPUT_PATTERNS = ("train.", "valid.", "dict.txt", "preprocess.json", "spm.model", "spm.vocab")
"""Names (prefixes) of the files this tool writes; ``--force`` replaces only these."""

_BATCH_BASES = 1 << 20
_SPOOL_BYTES = 1 << 23
_MAX_SKIP_EXAMPLES = 10


class PreprocessError(Exception):
    """A user-facing failure (bad options, output directory, nothing left); one-line message."""


@dataclass
class CorpusConfig:
    genome: str
    out_dir: str
    k: int | None = 6
    tokenizer: str = "kmer"  # "kmer" or "sentencepiece"
    output_format: str = "binary"  # "binary" or "text"
    seed: int = 1
    valid_fraction: float = 0.1
    reverse_complement: bool = False
    workers: int = 1
    force: bool = False
    chunking: ChunkingOptions = field(default_factory=ChunkingOptions)
    sp_vocab_size: int = 4096
    sp_training_chunks: int = 20000

    def validate(self) -> None:
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
        elif self.k is not None:
            raise PreprocessError("--k applies to the k-mer tokenizer only; leave it out with sentencepiece")
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


# --- per-record work (runs in the workers) --------------------------------------------------


@dataclass
class RecordStats:
    name: str
    bases: int
    acgt_bases: int = 0
    chunked_bases: int = 0
    skipped: str | None = None


@dataclass
class BatchResult:
    """One batch of records: per-record stats plus all their items (forward chunks, then reverse complements)."""

    records: list[RecordStats]
    keys: np.ndarray  # uint64 fingerprint per item (dedup key)
    valid: np.ndarray  # bool per item
    tokens: np.ndarray | None  # flat uint16, each item ends with </s> (None while spooled to a file)
    sizes: np.ndarray  # int32 per item
    tokens_file: str | None = None  # large results travel through a file, not a pickle


class _Worker:
    """Per-process state: the config and, for SentencePiece, the loaded model."""

    def __init__(self, config: CorpusConfig, sp_model: str | None):
        self.config = config
        self.sp = None
        if sp_model is not None:
            from preprocess.sentencepiece_tokenizer import SentencePieceEncoder

            self.sp = SentencePieceEncoder(sp_model)

    def process(self, batch: list[tuple[str, str]]) -> BatchResult:
        """Chunk, fingerprint, split and tokenize a batch of records with array operations over all of them."""
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
        chunked = np.bincount(record_of_chunk, weights=chunks.lengths, minlength=len(batch)).astype(np.int64)
        n_chunks = np.bincount(record_of_chunk, minlength=len(batch))
        stats = []
        for i, name in enumerate(names):
            skipped = None
            if record_lengths[i] < min_bases:
                skipped = "shorter_than_k"
            elif acgt[i] == 0:
                skipped = "all_n"
            elif n_chunks[i] == 0:
                skipped = "no_chunk"
            stats.append(RecordStats(name, int(record_lengths[i]), int(acgt[i]), int(chunked[i]), skipped))
        if not len(chunks):
            empty = np.zeros(0, dtype=np.uint64)
            return BatchResult(stats, empty, empty.astype(bool), empty.astype(np.uint16), empty.astype(np.int32))
        k = None if self.sp is not None else config.k
        forward, reverse, tokens, sizes = encode_chunks(codes, chunks, k, config.reverse_complement)
        valid = valid_split_mask(np.minimum(forward, reverse), config.seed, config.valid_fraction)
        if self.sp is not None:
            letters = np.frombuffer(b"ACGTN", dtype=np.uint8)[codes].tobytes().decode("ascii")
            texts = [letters[s : s + n] for s, n in zip(chunks.starts.tolist(), chunks.lengths.tolist(), strict=True)]
            if config.reverse_complement:
                texts += [reverse_complement_dna(text) for text in texts]
            tokens, sizes = self.sp.encode(texts)
        keys = forward
        if config.reverse_complement:
            keys = np.concatenate([forward, reverse])
            valid = np.concatenate([valid, valid])  # a chunk and its reverse complement share a split
        return BatchResult(stats, keys, valid, tokens, sizes)


_WORKER: _Worker | None = None
_SPOOL: dict = {}


def _init_worker(config: CorpusConfig, sp_model: str | None, spool_dir: str | None = None) -> None:
    global _WORKER
    if spool_dir is not None:  # a pool worker: Ctrl-C is the main process's to handle (it cleans up)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER = _Worker(config, sp_model)
    _SPOOL.update(dir=spool_dir, count=0)


def _process_batch(batch: list[tuple[str, str]]) -> BatchResult:
    result = _WORKER.process(batch)
    if _SPOOL["dir"] is not None and result.tokens.nbytes >= _SPOOL_BYTES:
        # Pickling a chromosome's tokens would copy them three times; the page cache copies them once.
        _SPOOL["count"] += 1
        path = os.path.join(_SPOOL["dir"], f"tokens-{os.getpid()}-{_SPOOL['count']}.u16")
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


def _run_ordered(batches: Iterator, workers: int, init_args: tuple) -> Iterator[BatchResult]:
    """Results of ``_process_batch`` in input order; at most ``workers + 1`` batches in flight.

    Batches are read in this (the main) thread, so reader errors surface here as
    they would without a pool.
    """
    if workers == 1:
        _init_worker(*init_args[:2])
        for batch in batches:
            yield _process_batch(batch)
        return
    pool = multiprocessing.Pool(workers, initializer=_init_worker, initargs=init_args)
    try:
        pending = collections.deque()
        for batch in batches:
            if len(pending) > workers:
                yield _unspool(pending.popleft().get())
            pending.append(pool.apply_async(_process_batch, (batch,)))
        while pending:
            yield _unspool(pending.popleft().get())
        pool.close()
        pool.join()
    finally:
        pool.terminate()


def _unspool(result: BatchResult) -> BatchResult:
    if result.tokens_file is not None:
        result.tokens = np.memmap(result.tokens_file, dtype=np.uint16, mode="r")
        os.remove(result.tokens_file)  # the mapping keeps the data until it is dropped
        result.tokens_file = None
    return result


# --- deduplication (main process) ------------------------------------------------------------


class FingerprintSet:
    """A set of uint64 fingerprints as a few sorted arrays of geometrically growing size (8 bytes each)."""

    def __init__(self):
        self._levels: list[np.ndarray] = []

    def __len__(self) -> int:
        return sum(len(level) for level in self._levels)

    def first_seen(self, keys: np.ndarray) -> np.ndarray:
        """Mask of the keys not seen before (only the first of equal keys in ``keys``); adds them."""
        unique, first = np.unique(keys, return_index=True)
        fresh = np.ones(len(unique), dtype=bool)
        for level in self._levels:
            at = np.searchsorted(level, unique)
            fresh &= level[np.minimum(at, len(level) - 1)] != unique
        keep = np.zeros(len(keys), dtype=bool)
        keep[first[fresh]] = True
        self._insert(unique[fresh])
        return keep

    def _insert(self, sorted_keys: np.ndarray) -> None:
        if not len(sorted_keys):
            return
        self._levels.append(sorted_keys)
        while len(self._levels) > 1 and len(self._levels[-2]) <= 2 * len(self._levels[-1]):
            top = self._levels.pop()
            # Two sorted runs: the stable sort (timsort) merges them in linear time.
            self._levels[-1] = np.sort(np.concatenate([self._levels[-1], top]), kind="stable")


# --- output writers ---------------------------------------------------------------------------


class TextCorpusWriter:
    """Writes items as lines of space-separated symbols, the input ``fairseq-preprocess`` expects."""

    def __init__(self, path: str, symbols: list[str]):
        self.path = path
        encoded = [symbol.encode("utf-8") for symbol in symbols]
        lengths = np.array([len(s) for s in encoded], dtype=np.int64)
        self._symbol_bytes = np.frombuffer(b"".join(encoded) + b" ", dtype=np.uint8)
        self._symbol_starts = np.cumsum(lengths) - lengths
        self._symbol_lengths = lengths
        self.num_items = 0
        self.num_tokens = 0
        self._handle = None

    def __enter__(self) -> TextCorpusWriter:
        self._handle = open(self.path, "wb")
        return self

    def __exit__(self, *exc) -> None:
        self._handle.close()

    def add_many(self, tokens: np.ndarray, sizes: np.ndarray) -> None:
        """Append items given as flat fairseq ids (each ending with ``</s>``, which is not written)."""
        sizes = np.asarray(sizes, dtype=np.int64)
        item_ends = np.cumsum(sizes)
        first = 0
        while first < len(sizes):  # blocks of about 1 M tokens bound the temporary text arrays
            lo = int(item_ends[first - 1]) if first else 0
            end = max(first + 1, int(np.searchsorted(item_ends, lo + (1 << 20), side="right")))
            self._write_block(tokens[lo : int(item_ends[end - 1])], sizes[first:end])
            first = end
        self.num_items += len(sizes)
        self.num_tokens += int(sizes.sum())

    def _write_block(self, tokens: np.ndarray, sizes: np.ndarray) -> None:
        ends = np.cumsum(sizes) - 1  # the </s> of each item
        is_content = np.ones(len(tokens), dtype=bool)
        is_content[ends] = False
        content = tokens[is_content].astype(np.int64)
        widths = self._symbol_lengths[content] + 1  # symbol + separator
        out_starts = np.cumsum(widths) - widths
        source = np.repeat(self._symbol_starts[content] - out_starts, widths) + np.arange(int(widths.sum()))
        text = self._symbol_bytes[np.minimum(source, len(self._symbol_bytes) - 1)]
        text[out_starts + widths - 1] = ord(" ")
        last_of_item = np.cumsum(sizes - 1) - 1
        text[(out_starts + widths - 1)[last_of_item]] = ord("\n")
        self._handle.write(text.tobytes())

    def add_chosen(self, tokens: np.ndarray, sizes: np.ndarray, chosen: np.ndarray) -> None:
        """Append the items where ``chosen`` is True."""
        self.add_many(tokens[np.repeat(chosen, sizes)], sizes[chosen])


# --- the whole run ----------------------------------------------------------------------------


@dataclass
class CorpusSummary:
    source: str
    source_format: str
    tokenizer: str
    k: int | None
    seed: int
    valid_fraction: float
    reverse_complement: bool
    output_format: str
    chunking: dict
    records: dict
    bases: dict
    duplicates_removed: int
    splits: dict
    files: list
    seconds: float
    warnings: list

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    def one_line(self) -> str:
        train, valid = self.splits["train"], self.splits.get("valid", {"chunks": 0, "tokens": 0})
        skipped = self.records["skipped"]
        skip_text = ", ".join(f"{v['count']} {SKIP_REASONS[k]}" for k, v in skipped.items() if v["count"])
        return (
            f"{self.records['used']} records -> train {train['chunks']} chunks / {train['tokens']} tokens, "
            f"valid {valid['chunks']} chunks / {valid['tokens']} tokens; "
            f"{self.duplicates_removed} duplicates removed; "
            f"skipped {self.records['skipped_total']} records" + (f" ({skip_text})" if skip_text else "")
            + f"; {self.bases['total'] / 1e6:.2f} Mbp in {self.seconds:.1f} s"
        )


def check_output_dir(out_dir: str, force: bool) -> None:
    """Refuse an output path that is a file, or a directory already holding data (unless ``force``)."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise PreprocessError(f"{out_dir}: exists and is not a directory")
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not force:
        raise PreprocessError(f"{out_dir}: already holds data; pass --force to overwrite")


def _commit_output(tmp_dir: str, out_dir: str) -> None:
    """Move the finished files into ``out_dir``: one directory rename if it is new or empty."""
    if not os.path.exists(out_dir):
        os.rename(tmp_dir, out_dir)
        return
    if not os.listdir(out_dir):
        os.rmdir(out_dir)
        os.rename(tmp_dir, out_dir)
        return
    # --force on a directory with data: replace only our own files, the JSON last as the completion mark.
    for name in os.listdir(out_dir):
        if name.startswith(OUTPUT_PATTERNS) and os.path.isfile(os.path.join(out_dir, name)):
            os.remove(os.path.join(out_dir, name))
    names = sorted(os.listdir(tmp_dir), key=lambda name: name == "preprocess.json")
    for name in names:
        os.replace(os.path.join(tmp_dir, name), os.path.join(out_dir, name))
    os.rmdir(tmp_dir)


def _sample_training_chunks(config: CorpusConfig, progress: Callable[[int], None] | None) -> list[str]:
    """SentencePiece training text: the chunks with the smallest seeded fingerprint keys (a bottom-n sample)."""
    source = open_genome(config.genome)
    keys = np.zeros(0, dtype=np.uint64)
    texts: list[str] = []
    salt = splitmix64(np.array([config.seed ^ 0x5350], dtype=np.uint64))
    limit = config.sp_training_chunks
    for record in source.records():
        if progress:
            progress(len(record.sequence))
        codes = encode_bases(record.sequence)
        chunks = chunk_record(codes, record_key(config.seed, record.name), config.chunking)
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


def build_corpus(config: CorpusConfig, progress: Callable[[int], None] | None = None) -> CorpusSummary:
    """Run the whole preprocessing; ``progress(bases)`` is called as records finish.

    Raises :class:`GenomeInputError` or :class:`PreprocessError` with one-line messages.
    """
    started = time.perf_counter()
    config.validate()
    source = open_genome(config.genome)
    out_dir = os.path.abspath(config.out_dir)
    check_output_dir(out_dir, config.force)
    parent = os.path.dirname(out_dir)
    try:
        os.makedirs(parent, exist_ok=True)
        tmp_dir = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.tmp-", dir=parent)
    except OSError as err:
        raise PreprocessError(f"{out_dir}: cannot create output: {err.strerror or err}") from None
    try:
        summary = _build_into(config, source, tmp_dir, progress, started)
        check_output_dir(out_dir, config.force)  # it may have appeared while we worked
        _commit_output(tmp_dir, out_dir)
        return summary
    except OSError as err:
        raise PreprocessError(f"{out_dir}: cannot write output: {err}") from None
    finally:
        if os.path.isdir(tmp_dir):
            shutil.rmtree(tmp_dir, ignore_errors=True)


def _build_into(config, source, tmp_dir, progress, started) -> CorpusSummary:
    sp_model = None
    if config.tokenizer == "sentencepiece":
        from preprocess.sentencepiece_tokenizer import SentencePieceEncoder, train_bpe_model

        sentences = _sample_training_chunks(config, None)
        if not sentences:
            raise PreprocessError(f"{config.genome}: no chunk to train SentencePiece on")
        sp_model = os.path.join(tmp_dir, "spm.model")
        try:
            train_bpe_model(sentences, sp_model, config.sp_vocab_size, threads=config.workers)
        except RuntimeError as err:
            raise PreprocessError(f"SentencePiece training failed: {str(err).splitlines()[0]}") from None
        encoder = SentencePieceEncoder(sp_model)
        encoder.write_dictionary(os.path.join(tmp_dir, "dict.txt"))
        symbols = ["<s>", "<pad>", "</s>", "<unk>", *encoder.pieces]
    else:
        write_kmer_dictionary(os.path.join(tmp_dir, "dict.txt"), config.k)
        symbols = ["<s>", "<pad>", "</s>", "<unk>", *all_kmers(config.k)]

    splits = SPLITS if config.valid_fraction > 0 else ("train",)
    if config.output_format == "binary":
        writers = {s: IndexedDatasetWriter(os.path.join(tmp_dir, s), dtype=np.uint16) for s in splits}
    else:
        writers = {s: TextCorpusWriter(os.path.join(tmp_dir, f"{s}.txt"), symbols) for s in splits}

    seen = FingerprintSet()
    counts = collections.Counter()
    skipped = {reason: {"count": 0, "examples": []} for reason in SKIP_REASONS}
    bases = collections.Counter()
    for writer in writers.values():
        writer.__enter__()
    try:
        batches = _record_batches(source.records())
        for result in _run_ordered(batches, config.workers, (config, sp_model, tmp_dir)):
            for record in result.records:
                counts["records"] += 1
                bases["total"] += record.bases
                bases["acgt"] += record.acgt_bases
                bases["chunked"] += record.chunked_bases
                if record.skipped:
                    entry = skipped[record.skipped]
                    entry["count"] += 1
                    if len(entry["examples"]) < _MAX_SKIP_EXAMPLES:
                        entry["examples"].append(record.name)
                else:
                    counts["used"] += 1
            counts["duplicates"] += _write_result(result, seen, writers)
            if progress:
                progress(sum(record.bases for record in result.records))
    except BaseException:
        for writer in writers.values():
            writer.__exit__(RuntimeError, None, None)
        raise
    for writer in writers.values():
        writer.__exit__(None, None, None)

    if counts["used"] == 0:
        reasons = ", ".join(f"{v['count']} {SKIP_REASONS[k]}" for k, v in skipped.items() if v["count"])
        raise PreprocessError(
            f"{config.genome}: no usable sequence: all {counts['records']} records were skipped ({reasons})"
        )
    warnings = []
    if config.valid_fraction > 0 and writers["valid"].num_items == 0:
        warnings.append("the valid split is empty (genome too small for --valid-fraction); fairseq cannot load it")
    summary = CorpusSummary(
        source=os.path.abspath(config.genome),
        source_format=source.format,
        tokenizer=config.tokenizer,
        k=config.k,
        seed=config.seed,
        valid_fraction=config.valid_fraction,
        reverse_complement=config.reverse_complement,
        output_format=config.output_format,
        chunking=asdict(config.chunking),
        records={
            "total": counts["records"],
            "used": counts["used"],
            "skipped_total": sum(v["count"] for v in skipped.values()),
            "skipped": skipped,
        },
        bases=dict(total=bases["total"], acgt=bases["acgt"], chunked=bases["chunked"]),
        duplicates_removed=counts["duplicates"],
        splits={s: {"chunks": w.num_items, "tokens": w.num_tokens} for s, w in writers.items()},
        files=sorted(os.listdir(tmp_dir)) + ["preprocess.json"],
        seconds=round(time.perf_counter() - started, 3),
        warnings=warnings,
    )
    with open(os.path.join(tmp_dir, "preprocess.json"), "w") as handle:
        handle.write(summary.to_json())
    return summary


def _write_result(result: BatchResult, seen: FingerprintSet, writers: dict) -> int:
    """Append a batch's new items to the split writers; returns how many duplicates were dropped."""
    keep = seen.first_seen(result.keys)
    duplicates = int(len(keep) - np.count_nonzero(keep))
    for split, writer in writers.items():
        chosen = keep & (result.valid if split == "valid" else ~result.valid)
        if chosen.all():
            writer.add_many(result.tokens, result.sizes)
        elif chosen.any():
            writer.add_chosen(result.tokens, result.sizes, chosen)
    return duplicates


__all__ = [
    "CorpusConfig",
    "CorpusSummary",
    "FingerprintSet",
    "GenomeInputError",
    "PreprocessError",
    "build_corpus",
]
