"""Few-shot TSVs -> fairseq's ``sentence_prediction`` layout (``input0/`` + ``label/``).

Input files are DNABERT-style TSVs with a ``sequence<TAB>label`` header, or a GUE folder
(``train.csv``/``dev.csv``/``test.csv``, header ``sequence,label``: :mod:`.gue`); a sequence is
either space-separated overlapping k-mers or raw DNA. A ``.csv`` file is read comma-separated. Sequences are tokenized with the
*pretraining* dictionary (k and the stride are read from it), as ``genemask-preprocess`` tokenized
the corpus (overlapping k-mers, or non-overlapping k-mers with the remainder as single bases),
so the fine-tuned model sees the same ids as during pretraining. Labels get a fixed dictionary in sorted order (numeric when every
label is an integer), so label ``"0"`` is class 0 and there is no ``madeupword`` padding:
``sentence_prediction`` subtracts the 4 fairseq specials from the label token id.

Every bad row raises :class:`FewshotDataError` naming the file and line; the output
directory is built through :func:`~genemask_preprocess.atomic_output.atomic_directory`, so
nothing is written on error. It imports neither fairseq nor torch.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genemask_preprocess.atomic_output import atomic_directory, check_output_directory
from genemask_preprocess.errors import InputError
from genemask_preprocess.formats.fairseq_dictionary import (
    DictionaryError,
    KmerVocabulary,
    fairseq_int_dtype,
    load_kmer_vocabulary,
    read_dictionary_symbols,
    write_dictionary,
)
from genemask_preprocess.formats.indexed_dataset import IndexedDatasetWriter, check_indexed_dataset
from genemask_preprocess.formats.input_file import open_input
from genemask_preprocess.formats.text_table import read_labelled_rows
from genemask_preprocess.kmers import (
    EOS_ID,
    FAIRSEQ_SPECIALS,
    INVALID,
    MASK_SYMBOL,
    NUM_SPECIALS,
    encode_bases,
    kmers_to_dna,
)

from ..models.defaults import MAX_POSITIONS
from .gue import fit_sequence, gue_split_files, is_gue_folder

SPLITS = ("train", "valid", "test")
METADATA_FILE = "fewshot.json"
"""Written by :func:`prepare_fewshot_data` into the output directory: k, labels, per-split counts."""
OUTPUT_NAMES = ("input0", "label", METADATA_FILE)
"""Everything :func:`prepare_fewshot_data` writes into its output directory."""
_INT_RE = re.compile(r"^[+-]?\d+$")


class FewshotDataError(InputError):
    """Bad few-shot input (file, header, row or prepared folder), with a one-line message."""


# ---------------------------------------------------------------------------------------------
# Rows


@dataclass(frozen=True)
class FewshotRow:
    line: int
    dna: str
    label: str


def kmer_string_to_dna(text: str, k: int | None) -> str:
    """Raw DNA of space-separated overlapping k-mers, checked against the dictionary's k.

    The codec (:func:`genemask_preprocess.kmers.kmers_to_dna`) rejects ragged and non-overlapping
    k-mers; on top of that the k-mers must be the dictionary's k (unless ``k`` is None: a dictionary
    of tokens that do not overlap reads DNABERT-format k-mers of any k) and A/C/G/T only. Raises
    ``ValueError`` (the caller adds the row).
    """
    dna = kmers_to_dna(text)
    first = text.split(maxsplit=1)[0]
    k = len(first) if k is None else k
    if len(first) != k:
        raise ValueError(
            f"k-mer 1 {first!r} is not in the dictionary, which holds {k}-mers "
            f"(these are {len(first)}-mers; give raw DNA or {k}-mers)"
        )
    bad = np.flatnonzero(encode_bases(dna) == INVALID)
    if len(bad):
        i = max(0, bad[0] - k + 1)  # the first k-mer holding the first bad letter
        raise ValueError(f"k-mer {i + 1} {dna[i : i + k]!r} is not in the dictionary (non-ACGT letter)")
    return dna


def sequence_to_dna(text: str, k: int | None) -> str:
    """Upper-case raw DNA of a ``sequence`` field (k-mer string or raw DNA); ``ValueError`` if bad.

    ``k``: :attr:`KmerVocabulary.kmer_text_length` (None: k-mer strings of any k)."""
    text = text.strip().upper()  # soft-masked (lower-case) bases are real sequence
    if not text:
        raise ValueError("empty sequence")
    if any(c.isspace() for c in text):
        return kmer_string_to_dna(text, k)
    bad = np.flatnonzero(encode_bases(text) == INVALID)
    if len(bad):
        raise ValueError(f"non-ACGT letter {text[bad[0]]!r} at base {bad[0] + 1}")
    if k is not None and len(text) < k:
        raise ValueError(f"sequence of {len(text)} bases is shorter than k={k}")
    return text


def token_ids(dna: str, vocab: KmerVocabulary) -> np.ndarray:
    """Token ids of A/C/G/T DNA under the dictionary's tokenization, followed by ``</s>``, in the dict's dtype."""
    ids = vocab.token_ids(encode_bases(dna))
    missing = np.flatnonzero(ids < 0)
    if len(missing):
        i = missing[0]
        at = i if vocab.stride == 1 else i * vocab.k  # a missing token is always a k-mer, never a remainder base
        raise ValueError(f"k-mer {i + 1} {dna[at : at + vocab.k]!r} is not in the dictionary")
    return np.append(ids, EOS_ID).astype(vocab.dtype)


def table_delimiter(path: str | os.PathLike) -> str:
    """``,`` for a ``.csv`` (or ``.csv.gz``) file, such as GUE's; else a tab."""
    name = Path(path).name.lower().removesuffix(".gz")
    return "," if name.endswith(".csv") else "\t"


def read_fewshot_tsv(path: str | os.PathLike, k: int | None) -> list[FewshotRow]:
    """Rows of a DNABERT-style ``sequence<TAB>label`` TSV or a GUE ``sequence,label`` CSV
    (fields may be double-quoted)."""
    try:
        rows = read_labelled_rows(path, delimiter=table_delimiter(path))
    except InputError as err:
        raise FewshotDataError(str(err)) from None
    out = []
    for row in rows:
        try:
            dna = sequence_to_dna(row.sequence, k)
        except ValueError as err:
            raise FewshotDataError(f"{path} line {row.line}: {err}") from None
        out.append(FewshotRow(row.line, dna, row.label))
    return out


# ---------------------------------------------------------------------------------------------
# Labels


def is_integer_label(label: str) -> bool:
    """True for a label written as an integer (``0``, ``-1``, ``+2``): such classes sort and select by number."""
    return _INT_RE.match(label) is not None


def sorted_labels(labels: Sequence[str]) -> list[str]:
    """Distinct labels in class order: numeric if all are integers (so "0" is class 0, "10" after "9")."""
    distinct = set(labels)
    if all(is_integer_label(label) for label in distinct):
        return sorted(distinct, key=int)
    return sorted(distinct)


RESERVED_LABELS = (*FAIRSEQ_SPECIALS, MASK_SYMBOL)


def check_labels(path, rows: Sequence[FewshotRow]) -> None:
    """Refuse labels fairseq would misread: its special symbols, and one number written two ways.

    ``1`` and ``1.0`` (or ``01``) would silently become two classes; a label ``<s>`` or
    ``<unk>`` would map onto fairseq's special token of that name in the label dictionary.
    """
    spellings: dict[float, tuple[str, int]] = {}
    for row in rows:
        if row.label in RESERVED_LABELS:
            raise FewshotDataError(
                f"{path} line {row.line}: label {row.label!r} is a fairseq special symbol; rename the class"
            )
        try:
            value = float(row.label)
        except ValueError:
            continue
        first = spellings.setdefault(value, (row.label, row.line))
        if first[0] != row.label:
            raise FewshotDataError(
                f"{path} line {row.line}: label {row.label!r} is the number of label {first[0]!r} (line {first[1]}) "
                "written another way; write each class one way"
            )


# ---------------------------------------------------------------------------------------------
# The whole preparation


@dataclass
class PreparedSplit:
    source: str
    rows: int
    per_class: dict[str, int]
    max_tokens: int
    """The longest stored item: its k-mers and ``</s>``."""
    excluded_overlap: int = 0
    truncated: int = 0
    """Sequences cut to fit ``max_positions`` (``--truncate``)."""

    @property
    def max_positions(self) -> int:
        """The model positions the longest item takes: ``<s>`` (``sentence_prediction`` prepends it), its
        k-mers and ``</s>``, what ``--max-positions`` counts."""
        return self.max_tokens + 1


@dataclass
class PreparedData:
    """What :func:`prepare_fewshot_data` wrote (also saved as ``fewshot.json``)."""

    out: str
    dictionary: str
    k: int
    labels: list[str]
    exclude_overlap: bool = False
    splits: dict[str, PreparedSplit] = field(default_factory=dict)
    source_format: str = "tsv"
    """``tsv`` (DNABERT-style files) or ``gue`` (a GUE folder)."""
    truncate: str | None = None
    stride: int = 1
    """The dictionary's stride: 1 (overlapping k-mers) or k (non-overlapping)."""

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def headline_metric(self) -> str:
        """The metric a summary leads with: MCC for GUE data (as the field reports GUE), else accuracy."""
        return "mcc" if self.source_format == "gue" else "accuracy"

    def to_json(self) -> dict:
        return {
            "dictionary": self.dictionary,
            "k": self.k,
            "stride": self.stride,
            "labels": self.labels,
            "exclude_overlap": self.exclude_overlap,
            "source_format": self.source_format,
            "truncate": self.truncate,
            "splits": {name: vars(split) for name, split in self.splits.items()},
        }

    @classmethod
    def load(cls, directory: str | os.PathLike, check: bool = True) -> PreparedData:
        """Read ``DIR/fewshot.json`` (raises :class:`FewshotDataError` if it is not a prepared dir).

        With ``check`` (the default), the folder's files are checked too (:meth:`check_files`).
        """
        path = Path(directory) / METADATA_FILE
        try:
            meta = json.loads(path.read_text())
            splits = {name: PreparedSplit(**s) for name, s in meta["splits"].items()}
            prepared = cls(str(directory), meta["dictionary"], meta["k"], meta["labels"],
                           meta["exclude_overlap"], splits, meta.get("source_format", "tsv"), meta.get("truncate"),
                           meta.get("stride", 1))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise FewshotDataError(
                f"{directory} is not a prepared few-shot directory (run `genemask-fewshot prepare`): {err}"
            ) from None
        prepared._check_metadata()
        if check:
            prepared.check_files()
        return prepared

    def _damaged(self, what: str) -> FewshotDataError:
        return FewshotDataError(f"{self.out}: {what}; prepare it again (`genemask-fewshot prepare`)")

    def _check_metadata(self) -> None:
        if not (isinstance(self.labels, list) and len(self.labels) >= 2
                and all(isinstance(label, str) for label in self.labels)):
            raise self._damaged(f"{METADATA_FILE} has no list of at least 2 labels")
        if not isinstance(self.k, int) or "train" not in self.splits:
            raise self._damaged(f"{METADATA_FILE} is damaged (k or the train split)")
        for name, split in self.splits.items():
            if not isinstance(split.rows, int) or not isinstance(split.max_tokens, int):
                raise self._damaged(f"{METADATA_FILE} is damaged (split {name!r})")

    def check_files(self) -> None:
        """Refuse a hand-edited or damaged folder: label dictionary and every split's files."""
        directory = Path(self.out)
        bad = self._damaged
        try:
            label_symbols = read_dictionary_symbols(directory / "label" / "dict.txt")[NUM_SPECIALS:]
        except DictionaryError as err:
            raise bad(str(err)) from None
        if label_symbols != self.labels:
            raise bad(f"label/dict.txt holds {label_symbols}, but {METADATA_FILE} says {self.labels}")
        if not (directory / "input0" / "dict.txt").is_file():
            raise bad("input0/dict.txt is missing")
        for name, split in self.splits.items():
            for sub in ("input0", "label"):
                try:
                    items = check_indexed_dataset(directory / sub / name)
                except ValueError as err:
                    raise bad(str(err)) from None
                if items != split.rows:
                    raise bad(f"{sub}/{name} holds {items} items, but {METADATA_FILE} says {split.rows}")


def read_checked_splits(sources: dict, k: int | None) -> tuple[dict[str, list[FewshotRow]], list[str]]:
    """Read and check the split TSVs (``{"train": path, "valid": path or None, ...}``).

    Returns the rows per given split and the classes in order. Every check on content is
    here, so ``grid`` can run them on all its cells before the first one starts.
    """
    rows = {name: read_fewshot_tsv(path, k) for name, path in sources.items() if path}
    for name, split_rows in rows.items():
        check_labels(sources[name], split_rows)
    labels = sorted_labels([row.label for row in rows["train"]])
    if len(labels) < 2:
        raise FewshotDataError(f"{sources['train']}: needs at least 2 classes, found only {labels}")
    for name in ("valid", "test"):
        for row in rows.get(name, ()):
            if row.label not in labels:
                raise FewshotDataError(
                    f"{sources[name]} line {row.line}: label {row.label!r} never occurs in the "
                    f"training file (its labels: {', '.join(labels)})"
                )
    return rows, labels


def prepare_fewshot_data(
    train: str | os.PathLike,
    dictionary: str | os.PathLike,
    out: str | os.PathLike,
    valid: str | os.PathLike | None = None,
    test: str | os.PathLike | None = None,
    exclude_overlap: bool = False,
    force: bool = False,
    truncate: str | None = None,
    max_positions: int = MAX_POSITIONS,
    overlap_source: str | os.PathLike | None = None,
    dev: bool = True,
) -> PreparedData:
    """Tokenize and binarize few-shot TSVs (or a GUE folder) into ``out`` (the ``sentence_prediction`` layout).

    ``out/input0/{split}.{bin,idx}`` hold the k-mer ids + ``</s>`` under the pretraining
    dictionary (copied to ``out/input0/dict.txt``); ``out/label/{split}.{bin,idx}`` hold
    ``4 + class`` + ``</s>`` under the fixed ``out/label/dict.txt``. With ``exclude_overlap``
    every test sequence that is also a training sequence is dropped (Prom-300 / Cohn-enh), or,
    given ``overlap_source``, every one in that file (a per-class draw excludes its whole shot file).

    ``train`` may be a GUE folder instead: its ``train.csv``, ``dev.csv`` (as ``valid``) and
    ``test.csv`` are read, checked first (:func:`.gue.gue_split_files`); ``dev`` False reads no
    ``dev.csv`` (``--no-dev``: no model selection). A sequence longer than ``max_positions`` tokens (``<s>`` and ``</s>``
    included) is an error unless ``truncate`` (``start`` or ``centre``) says what to keep.

    ``out`` must be missing, empty or an earlier ``prepare`` output (which is replaced);
    ``force`` replaces this command's outputs in any other folder, keeping its other files.
    """
    out = Path(out)
    force = force or (out / METADATA_FILE).is_file()  # an earlier prepare output: rebuilt in place
    check_output_directory(out, force)
    vocab = load_kmer_vocabulary(dictionary)
    source_format = "tsv"
    if Path(train).is_dir():
        if not is_gue_folder(train):
            raise FewshotDataError(f"{train} is a folder without train.csv (a GUE folder holds "
                                   "train.csv, dev.csv and test.csv)")
        if valid or test:
            raise FewshotDataError(f"{train} is a GUE folder: its dev.csv and test.csv are the valid and "
                                   "test splits; do not pass --valid or --test")
        sources = gue_split_files(train, dev)
        source_format = "gue"
    else:
        sources = {"train": train, "valid": valid, "test": test}
    rows, labels = read_checked_splits(sources, vocab.kmer_text_length)
    truncated = {name: 0 for name in rows}
    for name, split_rows in rows.items():
        for i, row in enumerate(split_rows):
            try:
                dna, cut = fit_sequence(row.dna, vocab.k, max_positions, truncate, vocab.stride)
            except ValueError as err:
                raise FewshotDataError(f"{sources[name]} line {row.line}: {err}") from None
            if cut:
                split_rows[i] = FewshotRow(row.line, dna, row.label)
                truncated[name] += 1

    train_counts = Counter(row.label for row in rows["train"])
    class_of = {label: i for i, label in enumerate(labels)}

    excluded = 0
    if exclude_overlap and "test" in rows:
        overlap_rows = read_fewshot_tsv(overlap_source, vocab.kmer_text_length) if overlap_source else rows["train"]
        train_dna = {row.dna for row in overlap_rows}
        kept = [row for row in rows["test"] if row.dna not in train_dna]
        excluded = len(rows["test"]) - len(kept)
        if not kept:
            raise FewshotDataError(f"{test}: every test sequence also occurs in {train}")
        rows["test"] = kept

    tokens = {}
    for name, split_rows in rows.items():
        tokens[name] = []
        for row in split_rows:
            try:
                tokens[name].append(token_ids(row.dna, vocab))
            except ValueError as err:
                raise FewshotDataError(f"{sources[name]} line {row.line}: {err}") from None

    result = PreparedData(str(out), str(Path(dictionary).resolve()), vocab.k, labels, exclude_overlap,
                          source_format=source_format, truncate=truncate, stride=vocab.stride)
    with atomic_directory(out, force=force, owned=OUTPUT_NAMES) as staging:
        (staging / "input0").mkdir()
        (staging / "label").mkdir()
        with open_input(vocab.path, decompress=False) as source, open(staging / "input0" / "dict.txt", "wb") as copy:
            shutil.copyfileobj(source, copy)  # through open_input: a dictionary given as a pipe was read already
        # class i is token id 4 + i: one line per class, in class order
        write_dictionary(staging / "label" / "dict.txt", labels, [train_counts[label] for label in labels])
        label_dtype = fairseq_int_dtype(NUM_SPECIALS + len(labels) + 1)
        for name, split_rows in rows.items():
            with IndexedDatasetWriter(str(staging / "input0" / name), dtype=vocab.dtype) as writer:
                writer.add_many(tokens[name])
            label_items = np.array(
                [[NUM_SPECIALS + class_of[row.label], EOS_ID] for row in split_rows], dtype=label_dtype
            )
            with IndexedDatasetWriter(str(staging / "label" / name), dtype=label_dtype) as writer:
                writer.add_many(list(label_items))
            counts = Counter(row.label for row in split_rows)
            result.splits[name] = PreparedSplit(
                source=str(Path(sources[name]).resolve()),
                rows=len(split_rows),
                per_class={label: counts[label] for label in labels},
                max_tokens=max(len(t) for t in tokens[name]),
                excluded_overlap=excluded if name == "test" else 0,
                truncated=truncated[name],
            )
        (staging / METADATA_FILE).write_text(json.dumps(result.to_json(), indent=2) + "\n")
    return result
