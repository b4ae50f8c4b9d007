"""Write fairseq's mmap indexed-dataset format (``PREFIX.bin`` + ``PREFIX.idx``) straight from numpy.

The format, as ``fairseq.data.indexed_dataset.MMapIndexedDataset`` reads it:

- ``.bin``: every item's token ids back to back, in one dtype (uint16 for our vocabularies).
- ``.idx``: magic ``b"MMIDIDX\\x00\\x00"``, version ``<Q`` 1, dtype code ``<B`` (8 = uint16),
  item count ``<Q``, then the item sizes as int32 and the item byte offsets into ``.bin`` as int64.

Both files go through :func:`~genemask_preprocess.atomic_output.atomic_file`: they appear
only when the writer's ``with`` block exits cleanly; on error nothing is left behind.
This module is numpy-only and does not import fairseq.
"""

from __future__ import annotations

import contextlib
import os
import struct
import tempfile

import numpy as np

from genemask_preprocess.atomic_output import atomic_file

_MAGIC = b"MMIDIDX\x00\x00"
_VERSION = 1
_DTYPE_CODES = {
    np.dtype(np.uint8): 1,
    np.dtype(np.int8): 2,
    np.dtype(np.int16): 3,
    np.dtype(np.int32): 4,
    np.dtype(np.int64): 5,
    np.dtype(np.float64): 6,
    np.dtype(np.uint16): 8,
    np.dtype(np.uint32): 9,
    np.dtype(np.uint64): 10,
}
_COPY_BLOCK = 1 << 20  # items per block when writing the index


class IndexedDatasetWriter:
    """Incremental writer of one fairseq mmap indexed dataset.

    >>> with IndexedDatasetWriter("out/train") as writer:   # doctest: +SKIP
    ...     writer.add(np.array([4, 5, 2], dtype=np.uint16))
    ...     writer.add_many(flat_tokens, sizes)

    Memory stays constant: tokens go straight to disk and item sizes to a
    temporary side file, from which the index is streamed on close.
    """

    def __init__(self, path_prefix: str | os.PathLike, dtype=np.uint16):
        self.path_prefix = os.fspath(path_prefix)
        self.dtype = np.dtype(dtype)
        if self.dtype not in _DTYPE_CODES:
            raise ValueError(f"dtype {self.dtype} has no fairseq indexed-dataset code")
        self.num_items = 0
        self.num_tokens = 0
        self._bin = self._sizes = self._files = None

    def __enter__(self) -> IndexedDatasetWriter:
        self._files = contextlib.ExitStack()
        self._bin = self._files.enter_context(atomic_file(self.path_prefix + ".bin", "wb"))
        # Item sizes wait in an anonymous file until the index is streamed from them on close.
        self._sizes = self._files.enter_context(tempfile.TemporaryFile(dir=os.path.dirname(os.path.abspath(self.path_prefix))))
        return self

    def add(self, item: np.ndarray) -> None:
        """Append one item (a 1-D array of token ids)."""
        item = np.asarray(item)
        self.add_many(item.reshape(-1), np.array([item.size], dtype=np.int64))

    def add_many(self, items, sizes=None) -> None:
        """Append many items: either a flat token array plus per-item ``sizes``, or a sequence of 1-D arrays."""
        if self._bin is None:
            raise RuntimeError("IndexedDatasetWriter must be used as a context manager")
        if sizes is None:
            items = [np.asarray(item).reshape(-1) for item in items]
            sizes = np.array([item.size for item in items], dtype=np.int64)
            tokens = np.concatenate(items) if items else np.zeros(0, dtype=self.dtype)
        else:
            tokens = np.asarray(items).reshape(-1)
            sizes = np.asarray(sizes, dtype=np.int64).reshape(-1)
        if int(sizes.sum()) != tokens.size:
            raise ValueError(f"sizes sum to {int(sizes.sum())} but {tokens.size} tokens were given")
        if len(sizes) and (sizes.min() < 0 or sizes.max() > np.iinfo(np.int32).max):
            raise ValueError("item sizes must be in 0 .. 2^31-1")
        tokens = np.ascontiguousarray(self._cast(tokens))
        self._bin.write(memoryview(tokens).cast("B"))
        self._sizes.write(sizes.astype(np.int32).tobytes())
        self.num_items += len(sizes)
        self.num_tokens += tokens.size

    def add_chosen(self, tokens: np.ndarray, sizes: np.ndarray, chosen: np.ndarray) -> None:
        """Append the items of a flat ``(tokens, sizes)`` batch where ``chosen`` is True (blockwise, bounded memory)."""
        sizes = np.asarray(sizes, dtype=np.int64)
        item_ends = np.cumsum(sizes)
        first = 0
        while first < len(sizes):
            lo = int(item_ends[first - 1]) if first else 0
            end = max(first + 1, int(np.searchsorted(item_ends, lo + _COPY_BLOCK * 4, side="right")))
            hi = int(item_ends[end - 1])
            mask = np.repeat(chosen[first:end], sizes[first:end])
            self.add_many(tokens[lo:hi][mask], sizes[first:end][chosen[first:end]])
            first = end

    def _cast(self, tokens: np.ndarray) -> np.ndarray:
        if tokens.dtype == self.dtype:
            return tokens
        if tokens.size and np.issubdtype(self.dtype, np.integer):
            info = np.iinfo(self.dtype)
            low, high = tokens.min(), tokens.max()
            if low < info.min or high > info.max:
                raise ValueError(f"token ids {low}..{high} do not fit {self.dtype}")
        return tokens.astype(self.dtype)

    def __exit__(self, exc_type, exc, tb) -> None:
        files, self._files = self._files, None
        if exc_type is not None:
            files.__exit__(exc_type, exc, tb)  # the atomic .bin is removed
            return
        with files:
            self._write_index()  # .idx first, then .bin as the stack closes

    def _write_index(self) -> None:
        itemsize = self.dtype.itemsize
        with atomic_file(self.path_prefix + ".idx", "wb") as index:
            index.write(_MAGIC)
            index.write(struct.pack("<Q", _VERSION))
            index.write(struct.pack("<B", _DTYPE_CODES[self.dtype]))
            index.write(struct.pack("<Q", self.num_items))
            self._sizes.seek(0)
            while block := self._sizes.read(4 * _COPY_BLOCK):
                index.write(block)
            self._sizes.seek(0)
            address = 0
            while block := self._sizes.read(4 * _COPY_BLOCK):
                nbytes = np.frombuffer(block, dtype=np.int32).astype(np.int64) * itemsize
                pointers = address + np.cumsum(nbytes) - nbytes
                address += int(nbytes.sum())
                index.write(pointers.astype(np.int64).tobytes())


def read_indexed_dataset(path_prefix: str | os.PathLike, mmap: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Read a whole mmap indexed dataset back as ``(flat tokens, sizes)`` without fairseq (for tests and tools);
    ``mmap``: the tokens memory-mapped, read only as they are used."""
    path_prefix = os.fspath(path_prefix)
    with open(path_prefix + ".idx", "rb") as handle:
        if handle.read(len(_MAGIC)) != _MAGIC:
            raise ValueError(f"{path_prefix}.idx: not a fairseq mmap index")
        (version,) = struct.unpack("<Q", handle.read(8))
        (code,) = struct.unpack("<B", handle.read(1))
        (count,) = struct.unpack("<Q", handle.read(8))
        sizes = np.fromfile(handle, dtype=np.int32, count=count)
    if version != _VERSION:
        raise ValueError(f"{path_prefix}.idx: unsupported version {version}")
    dtype = {v: k for k, v in _DTYPE_CODES.items()}[code]
    if mmap and os.path.getsize(path_prefix + ".bin"):  # an empty file cannot be mapped
        tokens = np.memmap(path_prefix + ".bin", dtype=dtype, mode="r")
    else:
        tokens = np.fromfile(path_prefix + ".bin", dtype=dtype)
    if tokens.size != int(sizes.sum(dtype=np.int64)):
        raise ValueError(f"{path_prefix}: .bin holds {tokens.size} tokens, .idx says {int(sizes.sum())}")
    return tokens, sizes


def check_indexed_dataset(path_prefix: str | os.PathLike) -> int:
    """Check that ``PREFIX.idx`` and ``PREFIX.bin`` are whole and agree; return the item count.

    Reads only the index (not the tokens), so it is cheap on any size. Raises ``ValueError``
    naming the file for a missing, truncated or foreign file.
    """
    path_prefix = os.fspath(path_prefix)
    header = len(_MAGIC) + 8 + 1 + 8
    try:
        with open(path_prefix + ".idx", "rb") as handle:
            head = handle.read(header)
            if len(head) < header or head[: len(_MAGIC)] != _MAGIC:
                raise ValueError(f"{path_prefix}.idx: not a fairseq mmap index (truncated or foreign?)")
            version, code, count = struct.unpack("<QBQ", head[len(_MAGIC) :])
            if version != _VERSION or code not in _DTYPE_CODES.values():
                raise ValueError(f"{path_prefix}.idx: unsupported version {version} or dtype code {code}")
            expected = header + count * (4 + 8)
            if os.fstat(handle.fileno()).st_size != expected:
                raise ValueError(f"{path_prefix}.idx: {os.fstat(handle.fileno()).st_size} bytes, expected "
                                 f"{expected} for {count} items (truncated?)")
            sizes = np.fromfile(handle, dtype=np.int32, count=count)
        itemsize = {v: k for k, v in _DTYPE_CODES.items()}[code].itemsize
        if count and sizes.min() < 0:
            raise ValueError(f"{path_prefix}.idx: negative item sizes")
        bin_bytes = os.path.getsize(path_prefix + ".bin")
    except OSError as err:
        raise ValueError(f"{path_prefix}: cannot read: {err.strerror or err}") from None
    if bin_bytes != int(sizes.sum(dtype=np.int64)) * itemsize:
        raise ValueError(f"{path_prefix}.bin: {bin_bytes} bytes, but its index describes "
                         f"{int(sizes.sum(dtype=np.int64)) * itemsize} (truncated?)")
    return int(count)


def memmap_indexed_tokens(path_prefix: str | os.PathLike, check: bool = True) -> np.ndarray:
    """The flat tokens of ``PREFIX.bin`` as a read-only memory map, after :func:`check_indexed_dataset`
    (``ValueError`` naming the file if the pair is missing, truncated or foreign). ``check=False``
    skips the check (which reads the whole index) for a pair already checked."""
    path_prefix = os.fspath(path_prefix)
    if check:
        check_indexed_dataset(path_prefix)
    with open(path_prefix + ".idx", "rb") as handle:
        handle.seek(len(_MAGIC) + 8)
        (code,) = struct.unpack("<B", handle.read(1))
    dtype = {v: k for k, v in _DTYPE_CODES.items()}[code]
    if os.path.getsize(path_prefix + ".bin") == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path_prefix + ".bin", dtype=dtype, mode="r")
