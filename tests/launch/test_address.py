"""One ``--address``: HOST:PORT, ray://HOST:PORT and a dashboard URL each reach a real local
cluster from ``tune`` and from ``submit``/``jobs`` (kanplatform/search/address.py)."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import pytest
import yaml

from kanplatform.cli import main as cli
from kanplatform.search.address import AddressError, parse_address, to_ray_address

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "configs" / "experiment" / "quick.yaml"
# the head listens on Ray's default GCS port, so that a dashboard URL given to `tune` finds it
# (inside the test's own network namespace: nothing else holds the port)
RAY_GCS_PORT = 6379


@pytest.mark.parametrize("text, form, host, port", [
    ("127.0.0.1:6379", "gcs", "127.0.0.1", 6379),
    ("ray://head:10001", "client", "head", 10001),
    ("http://head:8265/", "dashboard", "head", 8265),
    ("https://ray.example.org", "dashboard", "ray.example.org", None),
    ("auto", "auto", None, None),
])
def test_the_three_forms_are_told_apart_without_contact(text, form, host, port):
    addr = parse_address(text)
    assert (addr.form, addr.host, addr.port) == (form, host, port)


@pytest.mark.parametrize("text", ["head", "ftp://head:21", "http://", "head:port", ":6379"])
def test_a_malformed_address_names_the_accepted_forms(text):
    with pytest.raises(AddressError, match=r"not a cluster address; use HOST:PORT .*ray://"
                                           r"HOST:PORT or http://HOST:8265"):
        parse_address(text)


def _wait_listening(addr, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection((addr.host, addr.port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"nothing listens at {addr.text} after {timeout_s} s")


def _search(tmp_path: Path) -> Path:
    path = tmp_path / "one.yaml"  # one trial: the address is what is tested
    path.write_text(yaml.safe_dump({
        "name": "addr", "metric": "val/rmse", "mode": "min", "num_samples": 1,
        "space": {"model.grid_size": {"grid_search": [3]}}, "scheduler": {"kind": "fifo"},
        "resources": {"cpu": 1, "gpu": 0, "workers": 1}}))
    return path


def _job(tmp_path: Path) -> Path:
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
def test_every_form_reaches_the_cluster_from_tune_and_submit(ray_head, tmp_path, capsys,
                                                              monkeypatch):
    monkeypatch.setenv("KANPLATFORM_SHARED_TMP", "1")  # both nodes are this machine's /tmp
    monkeypatch.chdir(ROOT)
    forms = {"gcs": ray_head.gcs, "client": ray_head.client, "dashboard": ray_head.dashboard}
    assert to_ray_address(ray_head.dashboard)[0] == ray_head.gcs  # converted, and said so

    search = _search(tmp_path)
    _wait_listening(parse_address(ray_head.client), 120)  # its own process, slow to import ray
    for form, address in forms.items():
        rc = cli(["tune", str(QUICK), str(search), "trainer.num_threads=1", "data.n_train=100",
                  f"output_dir={tmp_path / 'runs'}", "--address", address, "--output-dir",
                  str(tmp_path / "tune"), "--name", f"addr-{form}", "--verbose", "0"])
        out = capsys.readouterr()
        assert rc == 0, f"{form}: {out.err[-2000:]}"
        table = (tmp_path / "tune" / f"addr-{form}" / "trials.json").read_text()
        assert '"completed"' in table, form
        if form == "dashboard":
            assert f"joining its head at {ray_head.gcs}" in out.err

    job = _job(tmp_path)
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
