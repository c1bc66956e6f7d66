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

ROOT = Path(__file__).resolve().parents[2]
SEARCH = "tests/launch/tiny_search.yaml"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends


def test_address_resolution(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert submit.resolve_address(None) == "http://127.0.0.1:8265"
    monkeypatch.setenv("RAY_ADDRESS", "head:8265")
    assert submit.resolve_address(None) == "http://head:8265"
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
