"""CPUs a process may use: cgroup v1/v2 quotas read from real files, affinity, thread defaults."""

import os

import pytest
import torch

from kanplatform._util.cpus import available_cpus, cgroup_cpu_limit, passive_openmp
from kanplatform.train.fitting import run_threads


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_cgroup_v2_quota_of_the_process_and_its_parents(tmp_path):
    proc = _write(tmp_path / "proc_cgroup", "0::/user.slice/job.scope\n")
    root = tmp_path / "cg"
    _write(root / "user.slice" / "job.scope" / "cpu.max", "max 100000\n")
    assert cgroup_cpu_limit(root, proc) is None
    _write(root / "user.slice" / "cpu.max", "150000 100000\n")  # a parent's quota applies
    assert cgroup_cpu_limit(root, proc) == 1.5
    _write(root / "user.slice" / "job.scope" / "cpu.max", "50000 100000\n")
    assert cgroup_cpu_limit(root, proc) == 0.5
    assert available_cpus(root, proc) == 1  # at least one


def test_cgroup_v2_inside_a_container_namespace(tmp_path):
    # the process's path is not visible under the mount: the mount itself is its cgroup
    proc = _write(tmp_path / "proc_cgroup", "0::/../../outside\n")
    _write(tmp_path / "cg" / "cpu.max", "200000 100000")
    assert cgroup_cpu_limit(tmp_path / "cg", proc) == 2.0


def test_cgroup_v1_cfs_quota(tmp_path):
    proc = _write(tmp_path / "proc_cgroup",
                  "5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/\n")
    cpu = tmp_path / "cg" / "cpu,cpuacct"
    _write(cpu / "docker" / "abc" / "cpu.cfs_quota_us", "-1\n")
    _write(cpu / "docker" / "abc" / "cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_limit(tmp_path / "cg", proc) is None
    _write(cpu / "docker" / "abc" / "cpu.cfs_quota_us", "100000\n")
    assert cgroup_cpu_limit(tmp_path / "cg", proc) == 1.0
    assert available_cpus(tmp_path / "cg", proc) == 1


def test_no_cgroup_or_unreadable_files_mean_no_quota(tmp_path):
    assert cgroup_cpu_limit(tmp_path / "none", tmp_path / "missing") is None
    proc = _write(tmp_path / "proc_cgroup", "0::/\n")
    _write(tmp_path / "cg" / "cpu.max", "garbage")
    assert cgroup_cpu_limit(tmp_path / "cg", proc) is None
    assert available_cpus(tmp_path / "cg", proc) == len(os.sched_getaffinity(0))


def test_a_quota_caps_the_affinity(tmp_path):
    proc = _write(tmp_path / "proc_cgroup", "0::/\n")
    _write(tmp_path / "cg" / "cpu.max", f"{100000 * 64} 100000")  # more than the machine
    assert available_cpus(tmp_path / "cg", proc) == len(os.sched_getaffinity(0))


def test_the_default_run_threads_follow_the_affinity():
    before, threads = os.sched_getaffinity(0), torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert run_threads(3) == 3  # trainer.num_threads wins
        os.sched_setaffinity(0, {min(before)})  # a real one-CPU mask, as taskset gives
        assert available_cpus() == 1 and run_threads(None) == 1
    finally:
        os.sched_setaffinity(0, before)
        torch.set_num_threads(threads)
    assert run_threads(None) == min(threads, available_cpus())


@pytest.mark.parametrize("env, expected", [
    ({}, {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "10000"}),
    ({"OMP_WAIT_POLICY": "active"}, {"OMP_WAIT_POLICY": "active"}),  # the user's choice
    ({"GOMP_SPINCOUNT": "5"}, {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "5"}),
])
def test_passive_openmp_keeps_what_the_user_set(env, expected):
    passive_openmp(env)
    assert env == expected


def test_importing_kanplatform_sets_passive_waiting_for_its_process():
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", "import os, kanplatform, torch; "
                          "print(os.environ['OMP_WAIT_POLICY'], os.environ['GOMP_SPINCOUNT'])"],
                         env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["PASSIVE", "10000"]
