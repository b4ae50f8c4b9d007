"""The repository stands alone, installs every package, and keeps its layers pointing one way."""

import configparser
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = {"genemask_plugin": REPO / "genemask_plugin", "genemask_preprocess": REPO / "preprocess"}
CHECKED_SUFFIXES = {".py", ".sh", ".cfg", ".toml", ".md", ".txt", ""}
CHECKED_ROOTS = ("genemask_plugin", "preprocess", "tests", "examples", "benchmarks", ".ci", "Makefile", "setup.cfg",
                 "README.md", "docs")


def _tracked_text_files():
    for root in CHECKED_ROOTS:
        base = REPO / root
        paths = [base] if base.is_file() else base.rglob("*")
        for path in paths:
            if path.is_file() and path.suffix in CHECKED_SUFFIXES and "results" not in path.parts \
                    and "__pycache__" not in path.parts and path != Path(__file__).resolve():
                yield path


def test_setup_cfg_lists_every_package():
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    found = set()
    for name, folder in PACKAGE_DIRS.items():
        for init in folder.rglob("__init__.py"):
            parts = init.parent.relative_to(folder).parts
            found.add(".".join((name, *parts)))
    assert found == listed


def test_nothing_reaches_outside_the_repository():
    shared = re.compile(r"\.\./" + "shared|" + "GENEMASK" + r"\.md|FAIRSEQ_" + r"NOTES\.md")
    offenders = [
        f"{path.relative_to(REPO)}:{number}"
        for path in _tracked_text_files()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if shared.search(line)
    ]
    assert offenders == []


def test_the_old_import_name_is_gone():
    old = re.compile(r"^\s*(from|import) preprocess\b|-m preprocess\.", re.M)
    offenders = [str(p.relative_to(REPO)) for p in _tracked_text_files() if old.search(p.read_text(errors="replace"))]
    assert offenders == []


def test_the_training_path_imports_no_genome_plotting_or_motif_stack():
    probe = (
        "import sys, genemask_plugin.registration, genemask_preprocess.formats.pmi_table; "
        "print(' '.join(sorted(m for m in ('pysam', 'matplotlib', 'Bio', 'pyjaspar', 'sentencepiece') "
        "if m in sys.modules)))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == ""


def test_the_preprocess_package_never_imports_fairseq():
    probe = (
        "import sys, pkgutil, importlib, genemask_preprocess as p; "
        "[importlib.import_module(m.name) for m in pkgutil.walk_packages(p.__path__, 'genemask_preprocess.') "
        "if '.motifs' not in m.name]; print('fairseq' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
