"""Several genomes in one corpus: one genome as before, dedup across genomes, per-genome --sample."""

import json
from pathlib import Path

import numpy as np
import pytest

from genemask_preprocess.corpus.build import CorpusConfig, build_corpus
from genemask_preprocess.corpus.chunking import record_key, sample_chunks
from genemask_preprocess.corpus.cli import main
from genemask_preprocess.formats.indexed_dataset import read_indexed_dataset

REPO = Path(__file__).resolve().parents[3]
YEAST = REPO / "data" / "genomes" / "S288C_chr01_chr06.fa.gz"
FILES = ("train.bin", "train.idx", "valid.bin", "valid.idx", "dict.txt")


def _dna(n, seed):
    return "".join(np.random.default_rng(seed).choice(list("ACGT"), size=n))


def _run(*args):
    return main([str(a) for a in args])


def _same_files(a, b):
    for name in FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def _items(out, split="train"):
    tokens, sizes = read_indexed_dataset(out / split)
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    return [tokens[x:y].tobytes() for x, y in zip(bounds[:-1], bounds[1:], strict=True)]


def test_one_genome_in_a_list_is_the_single_genome_corpus(tmp_path):
    one = build_corpus(CorpusConfig(genome=str(YEAST), out_dir=str(tmp_path / "a"), workers=2))
    listed = build_corpus(CorpusConfig(genome=[str(YEAST)], out_dir=str(tmp_path / "b"), workers=1))
    _same_files(tmp_path / "a", tmp_path / "b")
    assert one.source == listed.source == str(YEAST)
    (entry,) = listed.genomes
    assert entry["records"] == one.records and entry["splits"] == one.splits and entry["sample_fraction"] == 1.0


def test_genomes_dedup_across_files_as_one_file_holding_them(tmp_path, capsys):
    chr1, chr2, chr3 = _dna(9000, 1), _dna(7000, 2), _dna(5000, 3)
    a, b, both = tmp_path / "a.fa", tmp_path / "b.fa", tmp_path / "both.fa"
    a.write_text(f">chr1\n{chr1}\n>chr2\n{chr2}\n")
    b.write_text(f">chr2\n{chr2}\n>chr3\n{chr3}\n")  # chr2 again: every chunk of it is a duplicate
    both.write_text(f">chr1\n{chr1}\n>chr2\n{chr2}\n>chr3\n{chr3}\n")
    assert _run(a, b, "--k", 4, "--out", tmp_path / "ab", "--workers", 2, "--quiet") == 0
    assert _run(both, "--k", 4, "--out", tmp_path / "one", "--workers", 1, "--quiet") == 0
    _same_files(tmp_path / "ab", tmp_path / "one")
    meta = json.loads((tmp_path / "ab" / "preprocess.json").read_text())
    first, second = meta["genomes"]
    assert meta["source"] == [str(a), str(b)] and meta["source_format"] == ["fasta", "fasta"]
    assert first["duplicates_removed"] == 0 and first["records"]["total"] == 2
    assert second["duplicates_removed"] == meta["duplicates_removed"] > 0
    assert second["bases"]["total"] == 12000
    for split in ("train", "valid"):
        assert first["splits"][split]["chunks"] + second["splits"][split]["chunks"] == meta["splits"][split]["chunks"]
        assert first["splits"][split]["tokens"] + second["splits"][split]["tokens"] == meta["splits"][split]["tokens"]


def test_sample_keeps_a_seeded_fraction_of_one_genome(tmp_path):
    other = tmp_path / "other.fa"
    other.write_text(f">x\n{_dna(30000, 9)}\n")
    full, half, half2 = tmp_path / "full", tmp_path / "half", tmp_path / "half2"
    assert _run(YEAST, other, "--k", 6, "--out", full, "--quiet", "--workers", 1) == 0
    assert _run(YEAST, other, "--k", 6, "--out", half, "--quiet", "--workers", 1,
                "--sample", f"{YEAST.name}=0.5") == 0
    assert _run(YEAST, other, "--k", 6, "--out", half2, "--quiet", "--workers", 2,
                "--sample", f"{YEAST}=0.5") == 0
    _same_files(half, half2)  # deterministic, whatever the workers
    full_meta = json.loads((full / "preprocess.json").read_text())["genomes"]
    meta = json.loads((half / "preprocess.json").read_text())["genomes"]
    kept = sum(s["chunks"] for s in meta[0]["splits"].values())
    total = sum(s["chunks"] for s in full_meta[0]["splits"].values())
    assert meta[0]["sample_fraction"] == 0.5 and kept + meta[0]["sampled_out"]["chunks"] == total
    assert 0.4 < kept / total < 0.6
    assert meta[1]["splits"] == full_meta[1]["splits"] and meta[1]["sampled_out"]["chunks"] == 0
    for split in ("train", "valid"):  # the sample is a subset, each chunk in its usual split
        assert set(_items(half, split)) <= set(_items(full, split))


def test_sample_chunks_is_counter_based():
    keys = np.array([record_key(1, "chrA"), record_key(1, "chrB")], dtype=np.uint64)
    record_of_chunk = np.repeat([0, 1], [4000, 3000])
    mask = sample_chunks(keys, record_of_chunk, 0.3)
    assert 0.25 < mask.mean() < 0.35
    # A record's draws do not depend on the records batched with it, nor on how many chunks follow.
    alone = sample_chunks(keys[1:], np.zeros(3000, dtype=np.int64), 0.3)
    assert np.array_equal(alone, mask[4000:])
    assert np.array_equal(sample_chunks(keys[:1], np.zeros(100, dtype=np.int64), 0.3), mask[:100])
    assert sample_chunks(keys, record_of_chunk, 1.0).all()


@pytest.mark.parametrize(
    "option, message",
    [
        ("nope.fa=0.5", "is not one of the genomes given"),
        ("S288C_chr01_chr06.fa.gz=0", "must be in (0, 1]"),
        ("S288C_chr01_chr06.fa.gz=1.5", "must be in (0, 1]"),
        ("S288C_chr01_chr06.fa.gz", "expected GENOME=FRACTION"),
        ("S288C_chr01_chr06.fa.gz=half", "expected GENOME=FRACTION"),
    ],
)
def test_bad_sample_options_are_one_line_errors(tmp_path, capsys, option, message):
    assert _run(YEAST, "--k", 6, "--out", tmp_path / "o", "--sample", option) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err
    assert not (tmp_path / "o").exists()


def test_a_sample_given_twice_is_refused(tmp_path, capsys):
    code = _run(YEAST, "--k", 6, "--out", tmp_path / "o", "--sample", f"{YEAST.name}=0.5",
                "--sample", f"{YEAST.name}=0.2")
    assert code == 1 and "given twice" in capsys.readouterr().err


def test_a_genome_with_nothing_usable_is_a_warning_beside_others(tmp_path, capsys):
    empty = tmp_path / "gaps.fa"
    empty.write_text(">gap1\n" + "N" * 900 + "\n>tiny\nAC\n")
    assert _run(YEAST, empty, "--k", 6, "--out", tmp_path / "o") == 0
    err = capsys.readouterr().err
    assert f"warning: {empty}: no usable sequence" in err
    meta = json.loads((tmp_path / "o" / "preprocess.json").read_text())
    skipped = meta["genomes"][1]["records"]["skipped"]
    assert skipped["all_n"]["examples"] == ["gap1"] and skipped["shorter_than_k"]["examples"] == ["tiny"]
    assert meta["genomes"][1]["splits"]["train"]["chunks"] == 0
    assert _run(empty, "--k", 6, "--out", tmp_path / "p") == 1
    assert "no usable sequence" in capsys.readouterr().err and not (tmp_path / "p").exists()
