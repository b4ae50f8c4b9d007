"""Tests of the strategy registry: its entries, its rules for the code base, the docs table, and adding a strategy."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fairseq import options

from genemask_plugin.masking import strategies
from genemask_plugin.masking.collocations import CollocationUnits
from genemask_plugin.masking.config import MaskingConfig
from genemask_plugin.masking.curricula import (
    BoundarySchedule,
    PerplexityPlateauSwitch,
    StepwiseSchedule,
)
from genemask_plugin.masking.score_lookup import ScoresByPosition, ScoresByToken
from genemask_plugin.masking.spans import MaskSelection, draw_centres
from genemask_plugin.masking.strategies import (
    STRATEGIES,
    MaskStrategy,
    select_mask_spans,
    strategy_named,
)
from genemask_plugin.tasks.genemask_mlm import GeneMaskMLMConfig, GeneMaskMLMTask
from genemask_preprocess.corpus.cli import main as preprocess_main
from genemask_preprocess.formats.pmi_table import PMI_TABLE_VIEWS

REPO = Path(__file__).resolve().parents[3]
REGISTRY = REPO / "genemask_plugin" / "masking" / "strategies.py"
DOCS = REPO / "docs" / "genemask_mlm.md"
TABLE = REPO / "data" / "pmi" / "human_fragments.pmi.tsv"
PLAIN = ["genemask", "kmer_span", "random", "genemask_position", "global_pmi"]


def test_the_registry_holds_every_strategy_in_order():
    assert list(STRATEGIES) == [*PLAIN, "cm_gems", "cm_step", "variable_span", "random_mask", "pmi_span"]
    assert all(name == entry.name for name, entry in STRATEGIES.items())
    assert {n for n, e in STRATEGIES.items() if e.needs_pmi_table} == {
        "genemask", "genemask_position", "global_pmi", "cm_gems", "cm_step", "pmi_span"}
    assert STRATEGIES["pmi_span"].score_lookup is CollocationUnits and STRATEGIES["pmi_span"].pmi_lookup is CollocationUnits
    assert strategies.CM_GEMS.pmi_lookup is ScoresByToken and strategies.KMER_SPAN.pmi_lookup is None
    views = {entry.pmi_lookup.table_view for entry in STRATEGIES.values() if entry.needs_pmi_table}
    assert views == set(PMI_TABLE_VIEWS) == {"token_scores", "collocations"}  # every view has its reader
    assert [n for n, e in STRATEGIES.items() if e.global_spans] == ["global_pmi"]
    assert STRATEGIES["genemask"].score_lookup is ScoresByToken
    assert STRATEGIES["genemask_position"].score_lookup is ScoresByPosition
    assert STRATEGIES["kmer_span"].score_lookup is None and STRATEGIES["random"].score_lookup is None
    assert [c.name for c in strategies.CM_GEMS.candidates] == ["genemask", "global_pmi"]
    assert [c.name for c in strategies.CM_STEP.candidates] == ["kmer_span", "global_pmi"]
    assert strategies.CM_GEMS.curriculum is PerplexityPlateauSwitch
    assert strategies.CM_STEP.curriculum is StepwiseSchedule
    assert [c.name for c in strategies.RANDOM_MASK.candidates] == ["variable_span"]
    assert strategies.RANDOM_MASK.curriculum is BoundarySchedule and strategies.RANDOM_MASK.candidate_configs
    assert not strategies.RANDOM_MASK.needs_pmi_table and not strategies.VARIABLE_SPAN.is_curriculum
    assert [n for n, e in STRATEGIES.items() if e.paper_centre_prob_k is None] == ["random", "pmi_span"]


def test_lookup_of_an_unknown_name_is_one_line_listing_the_choices():
    with pytest.raises(ValueError) as caught:
        strategy_named("pmi")
    assert str(caught.value) == f"unknown mask strategy 'pmi'; choose from {', '.join(STRATEGIES)}"
    assert strategy_named("kmer_span") is strategies.KMER_SPAN


def test_entries_are_checked_when_made_and_registered():
    with pytest.raises(ValueError, match="already registered"):
        strategies.register(strategies.KMER_SPAN)
    with pytest.raises(ValueError, match="no select function"):
        MaskStrategy("x", "x", 0.1)
    with pytest.raises(ValueError, match="two or more candidates and a rule"):
        MaskStrategy("x", "x", 0.1, candidates=(strategies.KMER_SPAN,), curriculum=StepwiseSchedule)
    with pytest.raises(ValueError, match="selects through its candidates"):
        MaskStrategy("x", "x", 0.1, select=strategies.KMER_SPAN.select,
                     candidates=(strategies.KMER_SPAN, strategies.RANDOM), curriculum=StepwiseSchedule)
    with pytest.raises(ValueError, match="cannot itself be a curriculum"):
        MaskStrategy("x", "x", 0.1, candidates=(strategies.KMER_SPAN, strategies.CM_STEP), curriculum=StepwiseSchedule)
    with pytest.raises(ValueError, match="is a curriculum"):
        select_mask_spans(np.ones(10, dtype=bool), np.random.default_rng(0), MaskingConfig("cm_step"))


def test_mask_strategy_help_is_built_from_the_entries():
    help_text = MaskingConfig.flags()["mask_strategy"].metadata["help"]
    for entry in STRATEGIES.values():
        needs = " (needs --pmi-table)" if entry.needs_pmi_table else ""
        assert f"{entry.name}: {entry.help}{needs}" in help_text
    assert "%" not in help_text  # argparse formats help with %


# ---------------------------------------------------------------- strategy names live in the registry only

SCANNED = ("genemask_plugin", "benchmarks")
COMMAND_LINE = re.compile(r"--mask-(?:strategy|curriculum)[ =](\w+)")


def strategy_name_literals(source: str, names) -> list[tuple[int, str]]:
    """``(line, text)`` of each string literal that names a strategy: one equal to a name (a choice, a
    default, a comparison, a key, an argv element), or a command line inside one (``--mask-strategy X``).

    Docstrings are documentation, and prose that mentions a strategy among other words (help text) is
    not a reference the code acts on; the same word may also mean something else (``"random"``
    k-mers). Neither is matched.
    """
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if node.value in names:
                found.append((node.lineno, node.value))
            found.extend((node.lineno, m.group(0)) for m in COMMAND_LINE.finditer(node.value) if m.group(1) in names)
    return found


def test_the_literal_scan_finds_what_it_must_and_only_that():
    source = (
        '"""Usage: --mask-strategy cm_step (a docstring)."""\n'
        'x = "global_pmi"\n'
        'if strategy == "random":\n    pass\n'
        'argv = ["--mask-strategy", "genemask", "--mask-curriculum=cm_step"]\n'
        'label = f"--mask-strategy cm_gems {x}"\n'
        'prose = "random k-mers, a kmer_span-like span"\n'
        'built = f"--mask-strategy {x}"\n'
    )
    assert sorted(strategy_name_literals(source, set(STRATEGIES))) == [
        (2, "global_pmi"), (3, "random"), (5, "--mask-curriculum=cm_step"), (5, "genemask"),
        (6, "--mask-strategy cm_gems"),
    ]


def test_no_strategy_name_is_a_literal_outside_the_registry():
    """Code in genemask_plugin/ and benchmarks/ that means a strategy refers to its entry (e.g.
    ``strategies.GENEMASK.name``). Scope: Python files of those two trees, the registry excepted; the
    tests, the shell recipes and preprocess/ (where "random" means random k-mers) are not scanned, nor
    models/position_init.py (``--position-init random``: fairseq's random initialisation)."""
    names = set(STRATEGIES)
    not_strategies = {REGISTRY, REPO / "genemask_plugin" / "models" / "position_init.py"}
    paths = sorted(path for tree in SCANNED for path in (REPO / tree).rglob("*.py") if path not in not_strategies)
    assert len(paths) > 40
    offenders = [
        f"{path.relative_to(REPO)}:{line}: {text!r}"
        for path in paths
        for line, text in strategy_name_literals(path.read_text(), names)
    ]
    assert offenders == []
    assert len(strategy_name_literals(REGISTRY.read_text(), names)) >= len(names)  # the registry names them all


def test_the_masking_package_imports_only_numpy_and_itself():
    allowed = {"numpy", *sys.stdlib_module_names}
    offenders = []
    for path in sorted((REPO / "genemask_plugin" / "masking").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            offenders += [f"{path.name}: {m}" for m in modules
                          if m.split(".")[0] not in allowed and not m.startswith("genemask_plugin.masking")]
    assert offenders == []


# ---------------------------------------------------------------- the docs


def _docs_strategy_table() -> str:
    text = DOCS.read_text()
    start = text.index("<!-- strategy table: python -m genemask_plugin.masking.strategies -->")
    end = text.index("<!-- end of strategy table -->")
    return text[text.index("\n", start) + 1 : end].strip()


def test_the_docs_strategy_table_is_the_registrys():
    assert _docs_strategy_table() == strategies.markdown_table()
    for entry in STRATEGIES.values():
        assert f"| `{entry.name}` |" in _docs_strategy_table()


@pytest.mark.slow
def test_the_documented_command_prints_the_table():
    out = subprocess.run([sys.executable, "-m", "genemask_plugin.masking.strategies"], capture_output=True,
                         text=True, check=True, cwd=REPO).stdout
    assert out.strip() == _docs_strategy_table()


def _options_table() -> dict[str, list[str]]:
    """``{flag: [default, meaning]}`` of the docs' task options table."""
    text = DOCS.read_text()
    section = text[text.index("### Task options") : text.index("**Strategies")]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        for flag in re.findall(r"`(--[a-z-]+)", cells[0]) if line.startswith("| `--") else []:
            rows[flag] = cells[1:]
    return rows


def test_the_docs_options_table_lists_every_masking_setting_with_its_default():
    rows = _options_table()
    for name, setting in MaskingConfig.flags().items():
        flag = "--" + name.replace("_", "-")
        assert flag in rows, flag
        default = rows[flag][0].strip("`").split()
        if setting.default is None:
            assert default, flag
        else:
            assert default[0] == str(setting.default), flag
    assert all(f"`{name}`" in rows["--mask-strategy"][1] for name in STRATEGIES)
    assert "--mask-curriculum" in rows  # the deprecated alias stays documented


# ---------------------------------------------------------------- adding a strategy


def select_codon_spans(maskable, rng, config, scores):
    """A throwaway strategy: each centre masks itself and the next two tokens; masked tokens whose
    PMI score is positive count as wide."""
    n = len(maskable)
    centres = draw_centres(maskable, rng, config.centre_prob)
    masked = np.zeros(n, dtype=bool)
    span = (centres[:, None] + np.arange(3)).reshape(-1)
    masked[span[span < n]] = True
    masked &= maskable
    return MaskSelection(masked, masked & (scores > 0), int(centres.size))


CODONS = MaskStrategy(name="test_codons", help="three tokens from each centre", paper_centre_prob=0.05,
                      select=select_codon_spans, score_lookup=ScoresByToken, global_spans=True)


@pytest.fixture()
def codons(monkeypatch):
    """The throwaway entry, registered for one test (as strategies.register would, then removed)."""
    monkeypatch.setitem(STRATEGIES, CODONS.name, CODONS)
    return CODONS


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("codons")
    rng = np.random.default_rng(0)
    (root / "genome.fa").write_text("".join(f">r{r}\n{''.join(rng.choice(list('ACGT'), 2000))}\n" for r in range(6)))
    argv = [str(root / "genome.fa"), "--k", "6", "--out", str(root / "data"), "--workers", "1", "--quiet"]
    assert preprocess_main(argv) == 0
    return root / "data"


def test_a_new_strategy_is_one_entry_masked_and_trained_through_the_task(codons, corpus):
    task = GeneMaskMLMTask.setup_task(
        GeneMaskMLMConfig(data=str(corpus), seed=5, mask_strategy=codons.name, pmi_table=str(TABLE)))
    assert task.masking.centre_prob == 0.05 and task.token_scores is not None  # it needs the PMI table
    task.load_dataset("valid")
    dataset = task.dataset("valid")
    ids = list(range(min(8, len(dataset))))
    samples = [dataset[i] for i in ids]
    for sample in samples:
        tokens = sample["source"].clone()
        masked = sample["target"].ne(task.dictionary.pad())
        tokens[masked] = sample["target"][masked]
        # The item's mask is the new selector's, drawn from the item's own (seed, epoch, index) generator.
        expected = select_codon_spans(tokens.numpy() >= task.dictionary.nspecial,
                                      np.random.default_rng([5, 1, sample["id"]]), task.masking,
                                      task.token_scores[tokens.numpy()])
        assert np.array_equal(masked.numpy(), expected.masked) and np.array_equal(sample["wide"].numpy(), expected.wide)
        assert sample["centres"] == expected.centres
    assert sum(int(s["target"].ne(1).sum()) for s in samples) > 0
    batch = dataset.collater(samples)
    assert batch["spans_are_global"] is True

    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [str(corpus), "--user-dir", str(REPO / "genemask_plugin"), "--task",
                                                "genemask_mlm", "--criterion", "genemask_mlm", "--arch",
                                                "genemask_tiny", "--mask-strategy", "kmer_span"])
    torch.manual_seed(0)
    model = task.build_model(args)
    criterion = task.build_criterion(args)
    loss, sample_size, log = criterion(model, batch)
    loss.backward()
    assert torch.isfinite(loss) and sample_size == batch["target"].ne(1).sum()
    assert log["n_global"] == sample_size  # the entry's global_spans reached the criterion
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
