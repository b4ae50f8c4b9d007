"""benchmarks/gpu_check_environment.py: what step 0 installs, the running check can import."""

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_packages_installed_after_start_become_importable_here(tmp_path):
    """As pip install -e does: a .pth file appears in a site folder after the process started."""
    site_dir, package_dir = tmp_path / "site-packages", tmp_path / "checkout"
    site_dir.mkdir()
    package_dir.mkdir()
    (package_dir / "installed_late.py").write_text("VALUE = 42\n")
    program = f"""
import site, sys
sys.path.insert(0, {str(BENCHMARKS)!r})
from gpu_check_environment import see_new_installs
site.getsitepackages = lambda: [{str(site_dir)!r}]
try:
    import installed_late
except ImportError:
    pass
else:
    sys.exit("importable before the install")
open({str(site_dir / "late.pth")!r}, "w").write({str(package_dir)!r} + "\\n")
see_new_installs()
import installed_late
print(installed_late.VALUE)
"""
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "42"
