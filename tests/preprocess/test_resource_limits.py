"""The limits a job runs under: cores (affinity, cgroup quota) and memory (ulimit, cgroups, the machine)."""

import os
import subprocess
import sys
import textwrap

import pytest

from genemask_preprocess import resource_limits
from genemask_preprocess.resource_limits import (
    MemoryLimit,
    memory_limits,
    tightest_memory_limit,
    usable_cores,
)

GIB = 2**30


@pytest.fixture
def fake_system(tmp_path, monkeypatch):
    """A /proc and two cgroup trees (v2 at cg2/, v1's memory controller at cg1/), for this process."""
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "cgroup").write_text("0::/job/step\n4:memory:/slurm/job\n2:cpu,cpuacct:/slurm/job\n")
    (proc / "self" / "mountinfo").write_text(
        f"31 23 0:28 / {tmp_path}/cg2 rw,relatime - cgroup2 cgroup2 rw\n"
        f"35 31 0:32 / {tmp_path}/cg1 rw,relatime - cgroup cgroup rw,memory\n"
        f"36 31 0:33 /slurm {tmp_path}/cg1cpu rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
        f"40 31 0:37 / {tmp_path}/other rw - tmpfs tmpfs rw\n"
    )
    (proc / "self" / "status").write_text("Name:\tpython\nVmSize:\t  1048576 kB\nVmData:\t   524288 kB\n")
    (proc / "meminfo").write_text("MemTotal:       67108864 kB\nMemAvailable:   33554432 kB\n")
    for folder in ("cg2/job/step", "cg1/slurm/job", "cg1cpu/job"):
        (tmp_path / folder).mkdir(parents=True)
    monkeypatch.setattr(resource_limits, "PROC", proc)
    monkeypatch.setattr(resource_limits.resource, "getrlimit", lambda which: (resource_limits.resource.RLIM_INFINITY,) * 2)
    return tmp_path


def test_no_limit_leaves_the_machine_s_available_memory(fake_system):
    assert memory_limits() == [MemoryLimit(32 * GIB, "available memory (MemAvailable)", per_process=False)]


def test_cgroup_v2_limit_of_a_parent_binds_less_its_usage_but_not_its_page_cache(fake_system):
    (fake_system / "cg2/job/step/memory.max").write_text("max\n")
    (fake_system / "cg2/job/memory.max").write_text(f"{4 * GIB}\n")
    (fake_system / "cg2/job/memory.current").write_text(f"{3 * GIB}\n")
    (fake_system / "cg2/job/memory.stat").write_text(f"anon 1\ninactive_file {GIB}\n")
    limit = tightest_memory_limit()
    assert limit == MemoryLimit(2 * GIB, "cgroup memory.max 4.0 GiB", per_process=False)


def test_cgroup_v1_limit_and_unlimited_values(fake_system):
    (fake_system / "cg1/slurm/job/memory.limit_in_bytes").write_text("9223372036854771712\n")  # v1's "none"
    assert tightest_memory_limit().source.startswith("available memory")
    (fake_system / "cg1/slurm/memory.limit_in_bytes").write_text(f"{8 * GIB}\n")
    (fake_system / "cg1/slurm/memory.usage_in_bytes").write_text(f"{GIB}\n")
    assert tightest_memory_limit() == MemoryLimit(7 * GIB, "cgroup memory.limit_in_bytes 8.0 GiB", False)


def test_address_space_limit_is_per_process_and_counts_what_is_mapped(fake_system, monkeypatch):
    limits = {resource_limits.resource.RLIMIT_AS: 3 * GIB, resource_limits.resource.RLIMIT_DATA: 16 * GIB}
    monkeypatch.setattr(resource_limits.resource, "getrlimit",
                        lambda which: (limits.get(which, resource_limits.resource.RLIM_INFINITY),) * 2)
    found = {limit.source: limit for limit in memory_limits()}
    assert found["address-space limit (ulimit -v) 3.0 GiB"] == MemoryLimit(
        2 * GIB, "address-space limit (ulimit -v) 3.0 GiB", per_process=True)  # 3 GiB less VmSize 1 GiB
    assert found["data-size limit (ulimit -d) 16.0 GiB"].available == 16 * GIB - GIB // 2
    assert tightest_memory_limit().per_process


def test_cores_follow_the_cgroup_cpu_quota(fake_system, monkeypatch):
    monkeypatch.setattr(resource_limits.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert usable_cores() == 8
    (fake_system / "cg2/job/cpu.max").write_text("max 100000\n")
    assert usable_cores() == 8
    (fake_system / "cg2/job/cpu.max").write_text("250000 100000\n")  # docker --cpus 2.5
    assert usable_cores() == 3
    (fake_system / "cg1cpu/job/cpu.cfs_quota_us").write_text("50000\n")  # v1, under the mounted root
    (fake_system / "cg1cpu/job/cpu.cfs_period_us").write_text("100000\n")
    assert usable_cores() == 1


def test_unreadable_system_files_mean_no_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(resource_limits, "PROC", tmp_path / "nowhere")
    monkeypatch.setattr(resource_limits.resource, "getrlimit", lambda which: (resource_limits.resource.RLIM_INFINITY,) * 2)
    assert [limit for limit in memory_limits() if not limit.source.startswith("available memory")] == []
    assert usable_cores() >= 1


def test_a_real_ulimit_v_is_read(tmp_path):
    """What SGE's h_vmem does: RLIMIT_AS in the job's processes."""
    script = textwrap.dedent("""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, resource.RLIM_INFINITY))
        from genemask_preprocess.resource_limits import tightest_memory_limit
        limit = tightest_memory_limit()
        print(limit.source, limit.per_process, 0 < limit.available < 3 << 30)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env={**os.environ})
    assert done.stdout.split() == ["address-space", "limit", "(ulimit", "-v)", "3.0", "GiB", "True", "True"], done.stderr
