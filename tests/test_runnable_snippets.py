"""The snippets readers paste run as written, and `make demo` reads as five steps.

A fenced block right after the line ``<!-- runnable -->``, in README.md or a page of docs/, must run
verbatim from the repository root once ``make demo`` has run. The test builds that state with tiny
settings: a scratch root that links every entry of the repository, in which examples/quickstart.sh
runs with ``DEMO_SCALE=tiny`` (its numbers mean nothing; its files are the demo's). Then each block
runs there, ``bash`` blocks with ``bash -euo pipefail``, ``python`` blocks with this interpreter.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MARKER = "<!-- runnable -->"
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LANGUAGES = {"bash": ["bash", "-euo", "pipefail", "-c"], "python": [sys.executable, "-c"]}


@dataclass(frozen=True)
class Snippet:
    page: str
    line: int
    """Line of the opening fence, 1-based."""
    language: str
    code: str

    def __str__(self) -> str:
        return f"{self.page}:{self.line}"


def runnable_snippets(path: Path) -> list[Snippet]:
    """The blocks of a Markdown page marked runnable; a marker not followed by a fenced block is an error."""
    lines = path.read_text().splitlines()
    found = []
    for i, line in enumerate(lines):
        if line.strip() != MARKER:
            continue
        fence = re.fullmatch(r"```(\w+)", lines[i + 1].strip()) if i + 1 < len(lines) else None
        if fence is None or fence[1] not in LANGUAGES:
            raise ValueError(f"{path.name}:{i + 1}: {MARKER} must come right before a ```bash or ```python fence")
        end = next(j for j in range(i + 2, len(lines)) if lines[j].strip() == "```")
        page = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else path.name
        found.append(Snippet(page, i + 2, fence[1], "\n".join(lines[i + 2 : end]) + "\n"))
    return found


SNIPPETS = [snippet for page in PAGES for snippet in runnable_snippets(page)]


def test_markers_are_found_and_checked(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(f"text\n{MARKER}\n```bash\necho one\n```\n\n```bash\necho unmarked\n```\n{MARKER}\n```python\n"
                    "print(2)\n```\n")
    assert [(s.line, s.language, s.code) for s in runnable_snippets(page)] == [
        (3, "bash", "echo one\n"), (11, "python", "print(2)\n")]
    page.write_text(f"{MARKER}\n\n```bash\necho one\n```\n")
    with pytest.raises(ValueError, match="right before"):
        runnable_snippets(page)


def test_the_readme_marks_its_hugging_face_snippet():
    readme = [s for s in SNIPPETS if s.page == "README.md"]
    assert any(s.language == "python" and "demo_out/hf" in s.code for s in readme)
    assert all(s.language in LANGUAGES for s in SNIPPETS)


def test_the_readme_snippet_names_a_missing_model_folder_without_trying_the_hub(tmp_path):
    """Before ``make demo``: an error naming the folder at once. Nothing says offline here, and the hub's
    address leads nowhere: a download attempt would end in another message."""
    (snippet,) = [s for s in SNIPPETS if s.page == "README.md" and "demo_out/hf" in s.code]
    env = {name: value for name, value in os.environ.items() if not name.startswith("HF_")}
    env["HF_ENDPOINT"] = "http://127.0.0.1:9"
    done = subprocess.run([sys.executable, "-c", snippet.code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 1 and "'./demo_out/hf'" in done.stderr.strip().splitlines()[-1], done.stderr[-2000:]


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory) -> tuple[Path, str]:
    """A scratch repository root after ``make demo`` (tiny settings), and what the demo printed."""
    root = tmp_path_factory.mktemp("root")
    for entry in REPO.iterdir():
        if entry.name not in (".git", "demo_out"):
            (root / entry.name).symlink_to(entry)
    env = {**os.environ, "DEMO_SCALE": "tiny", "OMP_NUM_THREADS": "1"}
    env.pop("OUT", None)
    env.pop("DRY_RUN", None)
    done = subprocess.run(["bash", "examples/quickstart.sh"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root, done.stdout + done.stderr


def console_lines(text: str) -> list[str]:
    """The lines a terminal shows: of each line, what follows its last carriage return."""
    return [line.rsplit("\r", 1)[-1].rstrip() for line in text.split("\n")]


@pytest.mark.slow
def test_the_demo_reads_as_five_steps(demo_root):
    root, console = demo_root
    lines = console_lines(console)
    headers = [line for line in lines if line.startswith("== ")]
    assert [h.split()[1] for h in headers] == ["1/5", "2/5", "3/5", "4/5", "5/5"], headers
    assert [line for line in lines if line and not line.startswith(("== ", "  ", "|", "done in "))] == []
    for noise in ("| INFO |", "Warning", "warn(", "tensorboardX", "'_name'", "Hydra", "pin_memory", "autocast"):
        assert noise not in console, noise
    assert sum(line.startswith("| dataset |") for line in lines) == 1  # the results table, once
    assert re.search(r"^  true 6-mer in the top 5 at [0-5] of 5 positions$", console, re.M)
    assert sum(line.startswith("  sequence ") for line in lines) == 5
    assert lines[-2].startswith("done in ") and "demo_out/" in lines[-2]
    # fairseq's configuration went to the step log the header names
    assert "| fairseq_cli.train | {" in (root / "demo_out" / "logs" / "2-pretrain.log").read_text()
    assert "(log: demo_out/logs/2-pretrain.log)" in headers[1]


@pytest.mark.slow
@pytest.mark.parametrize("snippet", SNIPPETS, ids=str)
def test_snippet_runs_verbatim_after_the_demo(snippet, demo_root):
    root, _ = demo_root
    done = subprocess.run([*LANGUAGES[snippet.language], snippet.code], cwd=root, capture_output=True, text=True,
                          timeout=1200, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, f"{snippet} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"


@pytest.mark.slow
def test_gitignore_covers_what_the_demo_and_the_snippets_wrote(demo_root):
    """Run after the snippets (file order): whatever they and the demo added to the root, git ignores."""
    root, _ = demo_root
    written = [entry.name + ("/" if entry.is_dir() else "") for entry in root.iterdir() if not entry.is_symlink()]
    assert "demo_out/" in written
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *written], cwd=REPO, capture_output=True,
                             text=True).stdout.split()
    assert sorted(ignored) == sorted(written)
