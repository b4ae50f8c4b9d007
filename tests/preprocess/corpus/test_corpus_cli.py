import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from genemask_preprocess.corpus import build
from genemask_preprocess.corpus.cli import main
from genemask_preprocess.formats.indexed_dataset import read_indexed_dataset
from genemask_preprocess.kmers import all_kmers, reverse_complement_dna

REPO = Path(__file__).resolve().parents[3]
FRAGMENTS = REPO / "data" / "genomes" / "human_fewshot_fragments.fa.gz"
BIN = Path(sys.executable).parent


def _dna(n, seed):
    return "".join(np.random.default_rng(seed).choice(list("ACGT"), size=n))


@pytest.fixture
def genome(tmp_path):
    """A small genome with gaps, soft-masking, an IUPAC letter and a repeated record."""
    chr1 = _dna(6000, 1) + "N" * 300 + _dna(2500, 2).lower() + "R" + _dna(1800, 3)
    chr2 = _dna(4000, 4)
    text = f">chr1 test\n{chr1}\n>chr2\n{chr2}\n>chr2_copy\n{chr2}\n"
    path = tmp_path / "genome.fa"
    path.write_text(text)
    return path


def _run(*args):
    return main([str(a) for a in args])


def _load(out, split="train"):
    return read_indexed_dataset(out / split)


def _items(out, split="train"):
    tokens, sizes = _load(out, split)
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    return [tokens[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _dna_of(item, k):
    kmers = all_kmers(k)
    body = [kmers[t - 4] for t in item[:-1]]
    return body[0] + "".join(km[-1] for km in body[1:])


def test_fragments_end_to_end_loads_in_fairseq(tmp_path, capsys):
    out = tmp_path / "data"
    assert _run(FRAGMENTS, "--k", 6, "--out", out, "--workers", 1) == 0
    err = capsys.readouterr().err
    assert "bp" in err and "21566 records" in err and "skipped 0 records" in err
    meta = json.loads((out / "preprocess.json").read_text())
    assert meta["k"] == 6 and meta["seed"] == 1 and meta["records"]["total"] == 21566
    assert sorted(os.listdir(out)) == ["dict.txt", "preprocess.json", "train.bin", "train.idx", "valid.bin", "valid.idx"]
    from fairseq.data import Dictionary, data_utils

    dictionary = Dictionary.load(str(out / "dict.txt"))
    for split in ("train", "valid"):
        dataset = data_utils.load_indexed_dataset(str(out / split), dictionary, dataset_impl=None)
        assert len(dataset) == meta["splits"][split]["chunks"]
        assert int(dataset.sizes.sum()) == meta["splits"][split]["tokens"]
        assert dataset[0][-1].item() == dictionary.eos()
    n_valid = meta["splits"]["valid"]["chunks"]
    assert 0.07 < n_valid / (n_valid + meta["splits"]["train"]["chunks"]) < 0.13
    # Every item is a substring of the genome, and no item appears twice across splits.
    import pysam

    genome = "|".join(r.sequence.upper() for r in pysam.FastxFile(str(FRAGMENTS)))
    items = _items(out) + _items(out, "valid")
    for item in items[::500]:
        assert _dna_of(item, 6) in genome
    assert len({item.tobytes() for item in items}) == len(items)


def test_output_does_not_depend_on_worker_count_but_on_seed(tmp_path, genome):
    outs = {}
    for name, extra in {"w1": ["--workers", 1], "w2": ["--workers", 2], "s2": ["--workers", 1, "--seed", 2]}.items():
        outs[name] = tmp_path / name
        assert _run(genome, "--k", 5, "--out", outs[name], "--quiet", "--valid-fraction", 0.3, *extra) == 0
    for split in ("train", "valid"):
        for ext in ("bin", "idx"):
            assert (outs["w1"] / f"{split}.{ext}").read_bytes() == (outs["w2"] / f"{split}.{ext}").read_bytes()
    assert (outs["w1"] / "train.bin").read_bytes() != (outs["s2"] / "train.bin").read_bytes()


def test_no_item_appears_twice_across_splits(tmp_path, genome):
    out = tmp_path / "o"
    assert _run(genome, "--k", 4, "--out", out, "--quiet", "--valid-fraction", 0.4, "--max-start-offset", 0) == 0
    train, valid = _items(out), _items(out, "valid")
    assert train and valid
    keys = [item.tobytes() for item in train + valid]
    assert len(set(keys)) == len(keys)


def test_results_spooled_through_files_give_the_same_output(tmp_path, genome, monkeypatch):
    spooled = []
    real_unspool = build._unspool

    def watch(result):
        spooled.append(result.tokens_file is not None)
        return real_unspool(result)

    monkeypatch.setattr(build, "_SPOOL_BYTES", 1)  # forked workers inherit it
    monkeypatch.setattr(build, "_unspool", watch)
    monkeypatch.setattr(build, "_BATCH_BASES", 3000)  # several batches
    a, b = tmp_path / "a", tmp_path / "b"
    assert _run(genome, "--k", 6, "--out", a, "--quiet", "--workers", 1, "--reverse-complement") == 0
    assert _run(genome, "--k", 6, "--out", b, "--quiet", "--workers", 2, "--reverse-complement") == 0
    assert len(spooled) >= 3 and all(spooled)
    for name in ("train.bin", "train.idx", "valid.bin", "valid.idx"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert sorted(os.listdir(b)) == ["dict.txt", "preprocess.json", "train.bin", "train.idx", "valid.bin", "valid.idx"]


def test_exact_duplicate_records_are_removed(tmp_path):
    path = tmp_path / "dup.fa"
    seq = _dna(300, 7)
    path.write_text(f">a\n{seq}\n>b\n{seq}\n>c\n{_dna(300, 8)}\n")
    out = tmp_path / "o"
    options = ["--chunk-length", 300, "--min-chunk-length", 300, "--max-start-offset", 0]
    assert _run(path, "--k", 3, "--out", out, "--quiet", "--valid-fraction", 0, *options) == 0
    meta = json.loads((out / "preprocess.json").read_text())
    assert meta["duplicates_removed"] == 1
    assert sorted(_dna_of(i, 3) for i in _items(out)) == sorted([seq, _dna(300, 8)])
    assert not (out / "valid.bin").exists()


def test_reverse_complement_adds_rc_items_in_the_same_split(tmp_path, genome):
    plain, rc = tmp_path / "plain", tmp_path / "rc"
    assert _run(genome, "--k", 6, "--out", plain, "--quiet") == 0
    assert _run(genome, "--k", 6, "--out", rc, "--quiet", "--reverse-complement") == 0
    for split in ("train", "valid"):
        forward = {_dna_of(i, 6) for i in _items(plain, split)}
        both = {_dna_of(i, 6) for i in _items(rc, split)}
        assert forward <= both
        assert {reverse_complement_dna(s) for s in forward} <= both
        assert len(both) <= 2 * len(forward)


def test_text_format_binarized_by_fairseq_preprocess_is_identical(tmp_path, genome):
    binary, text, fairseq_out = tmp_path / "bin", tmp_path / "txt", tmp_path / "fs"
    args = [genome, "--k", 6, "--quiet", "--reverse-complement", "--valid-fraction", 0.3]
    assert _run(*args, "--out", binary) == 0
    assert _run(*args, "--out", text, "--format", "text") == 0
    assert sorted(os.listdir(text)) == ["dict.txt", "preprocess.json", "train.txt", "valid.txt"]
    first = (text / "train.txt").read_text().splitlines()[0].split()
    assert all(len(kmer) == 6 for kmer in first) and first[0][1:] == first[1][:-1]
    subprocess.run(
        [BIN / "fairseq-preprocess", "--only-source", "--srcdict", text / "dict.txt",
         "--trainpref", text / "train.txt", "--validpref", text / "valid.txt",
         "--destdir", fairseq_out, "--workers", "1"],
        check=True, capture_output=True,
    )
    for split in ("train", "valid"):
        ours, theirs = _load(binary, split), _load(fairseq_out, split)
        assert ours[0].size > 0
        assert np.array_equal(ours[0], theirs[0]) and np.array_equal(ours[1], theirs[1])
        assert (binary / f"{split}.bin").read_bytes() == (fairseq_out / f"{split}.bin").read_bytes()
        assert (binary / f"{split}.idx").read_bytes() == (fairseq_out / f"{split}.idx").read_bytes()


def _decoded(out, split="train"):
    """Each item's DNA, read back through its own dict.txt (either stride)."""
    from genemask_preprocess.formats.fairseq_dictionary import read_dictionary_symbols
    from genemask_preprocess.kmers import tokenization_of_symbols

    symbols = read_dictionary_symbols(out / "dict.txt")
    tokenization = tokenization_of_symbols(symbols)
    return [tokenization.dna_of_symbols([symbols[t] for t in item[:-1]]) for item in _items(out, split)]


@pytest.mark.parametrize(("k", "stride"), [(6, 6), (3, 3), (1, 1)])
def test_stride_k_and_single_nucleotide_corpora_decode_back_to_their_dna(tmp_path, genome, k, stride):
    """The same chunks as overlapping 6-mers (the chunking and split do not depend on the tokenization)."""
    overlapping, strided = tmp_path / "overlapping", tmp_path / "strided"
    args = [genome, "--quiet", "--reverse-complement", "--valid-fraction", 0.3, "--min-chunk-length", 6]
    assert _run(*args, "--k", 6, "--out", overlapping) == 0
    assert _run(*args, "--k", k, "--stride", stride, "--out", strided) == 0
    meta = json.loads((strided / "preprocess.json").read_text())
    assert (meta["k"], meta["stride"]) == (k, stride)
    for split in ("train", "valid"):
        dna = _decoded(strided, split)
        assert dna == _decoded(overlapping, split) and len(dna) > 10
        lengths = np.array([len(s) for s in dna])
        assert [len(item) - 1 for item in _items(strided, split)] == (lengths // k + lengths % k).tolist()
        assert (lengths % k > 0).any() or k == 1  # the remainder rule is exercised
    text = tmp_path / "text"
    assert _run(*args, "--k", k, "--stride", stride, "--out", text, "--format", "text") == 0
    lines = (text / "train.txt").read_text().splitlines()
    assert ["".join(line.split()) for line in lines] == _decoded(strided)


def test_a_stride_other_than_1_or_k_is_refused(tmp_path, capsys, genome):
    _assert_fails(capsys, [genome, "--k", 6, "--stride", 3, "--out", tmp_path / "o"],
                  "--stride must be 1 (overlapping k-mers) or --k 6 (non-overlapping 6-mers), got 3", tmp_path / "o")
    _assert_fails(capsys, [genome, "--tokenizer", "sentencepiece", "--stride", 6, "--out", tmp_path / "o"],
                  "--stride applies to the k-mer tokenizer only", tmp_path / "o")


def test_crlf_fasta_gives_identical_tokens(tmp_path, genome):
    crlf = tmp_path / "crlf.fa"
    crlf.write_bytes(genome.read_bytes().replace(b"\n", b"\r\n"))
    a, b = tmp_path / "a", tmp_path / "b"
    assert _run(genome, "--k", 6, "--out", a, "--quiet") == 0
    assert _run(crlf, "--k", 6, "--out", b, "--quiet") == 0
    for name in ("train.bin", "train.idx", "valid.bin", "valid.idx"):
        assert (a / name).read_bytes() == (b / name).read_bytes()


def test_tsv_of_kmers_gives_the_same_tokens_as_fasta_of_the_dna(tmp_path):
    seqs = [_dna(70, s) for s in range(30)]
    tsv = tmp_path / "x.tsv"
    tsv.write_text("sequence\tlabel\n" + "".join(" ".join(s[i : i + 6] for i in range(65)) + "\t1\n" for s in seqs))
    out = tmp_path / "o"
    assert _run(tsv, "--k", 6, "--out", out, "--quiet") == 0
    found = {_dna_of(i, 6) for i in _items(out) + _items(out, "valid")}
    assert found and all(any(piece in s for s in seqs) for piece in found)
    assert json.loads((out / "preprocess.json").read_text())["source_format"] == "tsv"


def test_skipped_records_are_counted(tmp_path, capsys):
    path = tmp_path / "g.fa"
    path.write_text(f">short\nACG\n>gap\n{'N' * 50}\n>tiny_runs\nACGTNACGTN\n>good\n{_dna(2000, 1)}\n")
    out = tmp_path / "o"
    assert _run(path, "--k", 4, "--out", out) == 0
    skipped = json.loads((out / "preprocess.json").read_text())["records"]["skipped"]
    assert skipped["shorter_than_k"] == {"count": 1, "examples": ["short"]}
    assert skipped["all_n"] == {"count": 1, "examples": ["gap"]}
    assert skipped["no_chunk"] == {"count": 1, "examples": ["tiny_runs"]}
    assert "skipped 3 records (1 shorter than k, 1 no A/C/G/T base (all N)" in capsys.readouterr().err


def _assert_fails(capsys, args, message, out=None):
    code = _run(*args)
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert err.startswith("genemask-preprocess: error:") and message in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    if out is not None:
        assert not Path(out).exists() or not os.listdir(out)
        assert not [p for p in Path(out).parent.iterdir() if p.name.startswith(f".{Path(out).name}.tmp")]


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such file"),
        (b"", "file is empty"),
        (b"just some words\nand more\n", "not a FASTA"),
        (bytes(range(256)) * 8, "binary content"),
        (b">a\nACG\n>b\nNNNNNNNN\n", "no usable sequence: all 2 records were skipped"),
        (b">a\nACGTACGTAAAA\n>a\nACGTACGTAAAA\n", "duplicate record name 'a'"),
    ],
)
def test_bad_input_is_one_line_error_and_no_output(tmp_path, capsys, content, message):
    path = tmp_path / "in.fa"
    if content is not None:
        path.write_bytes(content)
    out = tmp_path / "out"
    _assert_fails(capsys, [path, "--k", 3, "--out", out, "--quiet"], message, out)


def test_unreadable_file(tmp_path, capsys, monkeypatch, genome):
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if str(p) == str(genome) else real_access(p, m))
    _assert_fails(capsys, [genome, "--k", 3, "--out", tmp_path / "o"], "permission denied", tmp_path / "o")


@pytest.mark.parametrize("k", [0, 8, -3])
def test_k_out_of_range(tmp_path, capsys, genome, k):
    _assert_fails(capsys, [genome, "--k", k, "--out", tmp_path / "o"], "k must be an integer from 1 to 7", tmp_path / "o")


def test_existing_output_needs_force_and_force_keeps_foreign_files(tmp_path, capsys, genome):
    out = tmp_path / "o"
    assert _run(genome, "--k", 3, "--out", out, "--quiet", "--format", "text") == 0
    (out / "notes.md").write_text("mine")
    before = (out / "train.txt").read_bytes()
    _assert_fails(capsys, [genome, "--k", 3, "--out", out], "already holds files; pass --force")
    assert (out / "train.txt").read_bytes() == before
    assert _run(genome, "--k", 3, "--out", out, "--quiet", "--force") == 0
    assert sorted(os.listdir(out)) == sorted(
        ["notes.md", "dict.txt", "preprocess.json", "train.bin", "train.idx", "valid.bin", "valid.idx"]
    )
    file_out = tmp_path / "file"
    file_out.write_text("x")
    _assert_fails(capsys, [genome, "--k", 3, "--out", file_out, "--force"], "not a directory")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _run(genome, "--k", 3, "--out", empty, "--quiet") == 0


def test_failure_midway_leaves_no_partial_output(tmp_path, genome, monkeypatch):
    def explode(*args):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(build, "_write_result", explode)
    out = tmp_path / "o"
    with pytest.raises(RuntimeError, match="disk on fire"):
        _run(genome, "--k", 3, "--out", out, "--quiet")
    assert os.listdir(tmp_path) == ["genome.fa"]


def test_console_script_exit_code_without_traceback(tmp_path):
    result = subprocess.run(
        [BIN / "genemask-preprocess", tmp_path / "missing.fa", "--k", "6", "--out", tmp_path / "o"],
        capture_output=True, text=True,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == f"genemask-preprocess: error: {tmp_path / 'missing.fa'}: no such file"


def test_sentencepiece_tokenizer(tmp_path):
    from genemask_preprocess.corpus.sentencepiece_tokenizer import SentencePieceEncoder

    path = tmp_path / "g.fa"
    motif = "TATAAAAGGCGCGCC"
    path.write_text("".join(f">r{i}\n{_dna(400, i)}{motif * 3}{_dna(300, 100 + i)}\n" for i in range(40)))
    out = tmp_path / "sp"
    args = ["--tokenizer", "sentencepiece", "--sp-vocab-size", 200, "--out", out, "--quiet", "--reverse-complement"]
    assert _run(path, *args) == 0
    assert {"spm.model", "spm.vocab", "dict.txt", "train.bin", "valid.bin"} <= set(os.listdir(out))
    encoder = SentencePieceEncoder(out / "spm.model")
    symbols = (out / "dict.txt").read_text().split()[::2]
    assert symbols == encoder.pieces and len(symbols) == 199
    assert max(len(s) for s in symbols) > 4  # BPE merged multi-base pieces
    from fairseq.data import Dictionary

    dictionary = Dictionary.load(str(out / "dict.txt"))
    raw = "".join(_dna(400, i) + motif * 3 + _dna(300, 100 + i) for i in range(40))
    items = _items(out)
    assert len(items) > 10
    for item in items[:20]:
        assert item[-1] == 2
        dna = "".join(dictionary[t] for t in item[:-1])
        assert dna in raw or reverse_complement_dna(dna) in raw
    text_out = tmp_path / "sp_text"
    assert _run(path, *args[:-4], "--out", text_out, "--quiet", "--reverse-complement", "--format", "text") == 0
    lines = (text_out / "train.txt").read_text().splitlines()
    assert [line.split() for line in lines] == [[dictionary[t] for t in item[:-1]] for item in items]
    _assert_sp_k_conflict(tmp_path, path)


def _assert_sp_k_conflict(tmp_path, path):
    assert _run(path, "--tokenizer", "sentencepiece", "--k", 6, "--out", tmp_path / "x", "--quiet") == 1


def test_truncated_genome_is_one_line_on_the_real_stderr(tmp_path):
    import pysam

    source = tmp_path / "g.fa"
    source.write_text(">a\n" + _dna(300_000, 3) + "\n")
    pysam.tabix_compress(str(source), str(source) + ".gz")
    cut = tmp_path / "cut.fa.gz"
    cut.write_bytes((tmp_path / "g.fa.gz").read_bytes()[:40_000])
    result = subprocess.run(
        [BIN / "genemask-preprocess", cut, "--k", "6", "--out", tmp_path / "o"], capture_output=True, text=True
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.replace("\r", "\n").splitlines() if line.strip()]
    assert lines[-1].startswith("genemask-preprocess: error:") and "truncated or corrupt" in lines[-1]
    assert not any("[E::" in line or "Traceback" in line for line in lines)
    assert not (tmp_path / "o").exists()


def test_force_replaces_exactly_the_files_this_tool_writes(tmp_path, genome):
    out = tmp_path / "o"
    out.mkdir()
    (out / "train.notes").write_text("mine")  # a train.* name that the tool never writes
    (out / "valid.txt").write_text("stale")  # a name it writes, but not in binary format
    assert _run(genome, "--k", 3, "--out", out, "--quiet", "--force") == 0
    assert (out / "train.notes").read_text() == "mine"
    assert not (out / "valid.txt").exists()
    assert set(build.OUTPUT_FILES) >= {"train.bin", "valid.txt", "spm.model", "preprocess.json"}


def test_genome_is_opened_and_checked_once(tmp_path, genome, monkeypatch):
    opened = []
    real_open = build.open_genome
    monkeypatch.setattr(build, "open_genome", lambda path: opened.append(path) or real_open(path))
    assert _run(genome, "--k", 3, "--out", tmp_path / "o") == 0
    assert opened == [str(genome)]
