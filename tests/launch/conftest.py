"""A real two-node Ray cluster with its dashboard and job server, on 127.0.0.1.

Started with `ray start` (the venv's bin first on PATH, so jobs run this interpreter) under a
private --temp-dir, and stopped by PID: SIGTERM, a grace period, SIGKILL for what is left.
Never `ray stop`, which would kill every Ray process on the host. Run these tests inside a
loopback-only network namespace (`make test` does) so Ray binds nothing but 127.0.0.1.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return tree


MARKER = "KANPLATFORM_TEST_CLUSTER"  # in the environment of every process the cluster starts


def cluster_pids(temp_dir: Path) -> set[int]:
    """Processes naming ``temp_dir`` (command line or marker variable), and descendants.

    The marker finds the detached ones (Ray's client server re-parents to init and names no
    temp dir); the process tree finds the workers and job drivers under the raylets.
    """
    marker = f"{MARKER}={temp_dir}".encode()
    roots = set()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if (f"{temp_dir}/".encode() in (proc / "cmdline").read_bytes()
                    or marker in (proc / "environ").read_bytes().split(b"\0")):
                roots.add(int(proc.name))
        except OSError:
            continue
    tree, found, todo = _children(), set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo += tree.get(pid, [])
    return {p for p in found - {os.getpid()} if _alive(p)}


# After SIGTERM every process of a test cluster is gone within ~0.5 s but gcs_server (and
# one Python helper), which outlive any grace (8 s measured): a cluster whose records
# nobody reads afterwards needs no longer than this.
QUICK_GRACE_S = 2.0


def stop_cluster(temp_dir: Path, grace_s: float = 8.0) -> None:
    """SIGTERM every cluster process, wait up to ``grace_s``, SIGKILL the survivors
    (gcs_server ignores SIGTERM)."""
    pids = cluster_pids(temp_dir)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and pids:
        pids = {p for p in pids if _alive(p)}
        time.sleep(0.5)
    pids |= cluster_pids(temp_dir)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (dead, waiting to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def ray_env(home: Path) -> dict[str, str]:
    """Environment for `ray start` and the jobs it runs: this venv, no auth, no telemetry."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        RAY_AUTH_MODE="disabled",
        RAY_USAGE_STATS_ENABLED="0",
        WANDB_MODE="offline",
        WANDB_DIR=str(home / "wandb"),
        WANDB_DATA_DIR=str(home / "wandb-data"),
        WANDB_CACHE_DIR=str(home / "wandb-cache"),
        WANDB_CONFIG_DIR=str(home / "wandb-config"),
    )
    env.pop("RAY_ADDRESS", None)
    env[MARKER] = str(home)
    return env


@dataclass(frozen=True)
class RayHead:
    """The addresses of a test cluster's head, in each form ``--address`` accepts."""

    dashboard: str  # http://127.0.0.1:PORT
    gcs: str  # 127.0.0.1:PORT, as `ray start --head` prints it
    client: str  # ray://127.0.0.1:PORT
    fault: Path  # while this file exists, the head's next ray:// client server dies on start

    def fail_next_client_server(self) -> None:
        """Make the next ray:// session's server process on the head exit at start, as
        Ray's do at times on a busy head (the driver's retry: search/ray_cluster.py)."""
        self.fault.touch()


# On the head's PYTHONPATH: the process Ray starts for a ray:// driver ("specific-server")
# exits at once, once, while the fault file exists.
_FAULT_SITE = """\
import os
_fault = os.environ.get("KANPLATFORM_TEST_CLIENT_SERVER_FAULT")
if _fault and os.path.exists(_fault):
    with open("/proc/self/cmdline", "rb") as _f:
        _cmd = _f.read()
    if b"specific-server" in _cmd:
        try:
            os.remove(_fault)
        except OSError:
            pass
        else:
            os._exit(1)
"""


@pytest.fixture(scope="module")
def ray_cluster(ray_head):
    """The dashboard URL of a head (1 CPU) + worker (1 CPU) cluster."""
    return ray_head.dashboard


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory, request):
    """Yield the :class:`RayHead` of a head (1 CPU) + worker (1 CPU) cluster; stop it after.

    The head's GCS port is the test module's ``RAY_GCS_PORT`` if it sets one (a free port
    otherwise)."""
    root = tmp_path_factory.mktemp("rc")
    # Short names: Ray's unix socket paths must stay under 107 bytes. One temp dir per node,
    # as on a real cluster: nodes sharing one would unpack each job's working_dir into the
    # same folder, pulling it from under the running driver.
    head_dir, worker_dir = root / "h", root / "w"
    env = ray_env(root)
    (root / "site").mkdir()
    (root / "site" / "sitecustomize.py").write_text(_FAULT_SITE)
    # the head waits 10 s (Ray: 30) for a ray:// session's server to listen before it
    # gives up on it: the driver then tries again (a real start takes ~2 s here)
    head_env = {**env, "PYTHONPATH": str(root / "site"),
                "KANPLATFORM_TEST_CLIENT_SERVER_FAULT": str(root / "client-fault"),
                "RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S": "10"}
    patch = pytest.MonkeyPatch()
    patch.setenv("RAY_AUTH_MODE", "disabled")  # the client side must agree with the cluster
    patch.delenv("RAY_ADDRESS", raising=False)
    gcs_port = getattr(request.module, "RAY_GCS_PORT", None) or _free_port()
    dash_port, client_port = _free_port(), _free_port()
    common = ["--disable-usage-stats", "--num-cpus", "1"]
    ray = str(Path(sys.executable).parent / "ray")
    try:
        subprocess.run(
            [ray, "start", "--head", "--port", str(gcs_port), "--node-ip-address", "127.0.0.1",
             "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash_port),
             "--include-dashboard", "true", "--ray-client-server-port", str(client_port),
             "--temp-dir", str(head_dir), *common],
            env=head_env, cwd=root, check=True, capture_output=True, text=True, timeout=120,
        )
        subprocess.run(
            [ray, "start", "--address", f"127.0.0.1:{gcs_port}", "--node-ip-address",
             "127.0.0.1", "--temp-dir", str(worker_dir), *common],
            env=env, cwd=root, check=True, capture_output=True, text=True, timeout=120,
        )
        yield RayHead(f"http://127.0.0.1:{dash_port}", f"127.0.0.1:{gcs_port}",
                      f"ray://127.0.0.1:{client_port}", root / "client-fault")
    except subprocess.CalledProcessError as err:
        pytest.fail(f"ray start failed:\n{err.stdout}\n{err.stderr}")
    finally:
        stop_cluster(root, QUICK_GRACE_S)
        patch.undo()
    leftover = cluster_pids(root)
    assert not leftover, f"cluster processes still alive after SIGKILL: {sorted(leftover)}"
