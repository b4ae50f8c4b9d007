"""examples/hf_fill_mask.py: the demo's step 5, which checks that a model reads a masked k-mer off its context."""

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import hf_fill_mask  # examples/, on sys.path (conftest.py)
import pytest
import torch

from genemask_plugin.hf.tokenizer import build_kmer_tokenizer
from genemask_preprocess.kmers import (
    FAIRSEQ_SPECIALS,
    MASK_SYMBOL,
    all_kmers,
    dna_to_kmer_string,
    kmers_to_dna,
)

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "hf_fill_mask.py"

SYMBOLS = [*FAIRSEQ_SPECIALS, *all_kmers(6), MASK_SYMBOL]


@pytest.fixture(scope="module")
def tokenizer():
    return build_kmer_tokenizer(SYMBOLS, 512)


class ScriptedModel:
    """A masked LM whose logits at every position rank the k-mers of ``preferred`` first, in that order."""

    def __init__(self, preferred: list[str]):
        self.scores = torch.zeros(len(SYMBOLS))
        for place, kmer in enumerate(preferred):
            self.scores[SYMBOLS.index(kmer)] = 10.0 - place

    def __call__(self, input_ids, attention_mask):
        return SimpleNamespace(logits=self.scores.expand(1, input_ids.shape[1], -1).clone())


def test_a_model_that_reads_context_ranks_the_truth_first(tokenizer):
    dna, position = hf_fill_mask.PROBES[0]
    truth = dna_to_kmer_string(dna, 6).split()[position - 1]
    result = hf_fill_mask.fill_masked_kmer(tokenizer, ScriptedModel([truth, "AAAAAA"]), dna, position)
    assert (result.truth, result.rank, result.position, result.kmers, result.vocabulary) == (truth, 1, 10, 65, 4101)
    assert [kmer for kmer, _ in result.top] == [truth, "AAAAAA", *[k for k, _ in result.top[2:]]]
    assert result.top[0][1] > result.top[1][1] > result.top[2][1]


def test_a_model_of_frequencies_alone_ranks_it_lower(tokenizer):
    dna, position = hf_fill_mask.PROBES[2]
    truth = dna_to_kmer_string(dna, 6).split()[position - 1]
    common = [k for k in ("TTTTTT", "AAAAAA", "CCCCCC", "GGGGGG", "ATATAT", "TATATA", truth) if k != truth]
    result = hf_fill_mask.fill_masked_kmer(tokenizer, ScriptedModel([*common, truth]), dna, position)
    assert result.rank == len(common) + 1 and [k for k, _ in result.top] == common[:5]
    assert hf_fill_mask.in_top([result]) == 0 and hf_fill_mask.in_top([result], top=len(common) + 1) == 1
    assert hf_fill_mask.describe(result).startswith(f"6-mer 33 of 65: true {truth} ranked {len(common) + 1} of 4101;")


def test_only_the_masked_kmer_is_hidden(tokenizer):
    seen = {}

    def model(input_ids, attention_mask):
        seen["ids"] = input_ids[0].tolist()
        return ScriptedModel([])(input_ids, attention_mask)

    dna, position = hf_fill_mask.PROBES[1]
    hf_fill_mask.fill_masked_kmer(tokenizer, model, dna, position)
    kmers = dna_to_kmer_string(dna, 6).split()
    expected = [0, *(SYMBOLS.index(k) for k in kmers), 2]
    expected[position] = SYMBOLS.index(MASK_SYMBOL)  # <s> shifts the 1-based k-mer position by one
    assert seen["ids"] == expected


def test_a_position_outside_the_sequence_is_refused(tokenizer):
    with pytest.raises(ValueError, match="outside the sequence's 65 6-mers"):
        hf_fill_mask.fill_masked_kmer(tokenizer, ScriptedModel([]), hf_fill_mask.PROBES[0][0], 66)


def test_the_probes_are_the_prom_core_test_rows_they_name():
    rows = (REPO / "data" / "fewshot" / "Prom-core" / "test.tsv").read_text().splitlines()[1:]
    source = SCRIPT.read_text()
    for dna, position in hf_fill_mask.PROBES:
        row = int(source.split(dna, 1)[1].split("# row ", 1)[1].split()[0])
        assert kmers_to_dna(rows[row - 1].split("\t")[0]) == dna and 1 <= position <= len(dna) - 5
    assert len(hf_fill_mask.PROBES) == 5


def test_a_missing_model_folder_is_one_line_and_no_download(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}  # nothing says offline
    env["HF_ENDPOINT"] = "http://127.0.0.1:9"  # were the hub tried, it would fail here, not hang
    missing = tmp_path / "nowhere" / "hf"
    done = subprocess.run([sys.executable, str(SCRIPT), str(missing)], capture_output=True, text=True, timeout=300,
                          env=env)
    assert done.returncode == 1 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"hf_fill_mask.py: error: {missing}: no model folder there")
