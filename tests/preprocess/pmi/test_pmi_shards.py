"""Sharded counting: shards merge to the whole, bit for bit; merge refuses shards that do not fit."""

import gzip
from pathlib import Path

import numpy as np
import pytest

from genemask_preprocess.formats.genome import open_genome
from genemask_preprocess.formats.ngram_counts_file import load_counts, read_shard_metadata
from genemask_preprocess.pmi.cli import main
from genemask_preprocess.pmi.ngram_counts import plan_count, run_count
from genemask_preprocess.pmi.shards import ShardError, merge_counts, parse_shard, shard_slice

REPO = Path(__file__).resolve().parents[3]
YEAST = REPO / "data" / "genomes" / "S288C_chr01_chr06.fa.gz"


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def _same_npz(a, b):
    with np.load(a) as x, np.load(b) as y:
        assert sorted(x.files) == sorted(y.files)
        for key in x.files:
            assert x[key].dtype == y[key].dtype, key
            assert x[key].tobytes() == y[key].tobytes(), key


def _count_shards(capsys, genomes, n_shards, folder, *options):
    folder.mkdir(exist_ok=True)
    paths = []
    for index in range(n_shards):
        path = folder / f"shard{index}.npz"
        code, err = _run(capsys, "count", *genomes, *options, "--shard", f"{index}/{n_shards}", "--out", path,
                         "--workers", 1, "--quiet")
        assert code == 0, err
        paths.append(path)
    return paths


def _record_bounds(genomes):
    bounds, offset = {0}, 0
    for genome in genomes:
        for record in open_genome(genome).records():
            offset += len(record.sequence)
            bounds.add(offset)
    return bounds, offset


@pytest.mark.parametrize("n_shards", [1, 3, 7])
def test_shards_merge_to_a_single_count_byte_for_byte(tmp_path, capsys, n_shards):
    whole = tmp_path / "whole.npz"
    assert _run(capsys, "count", YEAST, "--max-n", 8, "--out", whole, "--quiet")[0] == 0
    shards = _count_shards(capsys, [YEAST], n_shards, tmp_path / "shards", "--max-n", 8)
    # The cuts fall inside records, not only between them.
    record_bounds, total = _record_bounds([YEAST])
    cuts = {read_shard_metadata(path)["start"] for path in shards} - {0}
    assert read_shard_metadata(shards[-1])["stop"] == total
    if n_shards > 1:
        assert cuts and not cuts & record_bounds
    merged = tmp_path / "merged.npz"
    code, err = _run(capsys, "merge", *reversed(shards), "--out", merged)
    assert code == 0, err
    _same_npz(whole, merged)
    for variant in ("levine", "paper"):
        tables = []
        for counts in (whole, merged):
            table = tmp_path / f"{counts.stem}.{variant}.tsv"
            assert _run(capsys, "score", counts, "--variant", variant, "--min-count", 5, "--out", table)[0] == 0
            tables.append(table.read_bytes())
        assert tables[0] == tables[1]


def test_sparse_lengths_and_both_strands_merge_exactly(tmp_path, capsys):
    whole = tmp_path / "whole.npz"
    options = ("--max-n", 14, "--both-strands")
    assert _run(capsys, "count", YEAST, *options, "--out", whole, "--quiet")[0] == 0
    shards = _count_shards(capsys, [YEAST], 4, tmp_path / "shards", *options)
    merged = tmp_path / "merged.npz"
    assert _run(capsys, "merge", *shards, "--out", merged, "--quiet")[0] == 0
    _same_npz(whole, merged)
    with np.load(merged) as arrays:
        assert "codes_14" in arrays.files and bool(arrays["both_strands"])


def _random_genome(path, rng, lengths, opener=open):
    with opener(path, "wt") as handle:
        for i, length in enumerate(lengths):
            seq = np.frombuffer(b"ACGT", np.uint8)[rng.integers(0, 4, length)].copy()
            if length > 50:
                seq[rng.integers(0, length - 5, 3)] = ord("N")
            handle.write(f">r{i}\n{seq.tobytes().decode()}\n")


def test_many_small_shards_and_pieces_count_every_window_once(tmp_path):
    rng = np.random.default_rng(7)
    genome = tmp_path / "g.fa"
    _random_genome(genome, rng, [0, 3, 40, 1, 700, 9, 2000, 5])
    whole = run_count(plan_count(genome, 6))
    total = sum(len(r.sequence) for r in open_genome(genome).records())
    for n_shards in (2, 5, 13, 200):  # more shards than records, some with no base at all
        parts = []
        for index in range(n_shards):
            piece = shard_slice(index, n_shards, total)
            plan = plan_count(genome, 6, base_range=(piece.start, piece.stop), piece_bases=37)
            parts.append(run_count(plan))
        merged = merge_counts(parts)
        assert merged.lengths == whole.lengths
        for n in whole.lengths:
            assert np.array_equal(merged.codes(n), whole.codes(n)) and np.array_equal(merged.counts(n), whole.counts(n))


def test_two_genomes_count_as_one_file_holding_both(tmp_path, capsys):
    records = list(open_genome(YEAST).records())
    first, second = tmp_path / "chr01.fa", tmp_path / "chr06.fa.gz"
    first.write_text(f">{records[0].name}\n{records[0].sequence}\n")
    with gzip.open(second, "wt") as handle:
        handle.write(f">{records[1].name}\n{records[1].sequence}\n")
    whole, both = tmp_path / "whole.npz", tmp_path / "both.npz"
    assert _run(capsys, "count", YEAST, "--max-n", 7, "--out", whole, "--quiet")[0] == 0
    assert _run(capsys, "count", first, second, "--max-n", 7, "--out", both, "--quiet", "--workers", 2)[0] == 0
    _same_npz(whole, both)
    # Sharded over the two files, a cut inside each file.
    shards = _count_shards(capsys, [first, second], 3, tmp_path / "shards", "--max-n", 7)
    inputs = read_shard_metadata(shards[0])["inputs"]
    assert [i["name"] for i in inputs] == ["chr01.fa", "chr06.fa.gz"]
    assert inputs[0]["size"] == first.stat().st_size and len(inputs[0]["sha256"]) == 64
    merged = tmp_path / "merged.npz"
    assert _run(capsys, "merge", *shards, "--out", merged, "--quiet")[0] == 0
    _same_npz(whole, merged)


@pytest.fixture()
def small(tmp_path):
    rng = np.random.default_rng(2)
    genome, other = tmp_path / "g.fa", tmp_path / "h.fa"
    _random_genome(genome, rng, [3000, 2000])
    _random_genome(other, rng, [3000, 2000])
    return genome, other


def _shard(capsys, genome, spec, out, *options):
    code, err = _run(capsys, "count", genome, "--max-n", 4, "--shard", spec, "--out", out, "--quiet", *options)
    assert code == 0, err
    return out


def _refused(capsys, tmp_path, *shards):
    out = tmp_path / "merged.npz"
    code, err = _run(capsys, "merge", *shards, "--out", out)
    assert code == 1 and not out.exists()
    assert len(err.strip().splitlines()) == 1 and err.startswith("genemask-pmi: error: ")
    return err.strip()


def test_merge_refuses_a_different_max_n(tmp_path, capsys, small):
    a = _shard(capsys, small[0], "0/2", tmp_path / "a.npz")
    b = tmp_path / "b.npz"
    assert _run(capsys, "count", small[0], "--max-n", 5, "--shard", "1/2", "--out", b, "--quiet")[0] == 0
    assert "--max-n 5 differs" in _refused(capsys, tmp_path, a, b)


def test_merge_refuses_a_different_strand_setting(tmp_path, capsys, small):
    a = _shard(capsys, small[0], "0/2", tmp_path / "a.npz")
    b = _shard(capsys, small[0], "1/2", tmp_path / "b.npz", "--both-strands")
    assert "--both-strands differs" in _refused(capsys, tmp_path, a, b)


def test_merge_refuses_different_inputs(tmp_path, capsys, small):
    a = _shard(capsys, small[0], "0/2", tmp_path / "a.npz")
    b = _shard(capsys, small[1], "1/2", tmp_path / "b.npz")
    assert "different inputs" in _refused(capsys, tmp_path, a, b)
    # The same name with other content: the checksum tells them apart.
    changed = tmp_path / "changed" / "g.fa"
    changed.parent.mkdir()
    changed.write_text(small[0].read_text().replace("A", "C", 1))
    c = _shard(capsys, changed, "1/2", tmp_path / "c.npz")
    assert "g.fa has another size or checksum" in _refused(capsys, tmp_path, a, c)


def test_merge_refuses_a_duplicate_and_a_missing_shard(tmp_path, capsys, small):
    shards = [_shard(capsys, small[0], f"{i}/4", tmp_path / f"s{i}.npz") for i in range(4)]
    copy = tmp_path / "copy.npz"
    copy.write_bytes(shards[2].read_bytes())
    err = _refused(capsys, tmp_path, *shards, copy)
    assert "duplicate shard 2/4" in err and "s2.npz" in err and "copy.npz" in err
    err = _refused(capsys, tmp_path, shards[0], shards[2])
    assert err.endswith("missing 2 of 4 shards: 1/4, 3/4")
    assert _run(capsys, "merge", *shards, "--out", tmp_path / "m.npz")[0] == 0


def test_merge_refuses_a_different_shard_count_and_non_shards(tmp_path, capsys, small):
    a = _shard(capsys, small[0], "0/2", tmp_path / "a.npz")
    b = _shard(capsys, small[0], "1/3", tmp_path / "b.npz")
    assert "split into 3 shards" in _refused(capsys, tmp_path, a, b)
    whole = tmp_path / "whole.npz"
    assert _run(capsys, "count", small[0], "--max-n", 4, "--out", whole, "--quiet")[0] == 0
    assert "not a shard" in _refused(capsys, tmp_path, a, whole)


def test_bad_shard_options_are_one_line_errors(tmp_path, capsys, small):
    for spec in ("3/3", "1", "a/b", "0/0", "-1/2"):
        code, err = _run(capsys, "count", small[0], f"--shard={spec}", "--out", tmp_path / "x.npz")
        assert code == 1 and len(err.strip().splitlines()) == 1 and "--shard" in err, (spec, err)
    code, err = _run(capsys, "count", small[0], "--shard", "0/2", "--tsv", "--out", tmp_path / "x.tsv")
    assert code == 1 and "binary format only" in err
    with pytest.raises(ShardError):
        parse_shard("2/2")
    assert not list(tmp_path.glob("x.*"))


def test_a_rerun_skips_a_shard_already_done_and_recounts_a_changed_one(tmp_path, capsys, small):
    out = _shard(capsys, small[0], "1/3", tmp_path / "s.npz")
    before = out.stat().st_mtime_ns
    code, err = _run(capsys, "count", small[0], "--max-n", 4, "--shard", "1/3", "--out", out)
    assert code == 0 and "already done" in err and out.stat().st_mtime_ns == before
    # Another setting is another shard: recounted.
    code, err = _run(capsys, "count", small[0], "--max-n", 3, "--shard", "1/3", "--out", out)
    assert code == 0 and "already done" not in err and read_shard_metadata(out)["max_n"] == 3
    small[0].write_text(small[0].read_text() + ">extra\nACGTACGT\n")
    code, err = _run(capsys, "count", small[0], "--max-n", 3, "--shard", "1/3", "--out", out)
    assert code == 0 and "already done" not in err
    assert read_shard_metadata(out)["inputs"][0]["size"] == small[0].stat().st_size
    assert load_counts(out).shard["index"] == 1


def test_indexed_inputs_are_read_by_region_only(tmp_path, monkeypatch):
    import pysam

    from genemask_preprocess.formats.genome import GenomeSource

    rng = np.random.default_rng(9)
    plain = tmp_path / "g.fa"
    _random_genome(plain, rng, [3000, 1, 40, 5000, 700])
    whole = run_count(plan_count(plain, 7))
    bgzipped = tmp_path / "g.fa.gz"
    pysam.tabix_compress(str(plain), str(bgzipped))
    for path in (plain, bgzipped):
        pysam.faidx(str(path))
    assert open_genome(bgzipped).index() == [("r0", 3000), ("r1", 1), ("r2", 40), ("r3", 5000), ("r4", 700)]

    def no_streaming(self):
        raise AssertionError("a shard of indexed inputs streamed a whole file")

    monkeypatch.setattr(GenomeSource, "records", no_streaming)
    for genomes in ([plain], [bgzipped, plain]):
        total = sum(open_genome(g).total_bases for g in genomes)
        for n_shards in (3, 7):
            parts = []
            for index in range(n_shards):
                piece = shard_slice(index, n_shards, total)
                plan = plan_count(genomes, 7, base_range=(piece.start, piece.stop), piece_bases=999)
                parts.append(run_count(plan))
            merged = merge_counts(parts)
            for n in whole.lengths:
                assert np.array_equal(merged.codes(n), whole.codes(n))
                assert np.array_equal(merged.counts(n), whole.counts(n) * len(genomes))


def test_merge_sums_counts_stored_as_uint64_exactly(tmp_path):
    from genemask_preprocess.formats.ngram_counts_file import NgramCounts, save_counts
    from genemask_preprocess.pmi.shards import merge_count_files

    big = 5_000_000_007  # above 2^32: stored as uint64
    codes = np.arange(4, dtype=np.int64)
    part = NgramCounts({1: (codes, np.array([big, 1, 2, 3], dtype=np.int64))})
    paths = [tmp_path / "a.npz", tmp_path / "b.npz"]
    for path in paths:
        save_counts(part, path)
    with np.load(paths[0]) as arrays:
        assert arrays["dense_1"].dtype == np.uint64
    merged = merge_count_files(paths, both_strands=False)
    assert merged.counts(1).tolist() == [2 * big, 2, 4, 6] and merged.counts(1).dtype == np.int64
