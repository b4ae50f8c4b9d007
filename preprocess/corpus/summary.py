"""What a corpus build reports: per-record tallies, ``preprocess.json`` and the one-line summary."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

SKIP_REASONS = {
    "shorter_than_k": "shorter than k",
    "all_n": "no A/C/G/T base (all N)",
    "no_chunk": "no A/C/G/T run long enough for a chunk",
}
MAX_SKIP_EXAMPLES = 10


@dataclass
class RecordStats:
    """One record's outcome, as a worker reports it."""

    name: str
    bases: int
    acgt_bases: int = 0
    chunked_bases: int = 0
    skipped: str | None = None  # a key of SKIP_REASONS


@dataclass
class RecordTally:
    """Totals over all records, kept by the main process in record order."""

    total: int = 0
    used: int = 0
    bases: dict = field(default_factory=lambda: {"total": 0, "acgt": 0, "chunked": 0})
    skipped: dict = field(default_factory=lambda: {reason: {"count": 0, "examples": []} for reason in SKIP_REASONS})

    def add(self, record: RecordStats) -> None:
        self.total += 1
        self.bases["total"] += record.bases
        self.bases["acgt"] += record.acgt_bases
        self.bases["chunked"] += record.chunked_bases
        if record.skipped is None:
            self.used += 1
            return
        entry = self.skipped[record.skipped]
        entry["count"] += 1
        if len(entry["examples"]) < MAX_SKIP_EXAMPLES:
            entry["examples"].append(record.name)

    def records(self) -> dict:
        """The ``records`` entry of ``preprocess.json``."""
        return {
            "total": self.total,
            "used": self.used,
            "skipped_total": sum(v["count"] for v in self.skipped.values()),
            "skipped": self.skipped,
        }


def describe_skipped(skipped: dict) -> str:
    """``"1 shorter than k, 2 no A/C/G/T base (all N)"``: the non-zero skip counts in words."""
    return ", ".join(f"{v['count']} {SKIP_REASONS[k]}" for k, v in skipped.items() if v["count"])


@dataclass
class CorpusSummary:
    """The content of ``preprocess.json``."""

    source: str
    source_format: str
    tokenizer: str
    k: int | None
    stride: int | None
    """k-mers: 1 (overlapping) or k (non-overlapping); None for SentencePiece."""
    seed: int
    valid_fraction: float
    reverse_complement: bool
    output_format: str
    chunking: dict
    records: dict
    bases: dict
    duplicates_removed: int
    splits: dict
    files: list
    seconds: float
    warnings: list
    genomes: list = field(default_factory=list)
    """Per genome: source, format, sample fraction, records, bases, sampled_out, duplicates_removed, splits."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    def one_line(self) -> str:
        train, valid = self.splits["train"], self.splits.get("valid", {"chunks": 0, "tokens": 0})
        skip_text = describe_skipped(self.records["skipped"])
        return (
            f"{self.records['used']} records -> train {train['chunks']} chunks / {train['tokens']} tokens, "
            f"valid {valid['chunks']} chunks / {valid['tokens']} tokens; "
            f"{self.duplicates_removed} duplicates removed; "
            f"skipped {self.records['skipped_total']} records" + (f" ({skip_text})" if skip_text else "")
            + f"; {self.bases['total'] / 1e6:.2f} Mbp in {self.seconds:.1f} s"
        )
