"""Ray Jobs API through `kanplatform submit` and `kanplatform jobs`, on a real cluster."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import pytest
import yaml

from kanplatform.cli import main as cli
from kanplatform.launch import submit
from kanplatform.search.address import parse_address, to_ray_address

ROOT = Path(__file__).resolve().parents[2]
SEARCH = "tests/launch/tiny_search.yaml"
QUICK = ROOT / "configs" / "experiment" / "quick.yaml"
# the head listens on Ray's default GCS port, so that a dashboard URL given to `tune` finds its
# head (inside the tests' own network namespace nothing else holds the port)
RAY_GCS_PORT = 6379


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends


def test_address_resolution(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert submit.resolve_address(None) == "http://127.0.0.1:8265"
    monkeypatch.setenv("RAY_ADDRESS", "http://head:8265/")
    assert submit.resolve_address(None) == "http://head:8265"
    # a head's HOST:PORT is looked up when submitting (tests/launch/test_address.py); a plan
    # contacts nothing and shows it as given
    assert submit.resolve_address("head:6379", lookup=False) == "head:6379"
    assert submit.resolve_address("https://ray.example.org/") == "https://ray.example.org"


@pytest.mark.parametrize("argv", [["jobs", "status", "some-id"], ["jobs", "list"],
                                  ["jobs", "logs", "x", "--follow"], ["jobs", "stop", "x"]])
def test_unreachable_cluster_is_one_clear_error_fast(argv, capsys):
    address = f"http://127.0.0.1:{_closed_port()}"
    start = time.monotonic()
    assert cli([*argv, "--address", address]) == 2
    assert time.monotonic() - start < 3
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"error: no Ray cluster answers at {address}")
    assert "--address" in err  # says how to fix it


def test_submit_to_unreachable_cluster(tmp_path, capsys):
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({
        "run": {"command": "train", "config": "configs/experiment/quick.yaml"},
        "runtime_env": {"working_dir": str(ROOT)},
        "address": f"http://127.0.0.1:{_closed_port()}",
    }))
    start = time.monotonic()
    assert cli(["submit", str(job), "--no-check"]) == 2  # --no-check: time only the contact
    assert time.monotonic() - start < 3
    assert "no Ray cluster answers at http://127.0.0.1:" in capsys.readouterr().err


def _job_file(tmp_path: Path, address: str) -> Path:
    """A tiny `tune` job: two trials of the quick config, one per node, results in tmp."""
    path = tmp_path / "tune_job.yaml"
    path.write_text(yaml.safe_dump({
        "name": "launch-test",
        "run": {"command": "tune", "config": "configs/experiment/quick.yaml", "search": SEARCH,
                "overrides": {"trainer.num_threads": 1, "data.n_train": 100}},
        "address": address,
        # both nodes are this machine: its /tmp (where tmp_path lives) is shared storage
        "runtime_env": {"working_dir": str(ROOT),
                        "env_vars": {"WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1",
                                     "KANPLATFORM_SHARED_TMP": "1"}},
        "resources": {"cpus": 1, "nodes": 2},
        "storage_path": str(tmp_path / "results"),
    }))
    return path


def _submitted_id(out: str) -> str:
    match = re.search(r"^submitted job (\S+)$", out, re.M)
    assert match, out
    return match.group(1)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_tune_job_on_a_real_cluster(ray_cluster, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KANPLATFORM_SHARED_TMP", "1")
    job = _job_file(tmp_path, ray_cluster)

    # 1. submit: the job id and the dashboard URL are printed
    assert cli(["submit", str(job)]) == 0
    out = capsys.readouterr().out
    job_id = _submitted_id(out)
    assert job_id.startswith("kanplatform-launch-test-")
    assert f"dashboard: {ray_cluster}/#/jobs/{job_id}" in out

    # 2. follow it to SUCCEEDED (streams its logs), then read them back through kanplatform
    assert cli(["jobs", "logs", job_id, "--follow", "--address", ray_cluster]) == 0, \
        capsys.readouterr()
    followed = capsys.readouterr()
    assert f"job {job_id} SUCCEEDED" in followed.err
    assert cli(["jobs", "status", job_id, "--address", ray_cluster]) == 0
    assert capsys.readouterr().out.startswith(f"{job_id} SUCCEEDED")
    assert cli(["jobs", "logs", job_id, "--address", ray_cluster]) == 0
    logs = capsys.readouterr().out
    assert "launch-test" in logs and "model.grid_size" in logs
    experiments = list((tmp_path / "results").glob("launch-test-*"))
    assert len(experiments) == 1 and (experiments[0] / "trials.csv").is_file()

    # 3. a second one, stopped while it runs
    assert cli(["submit", str(job), "--address", ray_cluster]) == 0
    second = _submitted_id(capsys.readouterr().out)
    assert submit.wait(ray_cluster, second, timeout=60, poll=0.5,
                       until=lambda s: s != "PENDING") == "RUNNING"
    assert cli(["jobs", "stop", second, "--wait", "--address", ray_cluster]) == 0
    assert capsys.readouterr().out.strip() == f"{second} STOPPED"
    assert cli(["jobs", "status", second, "--address", ray_cluster]) == 0
    assert capsys.readouterr().out.startswith(f"{second} STOPPED")

    assert cli(["jobs", "list", "--address", ray_cluster]) == 0
    listed = capsys.readouterr().out
    assert f"{job_id}\tSUCCEEDED" in listed and f"{second}\tSTOPPED" in listed


def _wait_listening(addr, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection((addr.host, addr.port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"nothing listens at {addr.text} after {timeout_s} s")


def _one_trial_search(tmp_path: Path) -> Path:
    path = tmp_path / "one.yaml"  # one trial: the address is what is tested
    path.write_text(yaml.safe_dump({
        "name": "addr", "metric": "val/rmse", "mode": "min", "num_samples": 1,
        "space": {"model.grid_size": {"grid_search": [3]}}, "scheduler": {"kind": "fifo"},
        "resources": {"cpu": 1, "gpu": 0, "workers": 1}}))
    return path


def _train_job(tmp_path: Path) -> Path:
    path = tmp_path / "train_job.yaml"
    path.write_text(yaml.safe_dump({
        "name": "addr-test",
        "run": {"command": "train", "config": "configs/experiment/quick.yaml",
                "overrides": {"trainer.num_threads": 1, "data.n_train": 100,
                              "output_dir": str(tmp_path / "job-runs")}},
        "runtime_env": {"working_dir": str(ROOT),
                        "env_vars": {"WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}},
        "resources": {"cpus": 1, "nodes": 1},
    }))
    return path


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_every_address_form_reaches_the_cluster_from_tune_and_submit(ray_head, tmp_path,
                                                                      capsys, monkeypatch):
    """HOST:PORT, ray://HOST:PORT and the dashboard URL (kanplatform/search/address.py)."""
    monkeypatch.setenv("KANPLATFORM_SHARED_TMP", "1")  # both nodes are this machine's /tmp
    monkeypatch.chdir(ROOT)
    forms = {"gcs": ray_head.gcs, "client": ray_head.client, "dashboard": ray_head.dashboard}
    assert to_ray_address(ray_head.dashboard)[0] == ray_head.gcs  # converted, and said so

    search = _one_trial_search(tmp_path)
    # tune --address HOST:PORT: tests/search/test_cluster.py (the two-node search)
    _wait_listening(parse_address(ray_head.client), 120)  # its own process, slow to import ray
    for form in ("client", "dashboard"):
        address = forms[form]
        if form == "client":  # its first session's server dies on start: the driver retries
            ray_head.fail_next_client_server()
            # the failed session's stream closes after 2 s, not Ray's 30
            monkeypatch.setenv("RAY_CLIENT_RECONNECT_GRACE_PERIOD", "2")
        rc = cli(["tune", str(QUICK), str(search), "trainer.num_threads=1", "data.n_train=100",
                  f"output_dir={tmp_path / 'runs'}", "--address", address, "--output-dir",
                  str(tmp_path / "tune"), "--name", f"addr-{form}", "--verbose", "0"])
        out = capsys.readouterr()
        assert rc == 0, f"{form}: {out.err[-2000:]}"
        table = (tmp_path / "tune" / f"addr-{form}" / "trials.json").read_text()
        assert '"completed"' in table, form
        if form == "dashboard":
            assert f"joining its head at {ray_head.gcs}" in out.err
        else:
            assert not ray_head.fault.exists()  # the fault fired: a real failed start
            assert f"client server at {address} did not start a session (try 1 of 3)" in out.err

    job = _train_job(tmp_path)
    for form, address in forms.items():
        assert cli(["submit", str(job), "--address", address]) == 0, capsys.readouterr().err
        out = capsys.readouterr()
        job_id = re.search(r"^submitted job (\S+)$", out.out, re.M).group(1)
        assert f"dashboard: {ray_head.dashboard}/#/jobs/{job_id}" in out.out, form
        if form != "dashboard":
            assert f"note: --address {address} is the cluster's" in out.err or \
                "Ray Client address" in out.err
        assert cli(["jobs", "status", job_id, "--address", address]) == 0
        assert capsys.readouterr().out.split()[:1] == [job_id]
