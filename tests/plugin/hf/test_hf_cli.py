"""genemask-hf's own checks before it loads transformers (genemask_plugin.hf.cli)."""

import pytest

from genemask_plugin.hf import cli
from genemask_preprocess.resource_limits import MemoryLimit


@pytest.mark.parametrize("command", ["export", "import"])
def test_too_little_address_space_for_transformers_is_refused_up_front_in_one_line(monkeypatch, capsys, tmp_path,
                                                                                   command):
    monkeypatch.setattr(cli, "memory_limits",
                        lambda: [MemoryLimit(100 << 20, "address-space limit (ulimit -v) 1.0 GiB", per_process=True)])
    assert cli.main([command, str(tmp_path / "in"), str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err == (
        "genemask-hf: error: loading transformers needs about 512 MiB of memory, but only 100 MiB is available "
        "(address-space limit (ulimit -v) 1.0 GiB)\n")
    assert list(tmp_path.iterdir()) == []


def test_a_shared_limit_does_not_stop_it(monkeypatch):
    """A cgroup's or the machine's free memory counts resident pages, which transformers' import barely adds."""
    monkeypatch.setattr(cli, "memory_limits",
                        lambda: [MemoryLimit(100 << 20, "cgroup memory.max 1.0 GiB", per_process=False)])
    cli.require_room_for_transformers()
