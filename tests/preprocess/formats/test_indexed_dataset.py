import numpy as np
import pytest
import torch

from genemask_preprocess.formats import indexed_dataset
from genemask_preprocess.formats.indexed_dataset import IndexedDatasetWriter, read_indexed_dataset


def _items(seed=0, n=50, vocab=4100):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, vocab, size=rng.integers(1, 40), dtype=np.uint16) for _ in range(n)]


def test_roundtrip_add_and_add_many(tmp_path):
    items = _items()
    with IndexedDatasetWriter(tmp_path / "train") as writer:
        writer.add(items[0])
        writer.add_many(items[1:10])
        rest = items[10:]
        writer.add_many(np.concatenate(rest), np.array([len(x) for x in rest]))
    tokens, sizes = read_indexed_dataset(tmp_path / "train")
    assert sizes.tolist() == [len(x) for x in items]
    assert np.array_equal(tokens, np.concatenate(items))
    assert writer.num_items == 50 and writer.num_tokens == tokens.size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.bin", "train.idx"]


def test_fairseq_reads_it_and_its_own_builder_writes_the_same_bytes(tmp_path):
    from fairseq.data import Dictionary, data_utils, indexed_dataset

    items = _items(1)
    with IndexedDatasetWriter(tmp_path / "ours") as writer:
        writer.add_many(items)
    builder = indexed_dataset.MMapIndexedDatasetBuilder(str(tmp_path / "theirs.bin"), dtype=np.uint16)
    for item in items:
        builder.add_item(torch.from_numpy(item.astype(np.int64)))
    builder.finalize(str(tmp_path / "theirs.idx"))
    for ext in ("bin", "idx"):
        assert (tmp_path / f"ours.{ext}").read_bytes() == (tmp_path / f"theirs.{ext}").read_bytes()

    dataset = data_utils.load_indexed_dataset(str(tmp_path / "ours"), Dictionary(), dataset_impl=None)
    assert isinstance(dataset, indexed_dataset.MMapIndexedDataset)
    assert len(dataset) == len(items)
    assert dataset.sizes.tolist() == [len(x) for x in items]
    for i in (0, 17, len(items) - 1):
        assert dataset[i].tolist() == items[i].tolist()


def test_index_streams_across_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(indexed_dataset, "_COPY_BLOCK", 7)
    items = _items(2, n=33)
    with IndexedDatasetWriter(tmp_path / "x") as writer:
        writer.add_many(items)
    tokens, sizes = read_indexed_dataset(tmp_path / "x")
    assert np.array_equal(tokens, np.concatenate(items))
    raw = (tmp_path / "x.idx").read_bytes()
    pointers = np.frombuffer(raw[26 + 4 * 33 :], dtype=np.int64)
    assert pointers.tolist() == (2 * (np.cumsum(sizes) - sizes)).tolist()


def test_nothing_is_left_behind_on_error(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with IndexedDatasetWriter(tmp_path / "train") as writer:
            writer.add(np.arange(5, dtype=np.uint16))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_existing_files_are_kept_until_a_clean_finish(tmp_path):
    with IndexedDatasetWriter(tmp_path / "d") as writer:
        writer.add(np.array([7, 8], dtype=np.uint16))
    before = (tmp_path / "d.bin").read_bytes()
    with pytest.raises(KeyError):
        with IndexedDatasetWriter(tmp_path / "d") as writer:
            writer.add(np.array([1], dtype=np.uint16))
            raise KeyError
    assert (tmp_path / "d.bin").read_bytes() == before


def test_rejects_values_that_do_not_fit_and_bad_sizes(tmp_path):
    with pytest.raises(ValueError, match="do not fit"):
        with IndexedDatasetWriter(tmp_path / "d") as writer:
            writer.add(np.array([70000], dtype=np.int64))
    with pytest.raises(ValueError, match="sizes sum"):
        with IndexedDatasetWriter(tmp_path / "d") as writer:
            writer.add_many(np.arange(5, dtype=np.uint16), [2, 2])
    with pytest.raises(ValueError, match="no fairseq"):
        IndexedDatasetWriter(tmp_path / "d", dtype=np.float16)
    assert list(tmp_path.iterdir()) == []


def test_other_dtypes_and_empty_dataset(tmp_path):
    with IndexedDatasetWriter(tmp_path / "wide", dtype=np.int32) as writer:
        writer.add(np.array([100000, 3]))
    tokens, sizes = read_indexed_dataset(tmp_path / "wide")
    assert tokens.dtype == np.int32 and tokens.tolist() == [100000, 3]
    with IndexedDatasetWriter(tmp_path / "empty") as writer:
        pass
    tokens, sizes = read_indexed_dataset(tmp_path / "empty")
    assert tokens.size == 0 and sizes.size == 0
    assert read_indexed_dataset(tmp_path / "empty", mmap=True)[0].size == 0


def test_tokens_can_be_memory_mapped(tmp_path):
    with IndexedDatasetWriter(tmp_path / "x") as writer:
        writer.add_many(np.arange(7, dtype=np.uint16), [3, 4])
    mapped, sizes = read_indexed_dataset(tmp_path / "x", mmap=True)
    assert isinstance(mapped, np.memmap) and mapped.tolist() == list(range(7)) and sizes.tolist() == [3, 4]


def test_add_chosen_writes_the_selected_items_across_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(indexed_dataset, "_COPY_BLOCK", 5)  # blocks of ~20 tokens
    items = _items(3, n=60)
    chosen = np.random.default_rng(0).random(60) < 0.6
    with IndexedDatasetWriter(tmp_path / "x") as writer:
        writer.add_chosen(np.concatenate(items), np.array([len(x) for x in items]), chosen)
    tokens, sizes = read_indexed_dataset(tmp_path / "x")
    picked = [x for x, c in zip(items, chosen, strict=True) if c]
    assert sizes.tolist() == [len(x) for x in picked]
    assert np.array_equal(tokens, np.concatenate(picked))
