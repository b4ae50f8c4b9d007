"""Import layers, read statically from the source: what may import what, and where shared readers live.

The graph has one node per module of ``genemask_plugin`` and ``genemask_preprocess`` and one edge
per import of another of them, read from the AST (imports inside functions count: they run
when the function does; imports under ``if TYPE_CHECKING:`` do not). A module's *floor* is 0
when it imports none of ours, else one more than the highest floor it imports; the graph's depth
is the highest floor. ``python tests/test_import_layers.py`` prints the floors of ``genemask_plugin``.

Where a shared reader lives is checked by what its code does, not by its name:

- a ``dict.txt`` line is written as ``SYMBOL COUNT`` and read by splitting at its last space, so
  outside ``formats/fairseq_dictionary.py`` no f-string may produce ``{symbol} {count}\\n`` (two
  fields, one space, a newline; or a field, a space and a literal count), no code may split at
  the last space (``.rsplit(" ", 1)``), and no code may name fairseq's ``#fairseq:overwrite`` flag;
- a fairseq checkpoint is loaded by ``torch.load`` (or fairseq's ``load_checkpoint_to_cpu``), so
  outside ``genemask_plugin/checkpoints.py`` no code calls either. fairseq loading a *model*
  (``load_model_ensemble_and_task``) is not reading the file ourselves and stays allowed.

Both rules cover the packages, ``benchmarks/`` and ``examples/``; tests are free to inspect files.
"""

from __future__ import annotations

import ast
import re
import sys
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {"genemask_plugin": REPO / "genemask_plugin", "genemask_preprocess": REPO / "preprocess"}
DICTIONARY_HOME = "genemask_preprocess.formats.fairseq_dictionary"
CHECKPOINT_HOME = "genemask_plugin.checkpoints"
CHEAP_CONSTANTS = "genemask_plugin.models.defaults"
SCRIPT_FOLDERS = (REPO / "benchmarks", REPO / "examples")


def module_files() -> dict[str, Path]:
    """Module name -> source file, for every module of our two packages."""
    modules = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((package, *parts))] = path
    return modules


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _import_nodes(tree: ast.AST):
    """Every import statement that runs (any depth), skipping ``if TYPE_CHECKING:`` bodies."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if _is_type_checking_block(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def imported_modules(module: str, path: Path, known: set[str]) -> set[str]:
    """Our modules that ``module`` imports: ``from a import b`` counts ``a.b`` when it is a module, else ``a``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        for target in targets:
            while target and target not in known:  # `import a.b.c` of a name inside a.b: the module a.b
                target = target.rpartition(".")[0]
            if target and target != module:
                found.add(target)
    return found


@cache
def import_graph() -> dict[str, frozenset[str]]:
    files = module_files()
    known = set(files)
    return {module: frozenset(imported_modules(module, path, known)) for module, path in files.items()}


def reachable(graph: dict[str, frozenset[str]], start: str) -> set[str]:
    """Every module ``start`` imports, directly or through others."""
    seen, stack = set(), [start]
    while stack:
        for target in graph[stack.pop()]:
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def floors(graph: dict[str, frozenset[str]], prefix: str = "genemask_plugin") -> dict[str, int]:
    """Floor of every module under ``prefix``, counting only imports of modules under ``prefix``."""
    inside = {m: {t for t in targets if t.startswith(prefix)} for m, targets in graph.items() if m.startswith(prefix)}
    floor: dict[str, int] = {}
    visiting: set[str] = set()

    def visit(module: str) -> int:
        if module in floor:
            return floor[module]
        if module in visiting:
            raise ValueError(f"import cycle through {module}")
        visiting.add(module)
        floor[module] = 1 + max((visit(t) for t in inside[module]), default=-1)
        visiting.discard(module)
        return floor[module]

    for module in inside:
        visit(module)
    return floor


def print_floors(prefix: str = "genemask_plugin") -> None:
    floor = floors(import_graph(), prefix)
    depth = max(floor.values())
    print(f"import depth of {prefix}: {depth} (longest chain of imports within it)")
    for level in range(depth, -1, -1):
        print(f"floor {level}: {' '.join(sorted(m for m, f in floor.items() if f == level))}")


def runtime_imports(graph: dict[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    """The graph plus the packages Python imports first: ``a.b.c`` runs ``a`` and ``a.b`` too."""
    out = {}
    for module, targets in graph.items():
        parents = {module.rsplit(".", i)[0] for i in range(1, module.count(".") + 1)}
        out[module] = frozenset(targets | (parents & graph.keys()))
    return out


# ---------------------------------------------------------------------------------------------
# Layers


def test_hf_imports_nothing_from_fewshot():
    graph = runtime_imports(import_graph())
    hf = [m for m in graph if m == "genemask_plugin.hf" or m.startswith("genemask_plugin.hf.")]
    assert len(hf) > 5
    offenders = {m: sorted(t for t in reachable(graph, m) if t.startswith("genemask_plugin.fewshot")) for m in hf}
    assert {m: found for m, found in offenders.items() if found} == {}


def test_the_check_would_see_hf_reach_fewshot():
    graph = dict(runtime_imports(import_graph()))
    graph["genemask_plugin.checkpoints"] |= {"genemask_plugin.fewshot.finetune"}  # as export did, via finetune
    assert "genemask_plugin.fewshot.finetune" in reachable(graph, "genemask_plugin.hf.export")


def test_preprocess_never_imports_the_plugin():
    graph = import_graph()
    offenders = {m: sorted(t for t in targets if t.startswith("genemask_plugin"))
                 for m, targets in graph.items() if m.startswith("genemask_preprocess")}
    assert {m: found for m, found in offenders.items() if found} == {}


def test_the_graph_has_no_cycles_and_every_module_a_floor():
    for prefix in ("genemask_plugin", "genemask_preprocess"):
        floor = floors(import_graph(), prefix)
        assert set(floor) == {m for m in import_graph() if m.startswith(prefix)}


def test_cycles_are_reported():
    graph = {"genemask_plugin.a": frozenset({"genemask_plugin.b"}), "genemask_plugin.b": frozenset({"genemask_plugin.a"})}
    with pytest.raises(ValueError, match="import cycle"):
        floors(graph)


def test_model_defaults_import_nothing():
    """--help texts read them: importing them must never pull in torch or fairseq."""
    tree = ast.parse(module_files()[CHEAP_CONSTANTS].read_text())
    assert list(_import_nodes(tree)) == []


# ---------------------------------------------------------------------------------------------
# Shared readers live in their home


def _code_files() -> dict[str, Path]:
    files = dict(module_files())
    for folder in SCRIPT_FOLDERS:
        files.update({str(path.relative_to(REPO)): path for path in sorted(folder.rglob("*.py"))})
    return files


def _fstring_shape(node: ast.JoinedStr) -> str:
    return "".join("{}" if isinstance(v, ast.FormattedValue) else str(v.value) for v in node.values)


def dictionary_line_code(source: str) -> list[str]:
    """What in ``source`` writes or parses a ``dict.txt`` line (see the module docstring)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.JoinedStr) and re.fullmatch(r"\{\} (\{\}|\d+)\n", _fstring_shape(node)):
            found.append(f"line {node.lineno}: writes f{_fstring_shape(node)!r}")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "rsplit"
              and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value == " "):
            found.append(f"line {node.lineno}: splits at the last space")
        elif isinstance(node, ast.Constant) and node.value == "#fairseq:overwrite":
            found.append(f"line {node.lineno}: names #fairseq:overwrite")
    return found


def checkpoint_loading_code(source: str) -> list[str]:
    """Calls in ``source`` that load a checkpoint file: ``torch.load``, fairseq's ``load_checkpoint_to_cpu``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module == "torch" and any(a.name == "load" for a in node.names):
            found.append(f"line {node.lineno}: from torch import load")
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        if name == "torch.load" or name.endswith("load_checkpoint_to_cpu"):
            found.append(f"line {node.lineno}: {name}()")
    return found


def test_dict_txt_is_read_and_written_only_in_its_format_module():
    found = {name: dictionary_line_code(path.read_text()) for name, path in _code_files().items()
             if name != DICTIONARY_HOME}
    assert {name: lines for name, lines in found.items() if lines} == {}
    assert dictionary_line_code(module_files()[DICTIONARY_HOME].read_text())  # the home does both


def test_checkpoints_are_loaded_only_in_checkpoints_py():
    found = {name: checkpoint_loading_code(path.read_text()) for name, path in _code_files().items()
             if name != CHECKPOINT_HOME}
    assert {name: lines for name, lines in found.items() if lines} == {}
    assert checkpoint_loading_code(module_files()[CHECKPOINT_HOME].read_text())


def test_the_rules_catch_the_copies_this_project_once_had():
    """The three writers, the reader and the checkpoint load that lived outside their homes before issue 19."""
    writers = [
        'handle.writelines(f"{kmer} 1\\n" for kmer in all_kmers(k))',
        'handle.writelines(f"{piece} 1\\n" for piece in self.pieces)',
        'handle.writelines(f"{label} {counts[label]}\\n" for label in labels)',
    ]
    for code in writers:
        assert dictionary_line_code(code), code
    reader = 'fields = line.rsplit(" ", 1)\nif fields[-1] == "#fairseq:overwrite":\n    pass\n'
    assert len(dictionary_line_code(reader)) == 2
    assert not dictionary_line_code('f"{name}\\t{value}\\n"; f"{a} {b}"; text.rsplit("/", 1)')
    load = 'state = torch.load(checkpoint, map_location="cpu", mmap=True, weights_only=True)'
    assert checkpoint_loading_code(load) and checkpoint_loading_code("from torch import load")
    assert checkpoint_loading_code("checkpoint_utils.load_checkpoint_to_cpu(path)")
    assert not checkpoint_loading_code("checkpoint_utils.load_model_ensemble_and_task([path])")


if __name__ == "__main__":
    print_floors(sys.argv[1] if len(sys.argv) > 1 else "genemask_plugin")
