"""Run a command with its whole output in a log file and only its progress and results on the console.

Usage: python examples/run_with_log.py [--hide REGEX] LOG COMMAND [ARG ...]

The recipes in examples/ run their long commands through this (``run_logged`` in ``_common.sh``).
LOG receives the command line, then everything the command writes to stdout and stderr, as written.
The console receives:

- progress bars (tqdm redraws, the lines ending in a carriage return), live;
- fairseq-train's training and validation lines, one short line each (``update 500: loss 11.42,
  acc 0.061, 95 s``: the loss in bits, the masked-token accuracy and the wall clock), and its closing
  ``done training in ... s``;
- every other line of the command's own output (our commands print a result line or two).

Each console line is indented by two spaces, under the recipe's own lines (a step's header).

What goes to the log only: fairseq's other log records (its configuration dump, the model, "Please install
tensorboardX"), Python warnings (Hydra's deprecations, ``pin_memory``, ``torch.cuda.amp.autocast``...)
with their continuation and source lines, and lines matching ``--hide``. When the command fails, the last lines of
the log and its path follow. The exit status is the command's (130 after Ctrl-C).
"""

from __future__ import annotations

import argparse
import codecs
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

FAIRSEQ_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \| [A-Z]+ \| (?P<logger>[\w.]+) \| (?P<text>.*)$")
WARNING_HEADER = re.compile(r"^(?P<file>\S+):\d+: \w*Warning:(?P<message>.*)$")
TRAIN_METRIC = re.compile(r"(\w+)=([^,\s]+)")  # train_inner: "loss=12.043, acc=0, ..., num_updates=5"
VALID_METRIC = re.compile(r"(?:^|\| )(\w+) ([^\s|]+)(?= \||$)")  # valid: "| loss 11.994 | acc 0.04 | ..."
FAILURE_TAIL_LINES = 15
INDENT = "  "  # under the recipe's own lines (a step's header)


def _scores(metrics: dict[str, str]) -> str:
    """``loss 11.42, acc 0.061``: the loss (bits) and, when the criterion logs it, masked-token accuracy."""
    def number(text: str) -> str:
        try:
            return f"{float(text):.3f}" if abs(float(text)) < 10 else f"{float(text):.2f}"
        except ValueError:
            return text
    return ", ".join(f"{name} {number(metrics[name])}" for name in ("loss", "acc") if name in metrics)


def fairseq_summary(logger: str, text: str) -> str | None:
    """The console's short line for one fairseq log line, or None for a line that goes to the log only."""
    if logger == "train_inner":
        metrics = dict(TRAIN_METRIC.findall(text))
        if "num_updates" in metrics:
            return f"update {metrics['num_updates']}: {_scores(metrics)}, {metrics.get('wall', '?')} s"
    elif logger == "valid":
        metrics = dict(VALID_METRIC.findall(text))
        if "num_updates" in metrics:
            return f"valid at update {metrics['num_updates']}: {_scores(metrics)}"
    elif logger == "fairseq_cli.train" and text.startswith("done training in "):
        seconds = text.removeprefix("done training in ").split()[0]
        return f"done training in {float(seconds):.0f} s"
    return None


class ConsoleView:
    """Decides, segment by segment, what of a command's output the console shows."""

    def __init__(self, hide: re.Pattern | None = None):
        self.hide = hide
        self.in_warning = False
        self.in_fairseq_record = False
        self.bar_width = 0
        """Width of the progress bar on the console's current line (0: none)."""

    def line(self, text: str) -> str | None:
        """The console's text for one output line (without its newline), or None."""
        if self.in_warning:
            if text.startswith("  "):  # the warning's source line ends it
                self.in_warning = False
                return None
            if not (FAIRSEQ_LINE.match(text) or WARNING_HEADER.match(text)):
                return None  # a line of a multi-line warning message
            self.in_warning = False
        warning = WARNING_HEADER.match(text)
        if warning:
            # Python follows the message with the source line when it can read the file; until then the
            # message may go on over several lines (Hydra's do). Without a file, an empty first line says so.
            self.in_warning = Path(warning["file"]).is_file() or not warning["message"].strip()
            return None
        fairseq = FAIRSEQ_LINE.match(text)
        if fairseq:
            self.in_fairseq_record = True
            return fairseq_summary(fairseq["logger"], fairseq["text"])
        if self.in_fairseq_record and text[:1] in (" ", "\t", ")"):
            return None  # a multi-line fairseq record (the model's description) goes on
        self.in_fairseq_record = False
        if self.hide is not None and self.hide.search(text):
            return None
        return text

    def show(self, text: str, end: str) -> str:
        """What to write to the console for one segment of output, ended by "\r" (a redraw) or "\n"."""
        if end == "\r":
            if not text and not self.bar_width:
                return ""
            self.bar_width = max(self.bar_width, len(text))
            return f"\r{INDENT}{text}"
        shown = self.line(text)
        if not self.bar_width:
            return "" if shown is None else f"{INDENT}{shown}\n"
        width, self.bar_width = self.bar_width, 0
        # The line after a bar replaces it; a line that goes to the log leaves the bar's last state.
        return "\n" if shown is None else f"\r{INDENT}{shown.ljust(width)}\n"

    def feed(self, output: str) -> str:
        """What to write to the console for ``output``: complete segments only (see :func:`split_segments`)."""
        return "".join(self.show(text, end) for text, end in split_segments(output))


def split_segments(output: str) -> list[tuple[str, str]]:
    """``(text, end)`` of each segment of ``output`` ended by "\r\n", "\n" (both give "\n") or "\r"."""
    return [(m[1], "\r" if m[2] == "\r" else "\n") for m in re.finditer(r"([^\r\n]*)(\r\n|\r|\n)", output)]


def complete_part(pending: str) -> int:
    """Where the complete segments of ``pending`` end; a final "\r" waits: it may be half of "\r\n"."""
    body = pending[:-1] if pending.endswith("\r") else pending
    return max(body.rfind("\n"), body.rfind("\r")) + 1


def log_tail(log_path: Path, lines: int = FAILURE_TAIL_LINES) -> list[str]:
    """The last ``lines`` non-empty lines of a log, each as a console showed it last (after its last "\r")."""
    text = log_path.read_text(errors="replace")
    shown = [line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n")]
    return [line for line in shown if line.strip()][-lines:]


def run_with_log(command: list[str], log_path: Path, hide: str | None = None) -> int:
    """Run ``command`` as the module docstring says; return its exit status."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    view = ConsoleView(re.compile(hide) if hide else None)
    with open(log_path, "ab") as log:
        log.write(("+ " + shlex.join(command) + "\n").encode())
        log.flush()
        try:
            child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        except OSError as err:
            print(f"{command[0]}: {err.strerror}", file=sys.stderr)
            return 127
        pending = ""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a chunk may end mid-character
        try:
            while chunk := os.read(child.stdout.fileno(), 65536):
                log.write(chunk)
                log.flush()
                pending += decoder.decode(chunk)
                cut = complete_part(pending)
                sys.stdout.write(view.feed(pending[:cut]))
                sys.stdout.flush()
                pending = pending[cut:]
            sys.stdout.write(view.feed(pending + "\n") if pending else view.feed(""))
            status = child.wait()
        except KeyboardInterrupt:  # the command got the same SIGINT: let it clean up
            status = child.wait() or -2
    status = 128 - status if status < 0 else status  # killed by signal N: 128 + N, as a shell says
    if status != 0:
        print(f"  failed (exit {status}); the last lines of {log_path}:", file=sys.stderr)
        for line in log_tail(log_path):
            print(f"  | {line[:300]}", file=sys.stderr)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hide", metavar="REGEX", help="output lines that go to the log only")
    parser.add_argument("log", type=Path, help="the log file (appended to)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command and its arguments")
    args = parser.parse_args(argv)
    if not args.command:
        parser.error("give the command to run after LOG")
    return run_with_log(args.command, args.log, args.hide)


if __name__ == "__main__":
    sys.exit(main())
