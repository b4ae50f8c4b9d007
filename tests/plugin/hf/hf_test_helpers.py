"""Shared helpers of the Hugging Face tests: real sequences, random fairseq RoBERTa checkpoints.

A uniquely named module (not conftest.py, whose name other folders of the suite share).
"""

import argparse
import itertools
import os
from pathlib import Path
from types import SimpleNamespace

import torch

REPO = Path(__file__).resolve().parents[3]
GUE = REPO / "tests" / "data" / "gue_prom_core"
FRAGMENTS = REPO / "data" / "genomes" / "human_fewshot_fragments.fa.gz"
PMI_TABLE = REPO / "data" / "pmi" / "human_fragments.pmi.tsv"




def tiny_pretraining():
    """The suite's own small genemask_tiny pretraining run (build_corpus, pretrain) of the few-shot tests."""
    import importlib.util

    path = REPO / "tests" / "plugin" / "fewshot" / "test_fewshot_end_to_end.py"
    spec = importlib.util.spec_from_file_location("fewshot_end_to_end_helpers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_corpus, module.pretrain


def real_sequences(n=6):
    """Raw DNA of different lengths: Prom-core test rows and bundled human fragments (cut to 300 bp)."""
    from genemask_plugin.fewshot.prepare import read_fewshot_tsv
    from genemask_preprocess.formats.genome import open_genome

    rows = [row.dna for row in read_fewshot_tsv(GUE / "test.csv", 6)[: n // 2]]
    fragments = [r.sequence.upper()[: 40 + 120 * i]
                 for i, r in enumerate(itertools.islice(open_genome(FRAGMENTS).records(), 50))
                 if set(r.sequence.upper()[: 40 + 120 * i]) <= set("ACGT")]
    return rows + fragments[: n - len(rows)]


def fairseq_dictionary(dict_path):
    from fairseq.data import Dictionary

    dictionary = Dictionary.load(str(dict_path))
    dictionary.add_symbol("<mask>")
    return dictionary


def random_fairseq_roberta(arch, dictionary, seed=0, **overrides):
    """A randomly initialised fairseq RoBERTa of ``arch`` (fairseq's own init), in eval mode."""
    from fairseq.models import ARCH_CONFIG_REGISTRY
    from fairseq.models.roberta import RobertaModel

    import genemask_plugin.registration  # noqa: F401  (registers the architectures)

    args = argparse.Namespace(arch=arch, _name=arch, **overrides)
    ARCH_CONFIG_REGISTRY[arch](args)
    torch.manual_seed(seed)
    model = RobertaModel.build_model(args, SimpleNamespace(source_dictionary=dictionary))
    return model.eval(), args


def save_fairseq_checkpoint(path, model, args, task_cfg, num_updates=0):
    """A checkpoint as fairseq-train writes it (the parts the exporter and loaders read)."""
    state = {"args": None, "cfg": {"model": args, "task": task_cfg}, "model": model.state_dict(),
             "optimizer_history": [{"num_updates": num_updates}], "extra_state": None}
    torch.save(state, path)
    return path


def fairseq_logits(model, input_ids):
    with torch.no_grad():
        logits, _ = model(input_ids)
    return logits


def hf_batch(tokenizer, sequences, k=6):
    from genemask_preprocess.kmers import dna_to_kmer_string

    return tokenizer([dna_to_kmer_string(s, k) for s in sequences], return_tensors="pt", padding=True)


def no_leftovers(folder):
    """Names in ``folder`` that an atomic writer would have left (temporary siblings)."""
    return [name for name in os.listdir(folder) if ".tmp-" in name]
