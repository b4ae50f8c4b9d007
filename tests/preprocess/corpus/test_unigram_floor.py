"""The unigram floor: cross-entropy of valid under train's add-1/2 unigram, and train's entropy."""

import math

import numpy as np
import pytest

from genemask_preprocess.corpus.unigram_floor import (
    UnigramFloorError,
    entropy_bits,
    regular_symbol_ids,
    smoothed_unigram,
    unigram_floor,
)
from genemask_preprocess.errors import InputError
from genemask_preprocess.formats.fairseq_dictionary import write_dictionary
from genemask_preprocess.formats.indexed_dataset import IndexedDatasetWriter

A, C, G, T = 4, 5, 6, 7  # token ids of a dict.txt holding A C G T
EOS, UNK = 2, 3


def corpus(folder, train_items, valid_items, symbols=("A", "C", "G", "T")):
    folder.mkdir(exist_ok=True)
    write_dictionary(folder / "dict.txt", list(symbols))
    for split, items in (("train", train_items), ("valid", valid_items)):
        with IndexedDatasetWriter(folder / split) as writer:
            for item in items:
                writer.add(np.array(item, dtype=np.uint16))
    return folder


def test_floor_by_hand(tmp_path):
    # train: A x5, C x2, G x1, T x0 (plus </s> and <unk>, which do not count); valid: A, C, T
    data = corpus(tmp_path / "d", [[A, A, A, C, EOS], [A, A, G, C, UNK, EOS]], [[A, C, EOS], [T, EOS]])
    floor = unigram_floor(data)
    p = {token: (n + 0.5) / (8 + 0.5 * 4) for token, n in {A: 5, C: 2, G: 1, T: 0}.items()}
    expected = -(math.log2(p[A]) + math.log2(p[C]) + math.log2(p[T])) / 3
    assert floor.cross_entropy_bits == pytest.approx(expected, abs=1e-12)
    entropy = -sum(n / 8 * math.log2(n / 8) for n in (5, 2, 1))
    assert floor.train_entropy_bits == pytest.approx(entropy, abs=1e-12)
    assert (floor.train_tokens, floor.valid_tokens, floor.symbols) == (8, 3, 4)
    assert floor.as_dict()["cross_entropy_bits"] == floor.cross_entropy_bits


def test_uniform_tokens_give_log2_of_the_vocabulary(tmp_path):
    rng = np.random.default_rng(0)
    data = corpus(tmp_path / "d", [rng.permutation(np.repeat([A, C, G, T], 500)).tolist()], [[A, C, G, T] * 10])
    floor = unigram_floor(data)
    assert floor.train_entropy_bits == pytest.approx(2.0) and floor.cross_entropy_bits == pytest.approx(2.0)


def test_padding_symbols_are_not_regular():
    symbols = ["<s>", "<pad>", "</s>", "<unk>", "A", "C", "madeupword0000"]
    assert regular_symbol_ids(symbols).tolist() == [4, 5]
    assert smoothed_unigram(np.array([3, 0])).tolist() == pytest.approx([3.5 / 4, 0.5 / 4])
    assert entropy_bits(np.array([1, 1, 0])) == pytest.approx(1.0)


def test_errors_are_one_line_input_errors(tmp_path):
    with pytest.raises(InputError, match="dict.txt"):
        unigram_floor(tmp_path)
    data = corpus(tmp_path / "d", [[A, EOS]], [[EOS]])
    with pytest.raises(UnigramFloorError, match="valid: no regular tokens"):
        unigram_floor(data)
    with pytest.raises(UnigramFloorError, match=r"cannot read .*test\.\{bin,idx\}"):
        unigram_floor(data, valid="test")
    bad = corpus(tmp_path / "e", [[A, 40, EOS]], [[A, EOS]])
    with pytest.raises(UnigramFloorError, match="token id 40") as caught:
        unigram_floor(bad)
    assert "\n" not in str(caught.value)
