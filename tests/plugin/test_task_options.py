"""genemask_plugin/task_options.py: the options of --task genemask_mlm, as fairseq adds them."""

import dataclasses
import subprocess
import sys

from genemask_plugin.masking.strategies import STRATEGIES
from genemask_plugin.task_options import task_options_parser
from genemask_plugin.tasks.genemask_mlm import GeneMaskMLMConfig


def test_every_field_of_the_task_config_is_listed_with_its_default():
    parser = task_options_parser()
    flags = {option for action in parser._actions for option in action.option_strings}
    fields = {f.name for f in dataclasses.fields(GeneMaskMLMConfig) if f.name != "data" and not f.name.startswith("_")}
    # fairseq adds every field except those it interpolates from other sections (seed: ${common.seed})
    interpolated = {f.name for f in dataclasses.fields(GeneMaskMLMConfig) if str(f.default).startswith("${")}
    assert {"--" + name.replace("_", "-") for name in fields - interpolated} <= flags
    assert {"--mask-strategy", "--pmi-table", "--tokens-per-sample"} <= flags
    parsed = parser.parse_args(["DATA"])
    assert (parsed.mask_strategy, parsed.tokens_per_sample) == (GeneMaskMLMConfig.mask_strategy, 512)


def test_the_command_prints_them_quietly():
    done = subprocess.run([sys.executable, "-m", "genemask_plugin.task_options"], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0 and done.stderr == ""  # no fairseq import-time lines ("Please install tensorboardX")
    assert done.stdout.startswith("usage: fairseq-train DATA --user-dir genemask_plugin --task genemask_mlm")
    assert "{" + ",".join(STRATEGIES) + "}" in done.stdout
    assert "(default: 512)" in done.stdout  # --tokens-per-sample, with its default
