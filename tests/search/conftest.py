"""Shared pieces of the search tests: hermetic W&B and Ray settings, the tiny base config.

Every test that starts Ray runs inside a loopback-only network namespace (``make test``), so
Ray binds 127.0.0.1 only. Local instances are started and stopped by ``run_search`` itself;
``ray start`` clusters are stopped by PID (see ``tests/launch/conftest.py``), never ``ray stop``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.tracking.conftest import leet_summary_at, offline_run_dir

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "configs" / "experiment" / "quick.yaml"


def _hermetic(patch: pytest.MonkeyPatch, home: Path) -> None:
    """Ray without auth or telemetry, W&B offline under ``home``, no user key."""
    patch.setenv("RAY_AUTH_MODE", "disabled")
    patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    patch.delenv("RAY_ADDRESS", raising=False)
    patch.setenv("WANDB_MODE", "offline")
    for var in ("WANDB_DIR", "WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
        d = home / "wandb-home" / var.lower()
        d.mkdir(parents=True, exist_ok=True)
        patch.setenv(var, str(d))
    patch.delenv("WANDB_API_KEY", raising=False)


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    """One local Ray (2 CPUs, 127.0.0.1) for a module's searches, started as a search starts
    its own (``connect``: the same init and trial environment); searches find it running and
    leave it up (a Ray start and stop costs ~10-15 s a test). Stopped after the module."""
    from kanplatform.search import parse_search
    from kanplatform.search.ray_cluster import connect

    patch = pytest.MonkeyPatch()
    _hermetic(patch, tmp_path_factory.mktemp("ray-home"))
    conn = connect(parse_search({"space": {"optim.lr": 1.0}}), num_cpus=2)
    assert conn.started_here
    try:
        yield conn
    finally:
        conn.shutdown()
        patch.undo()


@pytest.fixture(autouse=True)
def search_env(tmp_path, monkeypatch, request):
    """Ray without auth or telemetry, W&B offline under tmp_path; Ray shut down afterwards
    (except a module's shared ``local_ray``)."""
    _hermetic(monkeypatch, tmp_path)
    yield
    import sys

    if "ray" in sys.modules and "local_ray" not in request.fixturenames:
        import ray

        if ray.is_initialized():
            ray.shutdown()


def tiny_overrides(tmp_path: Path, *extra: str) -> list[str]:
    """A KAN [2, 1, 1] on 200 points, 2 grid stages of 10 LBFGS steps: a trial in seconds."""
    return [f"output_dir={tmp_path / 'runs'}", "trainer.num_threads=1", *extra]


def read_table(experiment_dir: Path) -> tuple[list[dict], list[dict]]:
    """The trials table as written: (trials.json rows, trials.csv rows)."""
    rows = json.loads((experiment_dir / "trials.json").read_text())
    with open(experiment_dir / "trials.csv") as fh:
        csv_rows = list(csv.DictReader(fh))
    return rows, csv_rows


def check_records(rows: list[dict], csv_rows: list[dict]) -> None:
    """Every trial's status and reason agree in metrics.json, trials.json, trials.csv and W&B,
    whose run was finished (exit code 0 for completed/stopped, else 1; any status but
    completed is a tag, the status and reason are in its summary)."""
    by_csv = {r["trial_id"]: r for r in csv_rows}
    assert len(by_csv) == len(rows)
    for row in rows:
        run_dir = Path(row["run_dir"])
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert metrics["status"] == row["status"] == by_csv[row["trial_id"]]["status"], row
        assert metrics["reason"] == row["reason"]
        assert metrics["wall_time_s"] is not None
        summary = leet_summary_at(offline_run_dir(run_dir))
        ok = row["status"] in ("completed", "stopped")
        assert summary["exit_code"] == (0 if ok else 1), (row, summary)
        # written to its end: wandb's word for a run finished with exit code 1 is "failed"
        assert summary["state"] == ("finished" if ok else "failed"), (row, summary)
        assert summary["summary"]["status"] == row["status"]
        assert summary["summary"].get("reason") == row["reason"]
        assert ("stopped" in summary.get("tags", [])) == (row["status"] == "stopped")
        if row["status"] in ("completed", "stopped"):
            assert summary["summary"]["val/rmse"] == pytest.approx(row["val/rmse"])


def most_at_once(rows: list[dict]) -> int:
    """The most trials that were running at one moment (RUN_DIR/trial.json start/end); the
    runs of one stacked trial (one process, at the same time) count once."""
    by_pid: dict[int, list[tuple[float, float]]] = {}
    for row in rows:
        times = json.loads((Path(row["run_dir"]) / "trial.json").read_text())
        by_pid.setdefault(times["pid"], []).append((times["started"], times["ended"]))
    events = []
    for spans in by_pid.values():  # a reused worker runs its trials one after another
        merged: list[list[float]] = []
        for start, end in sorted(spans):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        events += [(t, step) for start, end in merged for t, step in ((start, 1), (end, -1))]
    running = most = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):
        running += step
        most = max(most, running)
    return most
