"""Compute sha256 digests of every output that the restructure must keep byte-identical.

Run as a script to print the digests as JSON (the committed ``digests.json`` was made this
way, before the restructure); ``tests/test_golden_outputs.py`` recomputes them and compares.
Everything runs through the console commands and the fairseq task, so the digests pin the
behaviour users see, not the module layout.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
GENOMES = {
    "fragments": REPO / "data" / "genomes" / "human_fewshot_fragments.fa.gz",
    "yeast": REPO / "data" / "genomes" / "S288C_chr01_chr06.fa.gz",
}
CORPUS_FILES = ("train.bin", "train.idx", "valid.bin", "valid.idx", "dict.txt")
MASK_STRATEGIES = ("genemask", "kmer_span", "random", "genemask_position")
MASK_ITEMS = (0, 1, 2, 3, 5, 8, 13, 21, 34, 55)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(*args: str) -> None:
    subprocess.run([str(BIN / args[0]), *args[1:]], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def corpus_digests(work: Path) -> dict[str, str]:
    out = {}
    for name, genome in GENOMES.items():
        data = work / f"corpus-{name}"
        run("genemask-preprocess", str(genome), "--k", "6", "--out", str(data), "--workers", "2", "--quiet")
        for file in CORPUS_FILES:
            out[f"corpus/{name}/{file}"] = sha256(data / file)
    return out


def pmi_digests(work: Path) -> dict[str, str]:
    out = {}
    counts = work / "yeast.counts.npz"
    run("genemask-pmi", "count", str(GENOMES["yeast"]), "--max-n", "8", "--out", str(counts), "--quiet")
    with np.load(counts) as arrays:
        for key in sorted(arrays.files):
            out[f"count/npz/{key}"] = hashlib.sha256(np.ascontiguousarray(arrays[key]).tobytes()).hexdigest()
    tsv = work / "yeast.counts.tsv"
    run("genemask-pmi", "count", str(GENOMES["yeast"]), "--max-n", "6", "--both-strands", "--tsv",
        "--out", str(tsv), "--quiet")
    out["count/tsv"] = sha256(tsv)
    for variant in ("levine", "paper"):
        table = work / f"yeast.{variant}.tsv"
        run("genemask-pmi", "score", str(counts), "--variant", variant, "--min-count", "5", "--out", str(table))
        out[f"score/{variant}"] = sha256(table)
    return out


def fewshot_digests(work: Path) -> dict[str, str]:
    out = {}
    fewshot = REPO / "data" / "fewshot" / "Prom-core"
    prepared = work / "prom-core-10"
    run("genemask-fewshot", "prepare", str(fewshot / "10" / "train.tsv"), "--test", str(fewshot / "test.tsv"),
        "--dict", str(work / "corpus-fragments" / "dict.txt"), "--out", str(prepared))
    for path in sorted(prepared.rglob("*")):
        if path.is_file() and path.suffix != ".json":
            out[f"fewshot/{path.relative_to(prepared)}"] = sha256(path)
    return out


def mask_digests(work: Path) -> dict[str, str]:
    from genemask_plugin.tasks.genemask_mlm import GeneMaskMLMConfig, GeneMaskMLMTask

    data = work / "corpus-fragments"
    table = REPO / "data" / "pmi" / "human_fragments.pmi.tsv"
    out = {}
    for strategy in MASK_STRATEGIES:
        cfg = GeneMaskMLMConfig(data=str(data), seed=7, pmi_table=str(table), mask_strategy=strategy)
        task = GeneMaskMLMTask.setup_task(cfg)
        task.load_dataset("train")
        dataset = task.dataset("train")
        for epoch in (1, 2):
            dataset.set_epoch(epoch)
            digest = hashlib.sha256()
            for index in MASK_ITEMS:
                item = dataset[index]
                for key in ("source", "target", "wide"):
                    digest.update(item[key].numpy().tobytes())
            out[f"masks/{strategy}/epoch{epoch}"] = digest.hexdigest()
    return out


def compute_digests() -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        digests = {**corpus_digests(work), **pmi_digests(work), **fewshot_digests(work),
                   **mask_digests(work)}
    return dict(sorted(digests.items()))


if __name__ == "__main__":
    print(json.dumps(compute_digests(), indent=1))
