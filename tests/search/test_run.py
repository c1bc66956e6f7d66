"""Searches on a real local Ray (2 CPUs): grid refinement, divergence, run_configs (the plain
ASHA search, its tables and best config are tested with the watched one in test_watch.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from kanplatform.config import load_config
from kanplatform.search import load_search, parse_search, run_configs, run_search
from tests.search.conftest import (
    QUICK,
    ROOT,
    check_records,
    most_at_once,
    read_table,
    tiny_overrides,
)
from tests.tracking.conftest import offline_run_dir

# several trials each, on one local Ray the module shares (tests/search/conftest.py); a
# search starting its own Ray: test_watch.py, test_resources.py, the CLI tests
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("local_ray")]


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


def test_diverging_trial_is_stopped_and_marked_while_the_others_finish(tmp_path, capfd):
    """run_configs (FIFO) runs each listed config once, one Tune trial at a time on 2 CPUs as
    capped; a NaN loss ends its run with the reason; every record agrees. The Adam runs that
    differ only in seed or learning rate train as one stacked trial (the diverging one among
    them), each with the records of its own trial and the results of its own ``fit``, bit for
    bit; the other shape trains alone."""
    import torch

    from kanplatform.config import apply_overrides
    from kanplatform.train import fit

    cfg = load_config(QUICK, tiny_overrides(tmp_path, "optim.name=adam",
                                            "tracking.mode=offline"))
    configs = [{"optim.lr": 1e300}, {"optim.lr": 0.01}, {"optim.lr": 0.03, "seed": 1},
               {"optim.lr": 0.01, "model.width": [2, 2, 1]}]
    result = run_configs(cfg, configs, storage_path=tmp_path / "tune", num_cpus=2,
                         name="diverge", max_concurrent_trials=1)
    out, err = capfd.readouterr()
    assert "will be ignored" not in err
    assert "stacks: 3 of 4 trainings run as 1 stacked trials" in out
    check_records(*read_table(result.experiment_dir))
    for row in result.trials:  # a trial's W&B run lists no requirements (its config: versions)
        files = offline_run_dir(Path(row["run_dir"])) / "files"
        assert files.is_dir() and not (files / "requirements.txt").exists()
        assert "torch" in json.loads((Path(row["run_dir"]) / "metrics.json").read_text())[
            "versions"]
    assert most_at_once(result.trials) == 1  # 2 CPUs, 1 CPU a trial: the cap held them
    rows = {(r["optim.lr"], str(r.get("model.width"))): r for r in result.trials}
    assert len(result.trials) == 4
    bad, good = rows[(1e300, "None")], rows[(0.01, "None")]
    assert bad["status"] == "diverged"
    assert "non-finite train/loss" in bad["reason"]
    assert bad["val/rmse"] is None  # not a number: never the best
    assert good["status"] == "completed" and math.isfinite(good["val/rmse"])
    assert result.best["trial_id"] in {r["trial_id"] for r in result.trials
                                       if r["status"] == "completed"}
    for row in result.trials:
        i = int(row["trial_id"].split("-")[1])
        alone = fit(apply_overrides(cfg, {**configs[i], "tracking.mode": "disabled"}),
                    run_dir=tmp_path / "alone" / str(i), verbose=False)
        mine, theirs = (json.loads((Path(d) / "metrics.json").read_text())
                        for d in (row["run_dir"], alone.run_dir))
        assert mine.get("trainer/stacked") == row.get("trainer/stacked") == (None if i == 3
                                                                            else 3)
        for key in ("status", "reason", "final", "stages", "step"):
            assert mine[key] == theirs[key], key
        weights = torch.load(Path(row["run_dir"]) / "model.pt", weights_only=True)["state_dict"]
        for key, value in alone.model.state_dict().items():  # NaN where it diverged
            torch.testing.assert_close(weights[key], value, rtol=0, atol=0, equal_nan=True)


def test_multiworker_trial_runs_ddp_on_two_cpu_workers_and_reports(tmp_path):
    """2 Ray Train workers of 1 CPU on a 2-CPU local Ray: the coordinator holds no CPU, so
    they fit (with a 0.01-CPU coordinator they never did); the worker count and backend are
    recorded in metrics.json, W&B, trials.csv and every Tune result."""
    from tests.tracking.conftest import leet_summary

    cfg = load_config(QUICK, tiny_overrides(tmp_path, "tracking.mode=offline"))
    spec = load_search(ROOT / "configs" / "search" / "multiworker.yaml")
    result = run_search(cfg, spec, storage_path=tmp_path / "tune", num_cpus=2)
    (row,) = result.trials
    assert row["status"] == "completed", row
    assert row["grid/stage"] == 2 and math.isfinite(row["val/rmse"])
    assert row["trainer/workers"] == 2 and row["trainer/backend"] == "gloo"
    metrics = json.loads((Path(row["run_dir"]) / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert metrics["trainer/workers"] == 2 and metrics["trainer/backend"] == "gloo"
    summary = leet_summary(Path(row["run_dir"]))["summary"]
    assert summary["trainer/workers"] == 2 and summary["trainer/backend"] == "gloo"
    # one meaning of grid/stage: stages counted from 1 in Tune, metrics.json and W&B alike
    assert [s["stage"] for s in metrics["stages"]] == [1, 2] == [1, row["grid/stage"]]
    assert summary["grid/stage"] == 2
    _, csv_rows = read_table(result.experiment_dir)
    assert csv_rows[0]["trainer/workers"] == "2" and csv_rows[0]["trainer/backend"] == "gloo"
    check_records(*read_table(result.experiment_dir))  # rank 0's W&B run, finished
    # rank 0 reported through Ray Train's TuneReportCallback, from a 2-worker DDP group
    progress = Path(result.experiment_dir).glob("search_trial_*/result.json")
    results = [json.loads(line) for p in progress for line in p.read_text().splitlines()]
    assert results and all(r["trainer/workers"] == 2 for r in results)


def test_optuna_search_from_the_cli_samples_every_trial_and_its_best_config_reproduces(
        tmp_path, capsys):
    """`kanplatform tune` with the shipped Optuna search: 4 short trials on a local Ray."""
    from ray.tune.search.optuna import OptunaSearch

    from kanplatform.cli import main
    from kanplatform.train import fit

    search = ROOT / "configs" / "search" / "optuna_kan.yaml"
    spec = load_search(search)
    assert spec.search_alg == "optuna"
    code = main(["tune", str(QUICK), str(search), *tiny_overrides(tmp_path),
                 "--output-dir", str(tmp_path / "tune"), "--name", "optuna",
                 "--num-cpus", "2", "--num-samples", "4", "--verbose", "0"])
    assert code == 0
    exp = tmp_path / "tune" / "optuna"
    out = capsys.readouterr().out  # it ends with where to look
    assert f"\n  best config   {exp / 'best_config.yaml'}\n" in out.split("where to look")[-1]
    rows, csv_rows = read_table(exp)
    assert len(rows) == len(csv_rows) == 4
    for row in rows:
        assert row["status"] in ("completed", "stopped"), row  # ASHA may stop poor ones
        assert 0.01 <= row["optim.lr"] <= 1.0 and 0.0 <= row["grid.grid_eps"] <= 1.0
        assert row["model.width"] in ([2, 1, 1], [2, 2, 1])
        assert row["grid.update_every"] in range(6)
        assert math.isfinite(row["val/rmse"])
    assert len({r["optim.lr"] for r in rows}) == 4  # four different samples

    # Optuna drew every trial and was told its score: the study Tune saved with the
    # experiment holds the same four parameter sets with the metric each trial ended on
    searcher = OptunaSearch()
    searcher.restore_from_dir(str(exp))
    study = searcher._ot_study  # Ray keeps the optuna.Study here; no public accessor
    assert type(study.sampler).__name__ == "TPESampler"
    told = sorted((t.params["optim.lr"], t.value) for t in study.trials)
    assert told == sorted((r["optim.lr"], r["val/rmse"]) for r in rows)
    for trial in study.trials:
        row = next(r for r in rows if r["optim.lr"] == trial.params["optim.lr"])
        assert trial.params == {k: row[k] for k in spec.space}

    best = rows[0]
    assert best["status"] == "completed"
    assert best["val/rmse"] == min(r["val/rmse"] for r in rows if r["status"] == "completed")
    again = fit(load_config(exp / "best_config.yaml", [f"output_dir={tmp_path / 'again'}"]),
                verbose=False)
    assert again.metrics["final"]["val/rmse"] == pytest.approx(best["val/rmse"], rel=1e-6)
    assert load_config(exp / "best_config.yaml").optim.lr == best["optim.lr"]
