"""The plan and the analysis without training: equal tuning per arm, the best config rerun on
every seed, N(eps) on synthetic power laws, verdicts and summaries from hand-made results."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from kanplatform.compare import analysis, load_compare, plan_study
from kanplatform.compare.outputs import tuning_counts
from kanplatform.compare.run import run_rows, select_best

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "configs" / "experiment" / "quick.yaml"


def study(tmp_path: Path, **changes) -> Path:
    data = {
        "name": "p", "base": [str(QUICK)], "seeds": [0, 1, 2],
        "tasks": {"xy": "xy", "exp_sin_sq": "exp_sin_sq"},
        "budgets": {"params": [60, 120, 240], "flops": [3000]},
        "arms": {
            "kan": {"kind": "kan", "size": "grid_size", "hidden": [2],
                    "tune": {"optim.lr": {"loguniform": [0.1, 1.0]},
                             "optim.max_iter": {"randint": [3, 8]}}},
            "mlp": {"kind": "mlp", "size": "width", "depth": 2,
                    "tune": {"optim.lr": {"choice": [0.25, 0.5, 1.0]}}},
            "mlp_relu": {"kind": "mlp", "size": "width", "depth": 2,
                         "model": {"activation": "relu"}},
        },
        "tuning": {"trials": 3, "space": {"optim.max_iter": {"choice": [4, 6, 8, 10]}}},
        **changes,
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_every_arm_gets_the_same_number_of_tuning_trials_at_every_size(tmp_path):
    plan = plan_study(load_compare(study(tmp_path)))
    trials = plan.tuning_trials()
    per = {}
    for t in trials:
        task, arm = t.family.split("/")
        per.setdefault((task, arm, t.label.rsplit("-t", 1)[0]), []).append(t)
    assert set(per) == set(plan.sizes())
    assert {len(v) for v in per.values()} == {3}  # kan, mlp and mlp_relu alike
    # each arm searches its own space (mlp_relu the study's default), within its domains
    for (_, arm, _), ts in per.items():
        keys = {k for t in ts for k in plan.defaults[(t.family.split("/")[0], arm)]}
        assert keys == {"kan": {"optim.lr", "optim.max_iter"}, "mlp": {"optim.lr"},
                        "mlp_relu": {"optim.max_iter"}}[arm]
        for t in ts:
            assert t.seed == plan.spec.tuning.seed and t.seed not in plan.spec.seeds
            if arm == "kan":
                assert 0.1 <= t.overrides["optim.lr"] <= 1.0
                assert 3 <= t.overrides["optim.max_iter"] < 8
    # reproducible: the same samples on a second plan (what a resume relies on)
    again = plan_study(load_compare(study(tmp_path))).tuning_trials()
    assert [t.overrides for t in again] == [t.overrides for t in trials]


def test_no_tuning_trains_the_seeds_alone_and_records_zero_trials_per_arm(tmp_path):
    # tuning.trials: 0 with spaces still named (as `tuning.trials=0` on the command line
    # leaves them): no tuning training, no tuned keys, and 0 trials per arm on record
    plan = plan_study(load_compare(study(tmp_path, tuning={"trials": 0, "space": {
        "optim.max_iter": {"choice": [4, 6]}}})))
    assert plan.tuning_trials() == [] and all(not plan.tuning_samples(k) for k in plan.sizes())
    assert plan.n_trainings() == len(plan.seed_trials()) == len(plan.sizes()) * 3
    assert all("optim.max_iter" not in t.overrides and "optim.lr" not in t.overrides
               for t in plan.seed_trials())
    best, table = select_best(plan, [], [])
    assert best == {} and table == []
    result = type("R", (), {"tuning": table})()
    assert tuning_counts(plan, result) == {
        task: {"kan": 0, "mlp": 0, "mlp_relu": 0} for task in ("xy", "exp_sin_sq")}


def test_models_shared_by_cells_are_trained_once(tmp_path):
    # a KAN at G=... reached by params and by FLOPs is one model: its trainings are shared
    plan = plan_study(load_compare(study(tmp_path, budgets={"params": [99], "flops": [2636]})))
    kan = [c for c in plan.cells if c.arm == "kan" and c.task == "xy"]
    assert len(kan) == 2 and kan[0].size_key == kan[1].size_key
    keys = [t.key for t in plan.seed_trials()]
    assert len(keys) == len(set(keys)) == len(plan.sizes()) * 3


def _fake_run(tmp_path: Path, trial, status: str, **final) -> str:
    run = tmp_path / "runs" / trial.key.replace("/", "_")
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"status": status, "final": final}))
    return str(run)


def test_the_best_tuning_trial_on_validation_is_rerun_on_every_seed(tmp_path):
    plan = plan_study(load_compare(study(tmp_path, tasks={"xy": "xy"},
                                         budgets={"params": [60]})))
    trials = plan.tuning_trials()
    rows = []
    for i, t in enumerate(trials):
        # validation picks trial 1 of each model; test/rmse would have picked trial 0
        status = "failed" if i % 3 == 2 else "completed"
        val = 0.1 if i % 3 == 1 else 0.5
        rows.append({"run_dir": _fake_run(tmp_path, t, status, **{"val/rmse": val,
                                                                 "test/rmse": 1 - val})})
    best, table = select_best(plan, trials, rows)
    for entry in table:
        assert [e["status"] for e in entry["trials"]] == ["completed", "completed", "failed"]
        assert entry["best_value"] == 0.1 and entry["metric"] == "val/rmse"
        assert entry["best"] == entry["trials"][1]["values"]
    seeded = plan.seed_trials(best)
    for t in seeded:
        task, arm = t.family.split("/")
        key = (task, arm, t.label)
        assert {k: t.overrides[k] for k in best[key]} == best[key]
    assert sorted({t.seed for t in seeded}) == [0, 1, 2]


def test_a_model_whose_tuning_all_failed_keeps_the_untuned_values(tmp_path):
    plan = plan_study(load_compare(study(tmp_path, tasks={"xy": "xy"},
                                         budgets={"params": [60]})))
    trials = plan.tuning_trials()
    rows = [{"run_dir": _fake_run(tmp_path, t, "failed")} for t in trials]
    best, table = select_best(plan, trials, rows)
    for entry in table:
        assert entry["best"] == plan.defaults[(entry["task"], entry["arm"])]
        assert "untuned" in entry["reason"]


def _synthetic_runs(plan, law, noise=0.05, tmp_path=None):
    """Compared runs whose metric follows ``law[arm](params)`` times seed noise."""
    rng = np.random.default_rng(0)
    runs = []
    for key, sized in plan.sizes().items():
        task, arm, label = key
        for seed in plan.spec.seeds:
            value = law[arm](sized.params) * math.exp(noise * rng.standard_normal())
            runs.append({"task": task, "arm": arm, "label": label, "seed": seed,
                         "value": value, "train": value * 0.9, "test/rmse": value,
                         "ood/rmse": 10 * value, "model/params": sized.params,
                         "model/flops": sized.flops, "status": "completed"})
    return runs


def test_n_eps_measured_and_fitted_on_synthetic_power_laws(tmp_path):
    budgets = {"params": [60, 120, 240, 480, 960]}
    plan = plan_study(load_compare(study(
        tmp_path, tasks={"xy": "xy"}, budgets=budgets, tuning={"trials": 0},
        arms={"kan": {"kind": "kan", "size": "grid_size", "hidden": [2]},
              "mlp": {"kind": "mlp", "size": "width", "depth": 2}},
        n_eps={"eps": [1e-3, 1e-4], "fit": {"n_boot": 400, "drop_tail": "none"}})))
    law = {"kan": lambda n: 50.0 * n**-2.0, "mlp": lambda n: 1.0 * n**-0.5}
    runs = _synthetic_runs(plan, law)
    rows = analysis.cell_rows(plan, runs)
    table = {(r["arm"], r["eps"]): r for r in analysis.n_eps_rows(plan, runs, rows)}
    for arm, (a, alpha) in {"kan": (50.0, 2.0), "mlp": (1.0, 0.5)}.items():
        for eps in (1e-3, 1e-4):
            r = table[(arm, eps)]
            truth = (a / eps) ** (1 / alpha)
            assert r["alpha"] == pytest.approx(alpha, rel=0.1)
            assert r["n_fit"] == pytest.approx(truth, rel=0.25)
            lo, hi = r["n_fit_ci"]
            assert lo <= truth <= (hi if hi is not None else math.inf)
            # measured: the smallest trained size whose mean over seeds reaches eps
            reached = [c["params"] for c in rows if c["arm"] == arm and c["mean"] <= eps]
            assert r["n_measured"] == (min(reached) if reached else None)
    assert table[("kan", 1e-3)]["n_measured"] is not None  # the KAN law reaches 1e-3 here
    assert table[("mlp", 1e-3)]["n_measured"] is None  # the MLP's would need 10^6 params
    assert table[("mlp", 1e-3)]["extrapolated"] is True


def test_verdicts_summaries_and_extrapolation_from_results(tmp_path):
    plan = plan_study(load_compare(study(
        tmp_path, tasks={"xy": "xy"}, budgets={"params": [60, 240], "flops": [3000]},
        tuning={"trials": 0}, arms={"kan": {"kind": "kan", "size": "grid_size", "hidden": [2]},
                                    "mlp": {"kind": "mlp", "size": "width", "depth": 2}})))
    # the KAN is 10x better at small sizes, equal (noise only) at the largest
    law = {"kan": lambda n: 1e-3 if n < 200 else 1e-2, "mlp": lambda n: 1e-2}
    runs = _synthetic_runs(plan, law, noise=0.3)
    verdicts = {(v["matched_by"], v["budget"]): v for v in analysis.verdict_rows(plan, runs)}
    assert verdicts[("params", 60)]["winner"] == "kan"
    assert verdicts[("params", 60)]["ratio"] == pytest.approx(0.1, rel=0.5)
    summary = analysis.summaries(plan, list(verdicts.values()))["xy"]
    assert summary[0].startswith("kan vs mlp: kan better at ")
    assert "of 2 budgets matched by params" in summary[0] and "of 1 by FLOPs" in summary[0]
    ex = analysis.extrapolation_rows(plan, runs)
    assert len(ex) == len(plan.cells)
    assert all(r["ratio"] == pytest.approx(10.0, rel=0.8) for r in ex)


def test_run_rows_read_the_metric_and_mark_diverged_runs(tmp_path):
    plan = plan_study(load_compare(study(tmp_path, tasks={"xy": "xy"}, tuning={"trials": 0},
                                         budgets={"params": [60]})))
    trials = plan.seed_trials()
    rows = [{"run_dir": _fake_run(tmp_path, t, "diverged" if i == 0 else "completed",
                                  **{"test/rmse": 0.01, "train/rmse": 0.005, "ood/rmse": 0.3})}
            for i, t in enumerate(trials)]
    rows[-1] = {"run_dir": None, "status": "error"}
    runs = run_rows(plan, trials, rows)
    assert runs[0]["status"] == "diverged" and runs[0]["value"] is None
    assert runs[1]["value"] == 0.01 and runs[1]["ood/rmse"] == 0.3 and runs[1]["train"] == 0.005
    assert runs[-1]["status"] == "error" and runs[-1]["value"] is None
