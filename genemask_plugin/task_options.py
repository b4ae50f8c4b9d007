"""``python -m genemask_plugin.task_options``: the options ``--task genemask_mlm`` adds to fairseq-train.

fairseq prints ``--help`` before it adds a task's options, so ``fairseq-train --user-dir
genemask_plugin --task genemask_mlm --help`` cannot list them. This prints them as fairseq adds
them, from the task's config (flags, choices, defaults and help), so the list never drifts from
the code. docs/genemask_mlm.md explains them.
"""

from __future__ import annotations

import argparse
import sys

from genemask_preprocess.command_line import log_warnings_only


def task_options_parser() -> argparse.ArgumentParser:
    """An argparse parser holding exactly the options fairseq adds for ``--task genemask_mlm``."""
    from fairseq.dataclass.utils import gen_parser_from_dataclass  # noqa: PLC0415

    from genemask_plugin.tasks.genemask_mlm import GeneMaskMLMConfig  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog="fairseq-train DATA --user-dir genemask_plugin --task genemask_mlm",
        description="The options of --task genemask_mlm (docs/genemask_mlm.md explains them).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter, add_help=False)
    gen_parser_from_dataclass(parser, GeneMaskMLMConfig())
    return parser


if __name__ == "__main__":
    log_warnings_only()  # before fairseq's import-time logging set-up, as in every console command
    task_options_parser().print_help(sys.stdout)
