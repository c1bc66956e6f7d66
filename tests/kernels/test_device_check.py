"""The GPU check scripts on a machine without a GPU: benchmarks/device_check.sh refuses in one
line before it creates anything, and benchmarks/ddp_check.py's data-parallel training runs on
CPU workers (gloo), matching one process. On a GPU machine device_check.sh itself runs them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "device_check.sh"


def _device_check(*args: str, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run(["bash", str(SCRIPT), *args], env=full, capture_output=True,
                          text=True, timeout=120)


def test_device_check_refuses_a_used_outdir_and_bad_usage(tmp_path) -> None:
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    res = _device_check(str(used))
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.count("\n") == 1 and "is not an empty folder" in res.stderr
    assert [p.name for p in used.iterdir()] == ["notes.txt"]  # untouched
    res = _device_check("a", "b")
    assert res.returncode == 2 and "usage: benchmarks/device_check.sh [OUTDIR]" in res.stderr
    res = _device_check(str(tmp_path / "new"), DEVICE_CHECK_BUDGET="soon")
    assert res.returncode == 2 and "DEVICE_CHECK_BUDGET=soon" in res.stderr


def test_device_check_without_a_gpu_says_so_and_leaves_nothing(tmp_path) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is here: device_check.sh would run its checks (minutes)")
    out = tmp_path / "dc"
    res = _device_check(str(out))
    assert res.returncode == 2 and res.stdout == "", res.stdout
    assert res.stderr.count("\n") == 1 and "no CUDA GPU visible" in res.stderr, res.stderr
    assert not out.exists()


@pytest.mark.slow
def test_ddp_check_trains_data_parallel_like_one_process(tmp_path) -> None:
    """Two gloo workers on CPU, each half the batch: the parameters equal the one-process
    run's and each other's, the loss falls, and the JSON says how it ran."""
    out = tmp_path / "ddp.json"
    res = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "ddp_check.py"), "--device", "cpu",
         "--batch", "512", "--steps", "4", "--json", str(out)],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
    got = json.loads(out.read_text())
    assert (got["workers"], got["backend"]) == (2, "gloo")
    assert all(got["checks"].values()) and len(got["checks"]) == 3, got["checks"]
    assert got["worker_spread"] == 0.0 and got["param_diff"] <= 1e-4
    assert got["loss_diff"] <= 1e-5 and got["losses"][-1] < got["losses"][0]
    assert "PASS: matches one process" in res.stdout
