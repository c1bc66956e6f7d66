"""`submit`, `jobs` and `tune --address` against a real head with Ray's token auth on.

The head runs under its own HOME (its token in HOME/.ray/auth_token, as `ray start` keeps
it); the client side points HOME at another temp dir, so the user's real ~/.ray/auth_token
is never read or written.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kanplatform.cli import main as cli
from tests.launch.conftest import QUICK_GRACE_S, _free_port, cluster_pids, ray_env, stop_cluster

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).parent / "ray")


@pytest.fixture(scope="module")
def token_head(tmp_path_factory):
    """(dashboard URL, GCS address, token) of a 1-CPU head started with RAY_AUTH_MODE=token."""
    root = tmp_path_factory.mktemp("auth")
    home = root / "head-home"
    (home / ".ray").mkdir(parents=True)
    token = secrets.token_hex(16)
    (home / ".ray" / "auth_token").write_text(token)
    # HOME is the head's own, the caches are the user's: under a fresh HOME every job built
    # the C kernels and matplotlib's font list again (~10 s of a 4-step run)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    env = {**ray_env(root), "RAY_AUTH_MODE": "token", "HOME": str(home),
           "XDG_CACHE_HOME": cache}
    gcs, dash, client = _free_port(), _free_port(), _free_port()
    try:
        subprocess.run(
            [RAY, "start", "--head", "--port", str(gcs), "--node-ip-address", "127.0.0.1",
             "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash),
             "--include-dashboard", "true", "--ray-client-server-port", str(client),
             "--temp-dir", str(root / "t"), "--disable-usage-stats", "--num-cpus", "1"],
            env=env, cwd=root, check=True, capture_output=True, text=True, timeout=120)
        yield f"http://127.0.0.1:{dash}", f"127.0.0.1:{gcs}", token
    finally:
        stop_cluster(root, QUICK_GRACE_S)
    assert not cluster_pids(root)


@pytest.fixture
def client_home(tmp_path, monkeypatch):
    """A HOME without any Ray token, and no Ray auth variables: a fresh user's shell."""
    home = tmp_path / "client-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        monkeypatch.setenv(var, "x")  # recorded, so that teardown restores the original
        monkeypatch.delenv(var)
    return home


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    return err


def test_without_a_token_every_command_is_one_line_saying_what_to_set(
        token_head, client_home, capsys):
    url, _, _ = token_head
    assert cli(["jobs", "list", "--address", url]) == 2
    err = _one_line_error(capsys)
    assert "requires token authentication and no token was found" in err
    assert "ray get-auth-token" in err and "RAY_AUTH_TOKEN" in err
    assert cli(["jobs", "status", "nope", "--address", url]) == 2
    assert "requires token authentication" in _one_line_error(capsys)


def test_a_wrong_token_is_named_with_where_it_came_from(token_head, client_home, capsys):
    url, _, _ = token_head
    (client_home / ".ray").mkdir()
    (client_home / ".ray" / "auth_token").write_text("not-the-token")
    assert cli(["jobs", "list", "--address", url]) == 2
    err = _one_line_error(capsys)
    assert f"refused the token from {client_home}/.ray/auth_token" in err


def test_with_the_token_submit_and_jobs_work(token_head, client_home, tmp_path, capsys,
                                             monkeypatch):
    url, _, token = token_head
    (client_home / ".ray").mkdir()
    (client_home / ".ray" / "auth_token").write_text(token)  # where Ray keeps it
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({
        "name": "auth-train",
        "run": {"command": "train", "config": "configs/experiment/quick.yaml",
                "overrides": {"data.n_train": 100, "grid.steps_per_stage": 2,
                              "trainer.num_threads": 1}},
        "runtime_env": {"working_dir": str(ROOT), "env_vars": {"WANDB_MODE": "disabled"}},
        "storage_path": str(tmp_path / "runs"),
    }))
    assert cli(["submit", str(job), "--address", url, "--wait"]) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    job_id = next(w for line in out.splitlines() if line.startswith("submitted job")
                  for w in line.split()[2:3])
    assert f"job {job_id} SUCCEEDED" in out
    (run,) = (tmp_path / "runs").glob("quick-*")  # in the job's storage, not Ray's temp copy
    assert '"completed"' in (run / "metrics.json").read_text()
    # the token from the environment instead of the file works the same
    (client_home / ".ray" / "auth_token").unlink()
    monkeypatch.setenv("RAY_AUTH_TOKEN", token)
    assert cli(["jobs", "status", job_id, "--address", url]) == 0
    assert capsys.readouterr().out.startswith(f"{job_id} SUCCEEDED")


def test_tune_address_joins_a_token_head_with_the_token_where_ray_keeps_it(
        token_head, client_home, tmp_path):
    """`connect` (what `tune/scale --address` call) in a fresh process: RAY_AUTH_MODE unset,
    the token in ~/.ray/auth_token; without the token, one line."""
    _, gcs, token = token_head
    probe = ("from kanplatform.search import parse_search\n"
             "from kanplatform.search.ray_cluster import connect\n"
             "conn = connect(parse_search({'space': {'optim.lr': 1.0}}), " + repr(gcs) + ")\n"
             "print('CPU', conn.resources['CPU']); conn.shutdown()\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env["HOME"] = str(client_home)
    failed = subprocess.run([sys.executable, "-c", "import sys\n"
                             "from kanplatform.search import SearchSpecError\n"
                             "try:\n    exec(sys.argv[1])\n"
                             "except SearchSpecError as e:\n    print('ERR', e)", probe],
                            env=env, capture_output=True, text=True, timeout=120)
    assert "ERR the Ray cluster at " + gcs + " refused this driver" in failed.stdout, \
        failed.stdout + failed.stderr
    (client_home / ".ray").mkdir()
    (client_home / ".ray" / "auth_token").write_text(token)
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "CPU 1.0" in done.stdout, done.stdout + done.stderr
