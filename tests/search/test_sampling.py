"""The trial list a random/grid search draws before Ray starts, and the table read back
from the trials' run directories (no Ray here)."""

from __future__ import annotations

import json
import math

import pytest

from kanplatform.config import load_config
from kanplatform.search import SearchSpecError, parse_search
from kanplatform.search.plan import SEARCH_JSON, make_plan
from kanplatform.search.records import listed_rows, rank, unfinished
from kanplatform.search.sampling import sample_configs, trial_key
from kanplatform.search.storage import experiment_store
from tests.search.conftest import QUICK


def test_every_grid_combination_num_samples_times_and_the_same_list_for_a_seed():
    spec = parse_search({"num_samples": 3, "space": {
        "model.width": {"grid_search": [[2, 1, 1], [2, 2, 1]]},
        "optim.lr": {"loguniform": [1e-3, 1.0]},
        "grid.update_every": {"randint": [0, 3]},
        "model.grid_size": {"choice": [3, 5]},
        "trainer.max_steps": 7}})
    configs = sample_configs(spec, seed=1)
    assert len(configs) == 6
    assert [c["model.width"] for c in configs] == [[2, 1, 1], [2, 2, 1]] * 3
    assert all(1e-3 <= c["optim.lr"] <= 1.0 and c["grid.update_every"] in (0, 1, 2)
               and c["model.grid_size"] in (3, 5) and c["trainer.max_steps"] == 7
               for c in configs)
    assert len({c["optim.lr"] for c in configs}) == 6
    assert sample_configs(spec, seed=1) == configs != sample_configs(spec, seed=2)
    grid = parse_search({"search_alg": "grid", "space": {"model.grid_size": {"choice": [3, 5]}}})
    assert sample_configs(grid, seed=0) == [{"model.grid_size": 3}, {"model.grid_size": 5}]


def test_the_table_says_what_each_run_directory_recorded(tmp_path):
    spec = parse_search({"space": {"optim.lr": {"choice": [0.1]}}})
    configs = [{"optim.lr": lr} for lr in (0.1, 0.2, 0.3, 0.4, 0.5)]
    dirs = [tmp_path / trial_key(i) for i in range(5)]
    records = [
        {"status": "completed", "reason": None, "final": {"val/rmse": 0.2, "test/rmse": 0.3},
         "stages": [{"grid_size": 3}, {"grid_size": 5}], "model/params": 32},
        {"status": "stopped", "reason": "stopped by ASHA at rung grid/stage=1",
         "final": {"val/rmse": 0.5}, "stages": [{"grid_size": 3}]},
        {"status": "diverged", "reason": "non-finite train/loss (nan) at step 3",
         "final": {"val/rmse": float("nan")}, "stages": []},
        {"status": "interrupted", "reason": "interrupted (SIGTERM) at step 4", "final": {},
         "stages": []},
    ]
    for d, m in zip(dirs, records):
        d.mkdir()
        (d / "metrics.json").write_text(json.dumps(m))
    (dirs[1] / "trial.json").write_text(json.dumps({"starts": 3}))
    died = {trial_key(4): {"error": "RayActorError: node died"}}
    rows = rank(listed_rows(configs, dirs, spec, died), spec)
    by = {r["trial_id"]: r for r in rows}
    assert rows[0]["trial_id"] == "trial-0000"  # the only completed one ranks first
    assert by["trial-0000"]["val/rmse"] == 0.2 and by["trial-0000"]["grid/size"] == 5
    assert by["trial-0001"]["status"] == "stopped" and by["trial-0001"]["restores"] == 2
    assert by["trial-0001"]["reason"] == "stopped by ASHA at rung grid/stage=1"
    assert by["trial-0002"]["status"] == "diverged" and by["trial-0002"]["val/rmse"] is None
    assert by["trial-0003"]["status"] == "interrupted"
    assert by["trial-0004"] == {**by["trial-0004"], "status": "failed",
                                "reason": "RayActorError: node died", "val/rmse": None}
    assert all(r["optim.lr"] == configs[int(r["trial_id"][-1])]["optim.lr"] for r in rows)
    assert not any(isinstance(v, float) and math.isnan(v) for r in rows for v in r.values())
    assert unfinished(dirs) == [3, 4]  # interrupted, never recorded: a resume runs these


def test_a_resume_that_cannot_rebuild_the_trial_list_refuses_saying_why(tmp_path):
    """No Ray: ``--resume`` refuses in one line when search.json is unreadable, when the
    search differs from the recorded one, or for an Optuna search Tune never saved."""
    cfg = load_config(QUICK, [f"output_dir={tmp_path / 'runs'}"])
    spec = parse_search({"seed": 1, "num_samples": 2,
                         "space": {"optim.lr": {"choice": [0.1, 0.2]}}})
    store = experiment_store(tmp_path / "tune", "s", tmp_path)
    plan = make_plan(spec, cfg, store, None, resume=False)
    assert len(plan.configs) == 2 and plan.todo == [0, 1]
    store.local.mkdir(parents=True)
    (store.local / SEARCH_JSON).write_text('{"search": ')  # cut off mid-write

    def refusal(s) -> str:
        with pytest.raises(SearchSpecError) as err:
            make_plan(s, cfg, store, None, resume=True)
        assert "\n" not in str(err.value)
        return str(err.value)

    assert "search.json cannot be read" in refusal(spec)
    (store.local / SEARCH_JSON).write_text(json.dumps(plan.record, default=str))
    other = parse_search({"seed": 2, "num_samples": 2,
                          "space": {"optim.lr": {"choice": [0.1, 0.2]}}})
    assert refusal(other).startswith("--resume: seed differs from the search this experiment")
    resumed = make_plan(spec, cfg, store, None, resume=True)  # the same search: both to run
    assert resumed.configs == plan.configs and resumed.todo == [0, 1]
    assert resumed.tune_name == "resume-1"

    optuna = parse_search({"search_alg": "optuna", "num_samples": 2,
                           "space": {"optim.lr": {"uniform": [0.1, 0.2]}}})
    record = make_plan(optuna, cfg, store, None, resume=False).record
    (store.local / SEARCH_JSON).write_text(json.dumps(record, default=str))
    assert "has no Tune experiment state" in refusal(optuna)


def test_listed_adam_runs_differing_in_seed_or_lr_are_grouped_into_stacks(tmp_path):
    """Which listed trials train as one stack (no Ray here): Adam runs differing only in seed
    or lr; not another shape, not LBFGS, not under a scheduler or with stack_runs off; stacks
    are halved while fewer than the trials the cluster runs at once."""
    from kanplatform.config import to_dict
    from kanplatform.search.run import _stacks
    from kanplatform.search.trainable import TrialSetup

    cfg = load_config(QUICK, [f"output_dir={tmp_path}", "optim.name=adam"])
    configs = [{"seed": s, "optim.lr": lr} for s in (0, 1, 2) for lr in (0.01, 0.03)]
    configs += [{"model.width": [2, 2, 1]}, {"optim.name": "lbfgs", "seed": 1}]
    setup = TrialSetup(base_config=to_dict(cfg), experiment_dir=str(tmp_path),
                       experiment_name="x", metric="val/rmse", mode="min", configs=configs)
    todo = list(range(len(configs)))
    spec = parse_search({"space": {"seed": 0}, "stack_runs": True})
    assert _stacks(spec, setup, todo, slots=2) == [[0, 1, 2, 3, 4, 5], [6], [7]]
    assert _stacks(spec, setup, todo, slots=4) == [[0, 1, 2], [3, 4, 5], [6], [7]]
    for other in ({"space": {"seed": 0}}, {"space": {"seed": 0}, "stack_runs": True,
                                  "scheduler": {"kind": "asha"}}):
        assert _stacks(parse_search(other), setup, todo, slots=2) == [[i] for i in todo]
