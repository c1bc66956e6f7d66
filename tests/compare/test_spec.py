"""Bad study files fail before Ray starts, with one line naming the key; good ones validate."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from kanplatform.cli import main
from kanplatform.compare import CompareError, load_compare, plan_study

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "configs" / "experiment" / "quick.yaml"
GOOD = {
    "name": "t",
    "base": [str(QUICK)],
    "seeds": [0, 1, 2],
    "tasks": {"xy": "xy"},
    "budgets": {"params": [60]},
    "arms": {"kan": {"kind": "kan", "size": "grid_size", "hidden": [2]},
             "mlp": {"kind": "mlp", "size": "width", "depth": 1}},
}


def write(tmp_path: Path, **changes) -> Path:
    study = {**GOOD, **changes}
    study = {k: v for k, v in study.items() if v is not None}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


BAD = {
    "unknown arm kind": ({"arms": {"kan": {"kind": "kan", "size": "grid_size"},
                                   "cnn": {"kind": "cnn"}}},
                         r"^error: arms\.cnn\.kind='cnn': not a registered model kind; "
                         r"valid: kan, mlp$"),
    "budget below the smallest model": (
        {"budgets": {"params": [20, 60]}},
        r"^error: budgets\.params\[0\]=20: below the smallest kan model \(grid_size=1: 39 "
        r"params\); raise the budget or shrink arms\.kan \(hidden/depth\)$"),
    "one seed": ({"seeds": [0]},
                 r"^error: seeds: a paired test over seeds needs at least 3 different seeds, "
                 r"got \[0\]$"),
    "unknown top-level key": ({"seed": [0, 1, 2]},
                              r"^error: .*study\.yaml: unknown key 'seed' \(did you mean "
                              r"'seeds'\?\); valid keys: "),
    "unknown arm key": ({"arms": {"kan": {"kind": "kan", "widths": [2]}, "mlp": "mlp"}},
                        r"^error: unknown key 'arms\.kan\.widths'; "
                        r"valid keys in 'arms\.kan': kind, size, "),
    "one arm": ({"arms": {"kan": "kan"}}, r"^error: arms: name at least two arms"),
    "unknown budget axis": ({"budgets": {"macs": [100]}},
                            r"^error: budgets\.macs: unknown budget axis; valid: params, flops$"),
    "arm sets the size itself": (
        {"arms": {"kan": {"kind": "kan", "overrides": {"model.width": [2, 3, 1]}},
                  "mlp": "mlp"}},
        r"^error: arms\.kan: model\.width is set by the study"),
    "unknown dataset": ({"tasks": {"nope": "no_such_target"}},
                        r"^error: tasks\.nope: unknown dataset 'no_such_target'; valid: "),
    "unknown run-config key in a task": (
        {"tasks": {"xy": {"overrides": {"data.dataset": "xy", "data.ntrain": 5}}}},
        r"^error: tasks\.xy: override data\.ntrain: unknown key"),
    "tuning without a space": ({"tuning": {"trials": 2}},
                               r"^error: tuning\.space: empty, but tuning\.trials=2; give every "
                               r"arm a space"),
    "tuning seed among the seeds": ({"tuning": {"trials": 2, "seed": 1,
                                                "space": {"optim.lr": {"choice": [1.0]}}}},
                                    r"^error: tuning\.seed=1 is one of the seeds"),
    "tuned key the config lacks": (
        {"tuning": {"trials": 2, "space": {"optim.lrr": {"choice": [0.1, 1.0]}}}},
        r"^error: tuning\.space\.optim\.lrr: override optim\.lrr: unknown key 'optim\.lrr' "
        r"\(did you mean 'optim\.lr'\?\); valid keys in 'optim': name, lr"),
    "tuning the model's size": (
        {"tuning": {"trials": 2, "space": {"model.spline_order": {"choice": [2, 3]}}}},
        r"^error: arms\.kan\.tune: model\.spline_order changes the model's size"),
    "grid_search gives unequal trial counts": (
        {"tuning": {"trials": 2, "space": {"optim.lr": {"grid_search": [0.1, 1.0]}}}},
        r"^error: tuning\.space\.optim\.lr: grid_search would give arms different"),
    "tuning space smaller than the trials": (
        {"tuning": {"trials": 3, "space": {"optim.lr": {"choice": [0.5, 1.0]}}}},
        r"^error: tuning\.space: found only 2 distinct values for tuning\.trials=3"),
    "bad metric": ({"metric": "rmse"}, r"^error: metric='rmse': name a recorded metric"),
    "ood metric without an ood split": (
        {"metric": "ood/rmse", "ood": {"n": 0}},
        r"^error: tasks\.xy: metric ood/rmse needs the out-of-domain split"),
    "missing base file": ({"base": ["nowhere.yaml"]}, r"^error: base: run config .*nowhere\.yaml "
                                                       r"not found"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_study_fails_with_one_line_before_anything_runs(tmp_path, capsys, case):
    changes, message = BAD[case]
    path = write(tmp_path, **changes)
    out_dir = tmp_path / "out"
    code = main(["compare", str(path), "--output-dir", str(out_dir)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err  # one line, no traceback
    import re

    assert re.search(message, err), err
    assert not out_dir.exists()  # nothing half-made left behind
    if "ray" in sys.modules:  # Ray was never started
        import ray

        assert not ray.is_initialized()


def test_an_output_uri_is_refused_in_one_line(tmp_path, capsys):
    assert main(["compare", str(write(tmp_path)), "--output-dir", "s3://bucket/x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: --output-dir s3://bucket/x: a compare study writes files; give a "
                   "path on the cluster's shared filesystem (URIs are storage for `tune`)")


def test_good_study_plans_every_training_without_ray(tmp_path):
    plan = plan_study(load_compare(write(tmp_path, budgets={"params": [60, 120],
                                                            "flops": [1500]})))
    assert len(plan.cells) == 6  # 3 budgets x 2 arms
    assert plan.n_trainings() == len(plan.sizes()) * 3
    assert {c.axis for c in plan.cells} == {"params", "flops"}
    trial = plan.seed_trials()[0]
    assert trial.overrides["seed"] == trial.overrides["data.seed"] == 0
    assert trial.overrides["data.n_ood"] == 1000  # xy is a registered target: OOD on


def test_command_line_overrides_reach_study_and_run_config(tmp_path):
    spec = load_compare(write(tmp_path), ["seeds=[3,4,5]", "arms.mlp.depth=2",
                                          "tuning.space.optim.lr={choice: [0.1]}",
                                          "trainer.max_steps=7", "tasks.xy.metric=val/rmse"])
    assert spec.seeds == [3, 4, 5] and spec.arms["mlp"].depth == 2
    assert spec.tuning.space == {"optim.lr": {"choice": [0.1]}}
    assert spec.overrides["trainer.max_steps"] == 7
    assert spec.task_metric("xy") == ("val/rmse", "min")
    with pytest.raises(CompareError, match=r"override 'x' is not KEY=VALUE"):
        load_compare(write(tmp_path), ["x"])


def test_stack_runs_is_on_by_default_and_checked(tmp_path):
    assert load_compare(write(tmp_path)).stack_runs is True
    assert load_compare(write(tmp_path), ["stack_runs=false"]).stack_runs is False
    with pytest.raises(CompareError, match=r"stack_runs: expected true or false, got 'maybe'"):
        load_compare(write(tmp_path), ["stack_runs=maybe"])


@pytest.mark.parametrize("name", ["demo.yaml", "tiny.yaml"])
def test_shipped_studies_validate(name, capsys):
    assert main(["validate", str(ROOT / "configs" / "compare" / name)]) == 0
    assert "compare study" in capsys.readouterr().out


FAIR = ROOT / "configs" / "compare" / "fair_small.yaml"
REAL = ("digits", "wine", "breast_cancer", "diabetes")


def test_fair_small_plans_every_task_real_datasets_classified_on_all_rows():
    data = yaml.safe_load(FAIR.read_text())
    assert list(data["tasks"])[:4] == list(REAL) and len(data["tasks"]) == 8
    plan = plan_study(load_compare(FAIR))
    # every arm sized to every budget on both axes, for all 8 tasks
    assert len(plan.cells) == 8 * 2 * 3 * 2
    for cell in plan.cells:
        assert abs(cell.sized.achieved - cell.budget) <= cell.sized.step
    # the real datasets: logits out (one per class), whole table, no OOD split
    io = {name: plan.tasks[name].io for name in REAL}
    assert io == {"digits": (64, 10), "wine": (13, 3), "breast_cancer": (30, 2),
                  "diabetes": (10, 1)}
    for name in REAL:
        t = plan.tasks[name]
        assert not t.ood and t.cfg.data.n_train is None
        assert t.cfg.task == ("regression" if name == "diabetes" else "classification")
        assert (t.metric, t.mode) == (("test/rmse", "min") if name == "diabetes"
                                      else ("test/accuracy", "max"))
    assert all(plan.tasks[name].ood for name in data["tasks"] if name not in REAL)
    per_arm: dict[str, int] = {}
    for t in plan.tuning_trials():
        arm = t.family.split("/")[1]
        per_arm[arm] = per_arm.get(arm, 0) + 1
    for arm in ("kan", "mlp"):
        assert per_arm[arm] == 3 * sum(1 for key in plan.sizes() if key[1] == arm)
