"""Searches on a real local Ray (2 CPUs): ASHA, grid refinement, divergence, run_configs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from kanplatform.config import load_config
from kanplatform.search import load_search, parse_search, run_configs, run_search
from tests.search.conftest import QUICK, ROOT, read_table, tiny_overrides

pytestmark = pytest.mark.slow  # each starts a local Ray (~15 s) and runs several trials


def test_asha_search_writes_table_and_a_best_config_that_train_reproduces(tmp_path):
    """>= 4 ASHA trials on a tiny KAN; `train` with best_config.yaml gives the same metric."""
    from kanplatform.train import fit

    cfg = load_config(QUICK, tiny_overrides(tmp_path, "tracking.mode=offline"))
    spec = load_search(ROOT / "configs" / "search" / "asha_kan.yaml")
    spec.space["model.width"] = [2, 1, 1]  # keep every trial tiny
    result = run_search(cfg, spec, storage_path=tmp_path / "tune", num_cpus=2, name="asha")

    exp = tmp_path / "tune" / "asha"
    assert result.experiment_dir == exp
    rows, csv_rows = read_table(exp)
    assert len(rows) == len(csv_rows) == spec.num_samples >= 4
    assert {r["trial_id"] for r in rows} == {r["trial_id"] for r in result.trials}
    for row in rows:
        assert row["status"] in ("completed", "stopped"), row
        assert {"optim.lr", "grid.update_every", "val/rmse", "grid/stage"} <= set(row)
    best = result.best
    assert best == rows[0] and best["status"] == "completed"
    assert best["val/rmse"] == min(r["val/rmse"] for r in rows if r["status"] == "completed")

    # the best config is a run config `kanplatform train` accepts, and it reproduces the trial
    assert result.best_config == exp / "best_config.yaml"
    again = fit(load_config(result.best_config, [f"output_dir={tmp_path / 'again'}"]),
                verbose=False)
    assert again.metrics["final"]["val/rmse"] == pytest.approx(best["val/rmse"], rel=1e-6)

    # each trial is a W&B run (offline) grouped by the experiment
    run_dir = Path(best["run_dir"])
    assert list((run_dir / "wandb").glob("offline-run-*"))
    assert load_config(run_dir / "config.yaml").tracking.group == "asha"


def test_grid_refinement_asha_stops_poor_trials_at_a_coarse_grid(tmp_path):
    """Rungs are grid stages: a poor configuration stops after grid 3, the good one refines."""
    cfg = load_config(QUICK, tiny_overrides(tmp_path))
    spec = parse_search({
        "name": "refine",
        "space": {"grid.schedule": [3, 5, 10],
                  # one good learning rate first, then poor ones (run one at a time)
                  "optim.lr": {"grid_search": [1.0, 1e-4, 1e-5]}},
        "scheduler": {"kind": "asha", "time_attr": "grid/stage", "grace_period": 1,
                      "reduction_factor": 2},
        "max_concurrent_trials": 1,
    })
    result = run_search(cfg, spec, storage_path=tmp_path / "tune", num_cpus=2)
    by_lr = {r["optim.lr"]: r for r in result.trials}
    assert by_lr[1.0]["status"] == "completed" and by_lr[1.0]["grid/stage"] == 3
    assert by_lr[1.0]["grid/size"] == 10
    stopped = [r for r in result.trials if r["status"] == "stopped"]
    assert stopped, result.trials
    assert all(r["grid/stage"] < 3 for r in stopped)
    assert min(r["grid/size"] for r in stopped) == 3  # stopped at the coarsest grid
    assert "grid/stage" in stopped[0]["reason"]


def test_diverging_trial_is_stopped_and_marked_while_the_others_finish(tmp_path):
    """run_configs runs each listed config once; a NaN loss ends its trial with the reason."""
    cfg = load_config(QUICK, tiny_overrides(tmp_path, "optim.name=adam"))
    configs = [{"optim.lr": 1e300}, {"optim.lr": 0.01}]
    result = run_configs(cfg, configs, storage_path=tmp_path / "tune", num_cpus=2,
                         name="diverge", max_concurrent_trials=2)
    rows = {r["optim.lr"]: r for r in result.trials}
    assert len(result.trials) == 2 and set(rows) == {1e300, 0.01}
    bad, good = rows[1e300], rows[0.01]
    assert bad["status"] == "diverged"
    assert "non-finite train/loss" in bad["reason"]
    assert bad["val/rmse"] is None  # not a number: never the best
    assert good["status"] == "completed" and math.isfinite(good["val/rmse"])
    assert result.best["trial_id"] == good["trial_id"]


def test_multiworker_trial_runs_ddp_on_two_cpu_workers_and_reports(tmp_path):
    cfg = load_config(QUICK, tiny_overrides(tmp_path))
    spec = load_search(ROOT / "configs" / "search" / "multiworker.yaml")
    # the trial's coordinator holds a token CPU; its 2 workers need 1 each
    result = run_search(cfg, spec, storage_path=tmp_path / "tune", num_cpus=3)
    (row,) = result.trials
    assert row["status"] == "completed", row
    assert row["grid/stage"] == 2 and math.isfinite(row["val/rmse"])
    metrics = (Path(row["run_dir"]) / "metrics.json").read_text()
    assert '"completed"' in metrics
    # rank 0 reported through Ray Train's TuneReportCallback, from a 2-worker DDP group
    import json

    progress = Path(result.experiment_dir).glob("search_trial_*/result.json")
    results = [json.loads(line) for p in progress for line in p.read_text().splitlines()]
    assert results and all(r["trial/workers"] == 2 for r in results)
