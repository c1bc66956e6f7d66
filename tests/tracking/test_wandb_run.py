"""W&B mode resolution, run config and failure handling (kanplatform/tracking/wandb_run.py)."""

from __future__ import annotations

import dataclasses
import warnings

import pytest

from kanplatform.config.schema import TrackingConfig
from kanplatform.tracking import wandb_run
from kanplatform.tracking.wandb_run import (
    TrackingWarning,
    init_run,
    resolve_mode,
    run_config,
)


def test_resolve_mode_explicit_and_auto(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    # no tracking section: the schema's default, auto (offline when not logged in)
    assert wandb_run.DEFAULTS == dataclasses.asdict(TrackingConfig())
    assert resolve_mode(None) == "offline"
    assert resolve_mode({"tracking": {"mode": "online"}}) == "online"
    assert resolve_mode({"tracking": {"mode": "disabled"}}) == "disabled"
    assert resolve_mode({"tracking": {"mode": "auto"}}) == "offline"  # not logged in
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert resolve_mode({"tracking": {"mode": "auto"}}) == "online"  # logged in
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert resolve_mode({"tracking": {"mode": "auto"}}) == "offline"  # env decides auto
    assert resolve_mode({"tracking": {"mode": "offline"}}) == "offline"
    with pytest.raises(ValueError, match="tracking.mode"):
        resolve_mode({"tracking": {"mode": "sometimes"}})


def test_run_config_is_resolved_config_plus_metadata():
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"seed": 3, "model": {"width": [2, 1], "g": "${seed}"}})
    out = run_config(cfg)
    assert out["model"] == {"width": [2, 1], "g": 3}  # resolved, plain containers
    assert out["seed"] == 3
    assert set(out) == {"seed", "model", "git_sha", "versions"}
    assert out["versions"]["torch"] and out["versions"]["python"]
    assert out["git_sha"] is None or len(out["git_sha"].split("-")[0]) == 40


def test_disabled_starts_nothing(wandb_env):
    assert init_run({"tracking": {"mode": "disabled"}}, wandb_env / "run") is None
    assert not (wandb_env / "run" / "wandb").exists()


def test_failed_start_is_one_warning(wandb_env, monkeypatch):
    import wandb

    def broken(**kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(wandb, "init", broken)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert init_run({"tracking": {"mode": "offline"}}, wandb_env / "r1") is None
    msgs = [str(w.message) for w in caught if issubclass(w.category, TrackingWarning)]
    assert len(msgs) == 1 and "No space left" in msgs[0]


def test_wandb_is_imported_lazily():
    import subprocess
    import sys

    code = ("import sys, kanplatform.tracking as t; t.resolve_mode; "
            "print('wandb' in sys.modules, 'pytorch_lightning' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]
    assert wandb_run.package_versions()["python"]


def test_a_users_open_run_is_left_alone(wandb_env):
    import wandb

    from kanplatform import tracking

    (wandb_env / "mine").mkdir()
    mine = wandb.init(mode="offline", dir=str(wandb_env / "mine"))
    ours = init_run({"tracking": {"mode": "offline"}}, wandb_env / "run")
    assert ours is not None and ours is not mine and wandb.run is mine
    tracking.finish()  # finishes the runs tracking started, only those
    mine.log({"x": 1.0})  # still open: a finished run would raise
    with pytest.raises(Exception, match="finished"):
        ours.log({"x": 1.0})
    mine.finish()


def test_resume_continues_the_run_recorded_in_the_run_dir(wandb_env):
    """Offline, W&B writes one directory per process; a resume gives it the same run id,
    marked resumed, which `wandb sync` uploads into that one run."""
    from kanplatform import tracking
    from kanplatform.tracking.wandb_run import recorded_run_id

    from .conftest import history, offline_runs

    cfg = {"tracking": {"mode": "offline", "project": "p"}}
    run_dir = wandb_env / "run"
    assert recorded_run_id(run_dir) is None
    first = init_run(cfg, run_dir)
    assert recorded_run_id(run_dir) == first.id
    for step in (1, 2):
        first.log({"x": float(step), "trainer/global_step": step})
    tracking.finish()
    second = init_run(cfg, run_dir, resume=True)
    assert second.id == first.id
    second.log({"x": 3.0, "trainer/global_step": 3})
    tracking.finish()

    runs = offline_runs(run_dir)
    assert [r["run_id"] for _, r, _ in runs] == [first.id, first.id]
    assert not runs[0][1].get("resume") and runs[1][1]["resume"] is True
    steps = [row["trainer/global_step"] for _, _, records in runs for row in history(records)]
    assert steps == [1, 2, 3]

    fresh = init_run(cfg, run_dir)  # not a resume: a new run, recorded for the next resume
    assert fresh.id != first.id and recorded_run_id(run_dir) == fresh.id
    tracking.finish()
