"""How many CPUs this process may really use: affinity and the cgroup CPU quota.

``os.cpu_count()`` (and torch's default thread count) sees every core of the machine, but a
container, a Slurm job or ``taskset`` gives a process fewer: an affinity mask
(``os.sched_getaffinity``) and/or a CFS quota (cgroup v2 ``cpu.max``, v1
``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``). More threads than that only queue behind each
other, and OpenMP threads waiting at a barrier for a descheduled sibling make a step many
times slower than one thread would be (``benchmarks/bench_train.py --contended``).

Nothing here imports torch (see :mod:`kanplatform._util`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["CGROUP_ROOT", "PASSIVE_OPENMP", "available_cpus", "cgroup_cpu_limit",
           "passive_openmp"]

CGROUP_ROOT = "/sys/fs/cgroup"
PROC_CGROUP = "/proc/self/cgroup"
# set before the OpenMP runtime loads (it reads them once): idle OpenMP threads sleep instead
# of spinning, so they give their core to whoever needs it (a sibling thread descheduled by
# another process, another trial); GOMP_SPINCOUNT keeps a short spin so that back-to-back
# parallel regions on a quiet machine still find their threads awake
PASSIVE_OPENMP = {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "10000"}


def passive_openmp(environ: dict[str, str] | None = None) -> None:
    """Set :data:`PASSIVE_OPENMP` in ``environ`` (default ``os.environ``) where the user has
    not set them. Effective only before libgomp is loaded (``import torch``); child
    processes (Ray workers, jobs) inherit it either way."""
    env = os.environ if environ is None else environ
    if "OMP_WAIT_POLICY" in env:  # the user's own policy (empty: libgomp's default) decides
        return
    for key, value in PASSIVE_OPENMP.items():
        env.setdefault(key, value)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _v2_limit(directory: Path) -> float | None:
    text = _read(directory / "cpu.max")  # "max 100000" or "150000 100000"
    if not text:
        return None
    parts = text.split()
    try:
        if parts[0] == "max":
            return None
        period = float(parts[1]) if len(parts) > 1 else 100000.0
        return float(parts[0]) / period if period > 0 else None
    except (ValueError, IndexError):
        return None


def _v1_limit(directory: Path) -> float | None:
    quota, period = _read(directory / "cpu.cfs_quota_us"), _read(directory / "cpu.cfs_period_us")
    try:
        q, p = float(quota or "-1"), float(period or "0")
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def _candidates(mount: Path, path: str) -> list[Path]:
    """``mount/path`` and its parents up to ``mount`` (a quota set on a parent applies too);
    just ``mount`` when the path is not visible there (a container's own cgroup namespace)."""
    here = mount / path.strip().lstrip("/")
    if not here.is_dir():
        return [mount]
    out = [here]
    while out[-1] != mount and mount in out[-1].parents:
        out.append(out[-1].parent)
    return out


def cgroup_cpu_limit(root: str | Path = CGROUP_ROOT,
                     proc_cgroup: str | Path = PROC_CGROUP) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (e.g. ``1.5``), or ``None`` if none.

    Reads ``proc_cgroup`` (``/proc/self/cgroup``) for the process's cgroup, then cgroup v2
    ``root/<path>/cpu.max`` or v1 ``root/<cpu controller>/<path>/cpu.cfs_quota_us`` and
    ``cpu.cfs_period_us``, in that directory and each parent: the smallest limit wins.

    Args:
        root: where the cgroup file system is mounted (a test passes a folder it wrote).
        proc_cgroup: the process's cgroup membership file.
    """
    root = Path(root)
    text = _read(Path(proc_cgroup)) or ""
    limits: list[float] = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":  # v2 unified hierarchy: "0::/user.slice/..."
            dirs, read = _candidates(root, path), _v2_limit
        elif "cpu" in controllers.split(","):  # v1: "4:cpu,cpuacct:/docker/..."
            mounts = [root / name for name in (controllers, "cpu,cpuacct", "cpu")
                      if (root / name).is_dir()]
            if not mounts:
                continue
            dirs, read = _candidates(mounts[0], path), _v1_limit
        else:
            continue
        limits += [v for v in map(read, dirs) if v is not None]
    return min(limits) if limits else None


def available_cpus(root: str | Path = CGROUP_ROOT,
                   proc_cgroup: str | Path = PROC_CGROUP) -> int:
    """CPUs this process may keep busy: its affinity mask, capped by the cgroup quota
    (rounded down, at least 1). Arguments as for :func:`cgroup_cpu_limit`."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        n = os.cpu_count() or 1
    quota = cgroup_cpu_limit(root, proc_cgroup)
    if quota is not None:
        n = min(n, max(1, math.floor(quota)))
    return max(1, n)
