"""The text corpus: one item per line, as space-separated symbols (``--format text``).

This is the input ``fairseq-preprocess --only-source --srcdict dict.txt`` expects; it
binarizes to exactly the files the direct binary output writes. Symbols are turned into
text with array operations, a block of about 1 M tokens at a time.
"""

from __future__ import annotations

import numpy as np


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
