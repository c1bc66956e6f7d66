"""Shared pieces of the tracking tests: hermetic W&B, wandb's reader, a KAN-shaped model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch


@pytest.fixture
def wandb_env(tmp_path, monkeypatch):
    """W&B writes only under tmp_path and knows no user settings or key."""
    for var in ("WANDB_DIR", "WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
        d = tmp_path / "wandb-home" / var.lower()
        d.mkdir(parents=True)
        monkeypatch.setenv(var, str(d))
    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_RUN_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    yield tmp_path
    from kanplatform import tracking

    tracking.finish()  # whatever a failed test left open


def wandb_cli() -> str:
    return str(Path(sys.executable).parent / "wandb")


def leet_inspect(path: Path, *flags: str) -> str:
    """Stdout of ``wandb leet inspect FLAGS PATH``, run as that command runs it.

    ``wandb leet inspect`` is a Python wrapper (~1.5 s of imports a call) that resolves PATH
    and execs ``wandb-core leet inspect``, where wandb's reader lives; calling wandb-core
    the same way gives the same bytes in ~0.05 s.
    """
    from wandb.util import get_core_path

    path = Path(path).resolve()
    if path.suffix == ".wandb":
        run_file = path
    else:
        (run_file,) = path.glob("run-*.wandb")  # an offline-run-* directory holds one
    args = [get_core_path(), "leet", "inspect", "--no-observability", *flags,
            "--run-file", str(run_file), str(run_file.parent.parent)]
    return subprocess.run(args, capture_output=True, text=True, timeout=120,
                          check=True).stdout


def offline_run_dir(run_dir: Path) -> Path:
    """The single ``offline-run-*`` directory W&B wrote under ``run_dir/wandb``."""
    found = sorted((Path(run_dir) / "wandb").glob("offline-run-*"))
    assert len(found) == 1, found
    return found[0]


def leet_records(run_dir: Path) -> list[dict]:
    """Every record of the offline run, read by ``wandb leet inspect --json``."""
    return leet_records_at(offline_run_dir(run_dir))


def leet_records_at(path: Path) -> list[dict]:
    """Every record of one ``offline-run-*`` directory (``wandb leet inspect --json``)."""
    out = leet_inspect(path, "--json")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def offline_runs(run_dir: Path) -> list[tuple[Path, dict, list[dict]]]:
    """``(directory, run record, all records)`` of every ``offline-run-*`` directory under
    ``run_dir/wandb`` (one per process of a resumed run), in order of start time."""
    out = []
    for path in (Path(run_dir) / "wandb").glob("offline-run-*"):
        records = leet_records_at(path)
        out.append((path, next(r["run"] for r in records if r.get("type") == "run"), records))
    return sorted(out, key=lambda item: item[1]["start_time"])


def leet_summary(run_dir: Path) -> dict:
    """The run's config, summary and state, read by ``wandb leet inspect --summary --json``."""
    return leet_summary_at(offline_run_dir(run_dir))


def leet_summary_at(path: Path) -> dict:
    """Config, summary and state of one ``offline-run-*`` directory."""
    return json.loads(leet_inspect(path, "--summary", "--json"))


def history(records: list[dict]) -> list[dict]:
    """The logged history rows (``item`` dicts) in order."""
    return [r["history"]["item"] for r in records if r.get("type") == "history"]


class FakeKANLayer(torch.nn.Module):
    """KANLayer-shaped: φ_ji(x) = w_ji * sin(x_i), inputs on [-1, 1], grid_size 5."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(n_out, n_in))
        self.grid_size = 5

    def input_range(self) -> torch.Tensor:
        return torch.tensor([[-1.0, 1.0]] * self.w.shape[1])

    def edge_activations(self, x: torch.Tensor) -> torch.Tensor:  # (B, in) -> (B, out, in)
        return torch.sin(x)[:, None, :] * self.w[None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.edge_activations(x).sum(-1)


class FakeKAN(torch.nn.Module):
    def __init__(self, width=(2, 3, 1)) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(
            FakeKANLayer(a, b) for a, b in zip(width[:-1], width[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


@pytest.fixture(scope="session")
def fitted_run(tmp_path_factory):
    """A small KAN trained by ``kanplatform.train.fit`` with W&B offline (shared, ~30 s).

    Two grid stages (G=3 then 5, 10 steps each), logging every 2 steps, validation every 5,
    spline snapshots every 5 steps. Returns ``(run_dir, resolved_config)``.
    """
    from kanplatform.config import load_config
    from kanplatform.train import fit

    root = tmp_path_factory.mktemp("fitted")
    with pytest.MonkeyPatch.context() as mp:
        for var in ("WANDB_DIR", "WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
            d = root / "wandb-home" / var.lower()
            d.mkdir(parents=True)
            mp.setenv(var, str(d))
        for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_PROJECT", "WANDB_RUN_ID"):
            mp.delenv(var, raising=False)
        mp.setenv("NETRC", str(root / "no-netrc"))
        cfg = load_config(Path(__file__).parents[2] / "configs/experiment/quick.yaml", {
            "tracking.mode": "offline", "tracking.snapshot_every": 5,
            "tracking.tags": ["e2e"], "trainer.log_every_n_steps": 2,
            "grid.schedule": [3, 5], "grid.steps_per_stage": 10,
            "trainer.val_every_n_steps": 5, "model.width": [2, 1, 1],
            "trainer.num_threads": 1, "output_dir": str(root / "runs")})
        result = fit(cfg, run_dir=root / "run", verbose=False)
    assert result.status == "completed", result.metrics
    return root / "run", cfg
