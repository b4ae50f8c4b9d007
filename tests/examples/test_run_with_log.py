"""examples/run_with_log.py: the whole output to the log, progress and results to the console."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import run_with_log  # examples/, on sys.path (conftest.py)

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "run_with_log.py"

STAMP = "2026-12-02 07:45:33 | INFO | "
TRAIN_INNER = (STAMP + "train_inner | epoch 001:    100 / 1283 loss=11.873, acc=0.0412, wide_pct=92.42, ppl=3750.1, "
               "wps=2242.2, num_updates=100, lr=0.000666667, gnorm=1.633, train_wall=1, wall=19")
VALID = (STAMP + "valid | epoch 001 | valid on 'valid' subset | loss 11.994 | acc 0.04 | wide_pct 82.51 | "
         "ppl 4078.16 | num_updates 1000")


def test_fairseq_lines_become_one_short_line_or_none():
    summary = run_with_log.fairseq_summary
    assert summary("train_inner", TRAIN_INNER.split(" | ", 4)[-1]) == "update 100: loss 11.87, acc 0.041, 19 s"
    assert summary("valid", VALID.split(" | ", 4)[-1]) == "valid at update 1000: loss 11.99, acc 0.040"
    assert summary("fairseq_cli.train", "done training in 23.1 seconds") == "done training in 23 s"
    assert summary("fairseq_cli.train", "{'_name': None, 'common': {...}}") is None
    assert summary("fairseq.tasks.text_to_speech", "Please install tensorboardX: pip install tensorboardX") is None


# A command's output as fairseq-train and our commands write it: warnings (with a multi-line message, without and
# with a source line), fairseq records (one running over several lines), a progress bar, results.
OUTPUT = (
    STAMP + "fairseq.tasks.text_to_speech | Please install tensorboardX: pip install tensorboardX\n"
    "/x/hydra/initialize.py:45: Hydra14MigrationWarning: \n"
    "The version_base parameter is not specified.\n"
    "Hydra will assume defaults for version 1.1.\n"
    "  self.delegate = real_initialize(\n"
    "sys:1: UserWarning: \n"
    "'config' is validated against ConfigStore schema with the same name.\n"
    + STAMP + "fairseq_cli.train | RobertaModel(\n"
    "  (encoder): RobertaEncoder(\n"
    ")\n"
    "counting:   0%|          | 0/10\rcounting:  50%|#####     | 5/10\rcounting: 100%|##########| 10/10\n"
    + TRAIN_INNER + "\n"
    + VALID + "\n"
    f"{SCRIPT}:1102: UserWarning: 'pin_memory' argument is set as true but no accelerator is found\n"
    "See a page for more\n"  # a file Python can read: the message runs to the source line
    "  super().__init__(loader)\n"
    "| a | table |\n"
    "scored 3,838 n-grams (n = 6); wrote pmi.tsv\n"
)


def test_the_console_shows_progress_and_results_only():
    view = run_with_log.ConsoleView(hide=run_with_log.re.compile(r"^\|"))
    shown = view.feed(OUTPUT)
    bar = "counting: 100%|##########| 10/10"
    assert shown == (
        "\r  counting:   0%|          | 0/10\r  counting:  50%|#####     | 5/10"
        f"\r  {bar}\n"
        "  update 100: loss 11.87, acc 0.041, 19 s\n"
        "  valid at update 1000: loss 11.99, acc 0.040\n"
        "  scored 3,838 n-grams (n = 6); wrote pmi.tsv\n"
    )


def test_a_line_after_a_bar_replaces_it_whole():
    view = run_with_log.ConsoleView()
    assert view.feed("working: 10%|#   |\r" + " " * 18 + "\rdone\n") == (
        "\r  working: 10%|#   |\r  " + " " * 18 + "\r  " + "done".ljust(18) + "\n")


@pytest.mark.parametrize("pending, complete", [("a\nb", "a\n"), ("a\rb", "a\r"), ("a\r", ""), ("a\n\r", "a\n"),
                                               ("no end", "")])
def test_only_complete_segments_are_shown(pending, complete):
    """A final carriage return waits: it may be the first half of a Windows line end."""
    assert pending[: run_with_log.complete_part(pending)] == complete


CHILD = textwrap.dedent("""
    import sys, warnings
    print("first result", flush=True)
    warnings.warn("an old API")
    print("second result", file=sys.stderr, flush=True)
    sys.exit(int(sys.argv[1]))
""")


def run_script(tmp_path, status):
    log = tmp_path / "logs" / "step.log"
    done = subprocess.run([sys.executable, str(SCRIPT), str(log), sys.executable, "-c", CHILD, str(status)],
                          capture_output=True, text=True, timeout=120)
    return done, log


def test_the_log_holds_everything_and_the_console_the_results(tmp_path):
    done, log = run_script(tmp_path, 0)
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout == "  first result\n  second result\n"
    text = log.read_text()
    assert text.startswith(f"+ {sys.executable} -c ") and "UserWarning: an old API" in text
    assert text.index("first result") < text.index("second result")


def test_a_failure_keeps_its_status_and_shows_the_logs_tail(tmp_path):
    done, log = run_script(tmp_path, 3)
    assert done.returncode == 3
    said = done.stderr.splitlines()
    assert said[0] == f"  failed (exit 3); the last lines of {log}:"
    assert "  | second result" in said and any("UserWarning: an old API" in line for line in said)


def test_a_command_killed_by_a_signal_exits_as_a_shell_says(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "l.log"), "bash", "-c", "kill -TERM $$"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 128 + 15


def test_a_missing_command_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "l.log"), "no-such-command-here"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 127 and done.stderr.splitlines() == [
        "no-such-command-here: No such file or directory"]
