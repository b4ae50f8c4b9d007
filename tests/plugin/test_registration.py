"""genemask_plugin/registration.py and the --user-dir path: each registers the task, the criterion, the
architectures and torch's safe globals, in a fresh process as a user starts one."""

import subprocess
import sys
from pathlib import Path

PLUGIN = str(Path(__file__).resolve().parents[2] / "genemask_plugin")

# What a process must have once the plugin is registered; prints one line per missing piece.
CHECK = """
import argparse, torch.serialization
from fairseq.criterions import CRITERION_REGISTRY
from fairseq.models import ARCH_MODEL_REGISTRY
from fairseq.tasks import TASK_REGISTRY
wanted = {"task": "genemask_mlm" in TASK_REGISTRY, "criterion": "genemask_mlm" in CRITERION_REGISTRY,
          "architectures": {"genemask_tiny", "genemask_logo", "genemask_dnabert_base"} <= set(ARCH_MODEL_REGISTRY),
          "safe globals": argparse.Namespace in torch.serialization.get_safe_globals()}
print(" ".join(sorted(name for name, ok in wanted.items() if not ok)) or "registered")
"""


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)


def test_fairseq_user_dir_registers_everything():
    """What fairseq-train, fairseq-validate and hub loading do with --user-dir in a fresh process."""
    done = run_python(f"import argparse\nfrom fairseq import utils\n"
                      f"utils.import_user_module(argparse.Namespace(user_dir={PLUGIN!r}))\n{CHECK}")
    assert done.stdout.strip() == "registered", done.stderr


def test_the_registration_module_registers_everything_quietly():
    done = run_python(f"import genemask_plugin.registration\n{CHECK}")
    assert done.stdout.strip() == "registered", done.stderr
    assert done.stderr == ""  # no "Please install tensorboardX" from fairseq's import-time logging set-up


def test_without_it_fairseq_skips_a_user_dir_already_imported():
    """Why a script that imports anything of ours registers explicitly before using fairseq's API."""
    skipped = run_python(f"import argparse, genemask_plugin.masking.config\nfrom fairseq import utils\n"
                         f"utils.import_user_module(argparse.Namespace(user_dir={PLUGIN!r}))\n{CHECK}")
    assert "task" in skipped.stdout.split(), skipped.stderr
    fixed = run_python(f"import genemask_plugin.masking.config, genemask_plugin.registration\n{CHECK}")
    assert fixed.stdout.strip() == "registered", fixed.stderr


def test_the_registration_leaves_the_users_logging_as_it_was():
    done = run_python("import logging\nlogging.basicConfig(level=logging.INFO)\n"
                      "before = list(logging.getLogger().handlers)\nimport genemask_plugin.registration\n"
                      "print(logging.getLogger().handlers == before, logging.getLogger().level)")
    assert done.stdout.split() == ["True", str(20)], done.stderr
