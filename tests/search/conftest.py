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

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "configs" / "experiment" / "quick.yaml"


@pytest.fixture(autouse=True)
def search_env(tmp_path, monkeypatch):
    """Ray without auth or telemetry, W&B offline under tmp_path; Ray shut down afterwards."""
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    for var in ("WANDB_DIR", "WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
        d = tmp_path / "wandb-home" / var.lower()
        d.mkdir(parents=True)
        monkeypatch.setenv(var, str(d))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    yield
    import sys

    if "ray" in sys.modules:
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
