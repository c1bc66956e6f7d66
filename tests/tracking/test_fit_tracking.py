"""End to end: ``kanplatform.train.fit`` with tracking on, read back with wandb's own tooling."""

from __future__ import annotations

import csv
import math

import pytest

from kanplatform.config import load_config, to_dict

from .conftest import history, leet_records, leet_summary, offline_run_dir

pytestmark = pytest.mark.slow


def _csv_steps(run_dir, key):
    with (run_dir / "history.csv").open() as f:
        return {int(r["step"]): float(r[key]) for r in csv.DictReader(f) if r.get(key)}


def test_fit_history_is_in_the_offline_wandb_run_at_the_expected_steps(fitted_run):
    run_dir, _ = fitted_run
    rows = history(leet_records(run_dir))
    wb_loss = {r["trainer/global_step"]: r["train/loss"] for r in rows if "train/loss" in r}
    wb_val = {r["trainer/global_step"]: r["val/rmse"] for r in rows if "val/rmse" in r}
    # quick.yaml: 2 stages × 10 steps; train/loss at step 1 and every 2 steps, val every 5
    assert sorted(wb_loss) == [1, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    assert sorted(wb_val) == [5, 10, 15, 20]
    # exactly the steps and values of the run directory's history.csv
    csv_loss, csv_val = _csv_steps(run_dir, "train/loss"), _csv_steps(run_dir, "val/rmse")
    assert sorted(wb_loss) == sorted(csv_loss) and sorted(csv_val) == sorted(wb_val)
    for step, value in wb_loss.items():
        assert math.isclose(value, csv_loss[step], rel_tol=1e-5)
    for step, value in wb_val.items():
        assert math.isclose(value, csv_val[step], rel_tol=1e-5)
    # one monotone step axis across the grid extension (G=3 -> 5 at step 10)
    axis = [r["trainer/global_step"] for r in rows if "trainer/global_step" in r]
    assert axis == sorted(axis)
    sizes = {r["trainer/global_step"]: r["grid/size"] for r in rows if "grid/size" in r}
    assert sizes[8] == 3 and sizes[12] == 5


def test_fit_wandb_config_is_the_resolved_config(fitted_run):
    run_dir, _ = fitted_run
    resolved = to_dict(load_config(run_dir / "config.yaml"))
    summary = leet_summary(run_dir)
    config = {k: v for k, v in summary["config"].items() if k != "_wandb"}
    assert set(config) == set(resolved) | {"git_sha", "versions"}
    for key, value in resolved.items():
        assert config[key] == value, key
    assert config["versions"]["torch"] and config["versions"]["wandb"]
    assert config["tracking"]["tags"] == ["e2e"]


def test_fit_wandb_run_finished_with_the_final_metrics(fitted_run):
    import json

    run_dir, _ = fitted_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    summary = leet_summary(run_dir)
    assert summary["state"] == "finished" and summary["exit_code"] == 0
    assert summary["summary"]["test/rmse"] == pytest.approx(metrics["final"]["test/rmse"])
    assert summary["summary"]["model/params"] == metrics["model/params"]
    assert summary["summary"]["status"] == "completed"
    assert summary["summary"]["trainer/num_threads"] == metrics["trainer/num_threads"] >= 1
    assert summary["summary"]["trainer/steps_per_batch"] == metrics["trainer/steps_per_batch"]


def test_fit_spline_snapshots_are_in_the_wandb_media_and_the_run_dir(fitted_run):
    run_dir, _ = fitted_run
    rows = history(leet_records(run_dir))
    files = offline_run_dir(run_dir) / "files"
    snaps = [r for r in rows if r.get("splines/layer0._type") == "image-file"]
    captions = [r["splines/layer0.caption"] for r in snaps]
    assert "stage0_G3 layer 0" in captions and "stage1_G5 layer 0" in captions
    assert "step000005 layer 0" in captions
    for r in snaps:
        for layer in (0, 1):
            assert (files / r[f"splines/layer{layer}.path"]).is_file()
        assert (files / r["splines/curves.path"]).is_file()
    figures = run_dir / "figures"
    for tag in ("stage0_G3", "stage1_G5", "final", "step000005", "step000020"):
        assert (figures / f"splines_{tag}.npz").is_file(), tag
        assert (figures / f"splines_{tag}_layer1.png").is_file(), tag


def test_fit_online_with_network_unreachable_completes_and_warns_once(wandb_env, monkeypatch):
    """In the tests' loopback-only netns no W&B server is reachable."""
    import json
    import warnings
    from pathlib import Path

    from kanplatform.tracking import TrackingWarning
    from kanplatform.train import fit

    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)  # a key, so W&B really tries the network
    cfg = load_config(Path(__file__).parents[2] / "configs/experiment/quick.yaml", {
        "tracking.mode": "online", "tracking.init_timeout": 3, "grid.schedule": [3],
        "grid.steps_per_stage": 4, "trainer.log_every_n_steps": 1,
        "output_dir": str(wandb_env / "runs")})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit(cfg, run_dir=wandb_env / "run", verbose=False)
    assert result.status == "completed"
    assert json.loads((wandb_env / "run" / "metrics.json").read_text())["status"] == "completed"
    ours = [str(w.message) for w in caught if issubclass(w.category, TrackingWarning)]
    assert len(ours) == 1 and "online run failed" in ours[0], ours
    # nothing lost: the fallback offline run holds the history, ready for `wandb sync`
    rows = history(leet_records(wandb_env / "run"))
    assert [r["trainer/global_step"] for r in rows if "train/loss" in r] == [1, 2, 3, 4]


def test_fit_offline_run_is_ready_for_wandb_sync(fitted_run, tmp_path):
    """What the docs say to run later (``wandb sync``) recognises the run; nothing uploads."""
    import os
    import subprocess

    from .conftest import wandb_cli

    run_dir, _ = fitted_run
    env = {**os.environ, "WANDB_API_KEY": "k" * 40, "WANDB_CONFIG_DIR": str(tmp_path)}
    out = subprocess.run([wandb_cli(), "sync", "--dry-run", str(offline_run_dir(run_dir))],
                         capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Would sync 1 run" in out.stdout + out.stderr


def test_a_resumed_fit_continues_its_wandb_run(fitted_run, wandb_env):
    """Stopped at step 7 and resumed: the same W&B run (one offline directory per process,
    same id), whose history continues past the resume point to the uninterrupted run's."""
    from kanplatform.tracking.wandb_run import recorded_run_id
    from kanplatform.train import fit

    from .conftest import leet_summary_at, offline_runs

    whole_dir, cfg = fitted_run
    run = wandb_env / "run"
    fit(cfg, run_dir=run, trainer_kwargs={"max_steps": 7}, verbose=False)
    resumed = fit(cfg, run_dir=run, ckpt_path=run / "checkpoints" / "last.ckpt", verbose=False)
    assert resumed.status == "completed" and resumed.metrics["resumed_from"]["step"] == 7

    runs = offline_runs(run)
    assert len(runs) == 2  # offline W&B cannot append to the first process's directory
    (_, first, before), (last_dir, second, after) = runs
    assert first["run_id"] == second["run_id"] == recorded_run_id(run)
    assert second["resume"] is True and second["display_name"] == first["display_name"]
    axis = [[r["trainer/global_step"] for r in history(records) if "trainer/global_step" in r]
            for records in (before, after)]
    assert max(axis[0]) <= 7 < min(axis[1])  # continues past the resume point...
    assert axis[0] + axis[1] == sorted(axis[0] + axis[1])  # ...on one monotone axis
    # together: the uninterrupted run's history, step for step and value for value
    rows = history(before) + history(after)
    whole = history(leet_records(whole_dir))
    for key in ("train/loss", "val/rmse"):
        got = [(r["trainer/global_step"], r[key]) for r in rows if key in r]
        want = [(r["trainer/global_step"], r[key]) for r in whole if key in r]
        assert [s for s, _ in got] == [s for s, _ in want], key
        for (_, a), (_, b) in zip(got, want):
            assert math.isclose(a, b, rel_tol=1e-9), key
    summary = leet_summary_at(last_dir)
    assert summary["state"] == "finished"
    assert summary["summary"]["test/rmse"] == pytest.approx(resumed.metrics["final"]["test/rmse"])
