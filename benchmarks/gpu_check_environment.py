"""The GPU check's step 0: a CUDA torch, fairseq and this package, importable here; installs what is missing."""

from __future__ import annotations

import importlib
import json
import os
import site
import subprocess
import sys
import time
from pathlib import Path

from gpu_check_commands import Settings
from gpu_check_runner import CheckFailed

REPO = Path(__file__).resolve().parents[1]
TORCH_INDEX = "https://download.pytorch.org/whl/cu128"


def python_probe(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def pip_install(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=timeout)


def ensure_environment(s: Settings, wheelhouse: Path | None, say) -> dict:
    """A CUDA torch, fairseq and this package importable by this Python; installs what is missing, timed."""
    env = {"python": sys.version.split()[0], "cores": os.cpu_count(), "install_s": {}}
    probe = python_probe("import torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_available())")
    has_cuda_torch = probe.returncode == 0 and probe.stdout.split()[-1] == "True"
    if not s.cpu and not has_cuda_torch:
        started = time.monotonic()
        wheels = sorted(wheelhouse.glob("torch-*.whl")) if wheelhouse else []
        say(f"no CUDA torch ({(probe.stdout or probe.stderr).strip()[-200:]}); installing "
            + (f"{wheels[-1].name}" if wheels else f"torch from {TORCH_INDEX}"))
        try:
            result = pip_install([str(wheels[-1])] if wheels else ["torch", "--index-url", TORCH_INDEX], 420)
        except subprocess.TimeoutExpired:
            raise CheckFailed("environment: installing a CUDA torch took over 420 s") from None
        if result.returncode != 0:
            raise CheckFailed("environment: no CUDA torch, and none could be installed (no index reachable? put a "
                              f"CUDA torch wheel in --wheelhouse): {result.stderr.strip().splitlines()[-1:]}")
        env["install_s"]["torch"] = round(time.monotonic() - started, 1)
        say(f"installed torch in {env['install_s']['torch']} s")
    imports = "import fairseq, fairseq_cli.train, fairseq_cli.validate, genemask_plugin.registration, genemask_preprocess.corpus.cli"
    if python_probe(imports).returncode != 0:
        if not wheelhouse or not any(wheelhouse.glob("*.whl")):
            raise CheckFailed("environment: fairseq or this package is not installed; run benchmarks/gpu_wheels.sh "
                              "where pip works and pass --wheelhouse .whl (the device has no package index)")
        started = time.monotonic()
        wheels = [str(w) for w in sorted(wheelhouse.glob("*.whl")) if not w.name.startswith("torch-")]
        offline = ["--no-index", "--no-deps", "--no-cache-dir"]
        result = pip_install([*offline, *wheels], 300)
        if result.returncode == 0:
            result = pip_install([*offline, "--no-build-isolation", "-e", str(REPO)], 300)
        if result.returncode != 0:
            # An environment we may not write to: the wheels into a folder of our own, and this package by path
            # (its folder preprocess/ is imported as genemask_preprocess).
            say(f"pip could not install into this Python ({result.stderr.strip().splitlines()[-1:]}); "
                f"installing into {s.work / 'site'} instead")
            target = s.work / "site"
            result = pip_install([*offline, "--target", str(target), *wheels], 300)
            if result.returncode != 0:
                raise CheckFailed(f"environment: pip install of the wheelhouse failed: "
                                  f"{result.stderr.strip().splitlines()[-1:]}")
            link = target / "genemask_preprocess"
            if not link.exists():
                link.symlink_to(REPO / "preprocess", target_is_directory=True)
            os.environ["PYTHONPATH"] = os.pathsep.join(
                [str(REPO), str(target), *filter(None, [os.environ.get("PYTHONPATH")])])
            sys.path[:0] = [str(REPO), str(target)]
        see_new_installs()
        env["install_s"]["fairseq_and_plugin"] = round(time.monotonic() - started, 1)
        say(f"installed fairseq and genemask-plugin offline in {env['install_s']['fairseq_and_plugin']} s")
        probe_imports = python_probe(imports)
        if probe_imports.returncode != 0:
            raise CheckFailed(f"environment: still cannot import: {probe_imports.stderr.strip().splitlines()[-1:]}")
    info = python_probe(
        "import json, torch, fairseq; c = torch.cuda.is_available(); p = torch.cuda.get_device_properties(0) if c "
        "else None; print(json.dumps({'torch': torch.__version__, 'cuda': torch.version.cuda, 'fairseq': "
        "fairseq.__version__, 'gpu': p.name if p else None, 'capability': '%d.%d' % (p.major, p.minor) if p else "
        "None, 'gpu_memory_gb': round(p.total_memory / 1024**3, 1) if p else None, 'gpus': "
        "torch.cuda.device_count()}))")
    if info.returncode != 0:
        raise CheckFailed(f"environment: {info.stderr.strip().splitlines()[-1:]}")
    env.update(json.loads(info.stdout.strip().splitlines()[-1]))
    if not s.cpu and not env["gpu"]:
        raise CheckFailed("environment: torch sees no GPU")
    if not s.cpu and env["capability"] and int(env["capability"].split(".")[0]) < 8:
        raise CheckFailed(f"environment: compute capability {env['capability']} has no bf16; the check needs >= 8.0")
    try:  # the plan is built in this process, by the project's pretraining command
        importlib.import_module("genemask_plugin.pretraining_command")
    except ImportError as err:
        raise CheckFailed(f"environment: this process cannot import genemask_plugin: {err}") from None
    return env


def see_new_installs() -> None:
    """Let this process import what was installed after it started, as a new one would: new packages, and the
    finder that an editable install adds through a .pth file (read only at start-up, hence addsitedir)."""
    for directory in [*site.getsitepackages(), site.getusersitepackages()]:
        if os.path.isdir(directory):
            site.addsitedir(directory)
    importlib.invalidate_caches()
