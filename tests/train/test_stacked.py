"""``fit_stacked``: S runs trained as one stack compute exactly what S separate ``fit`` runs do.

Every comparison is bit for bit: the weights in ``model.pt``, ``metrics.json``'s results and
statuses, ``history.csv`` as text, the stage table, the figures written and each run's own W&B
run (read back with wandb's reader).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from kanplatform.config import ConfigError, load_config
from kanplatform.train import fit
from kanplatform.train.resolve import load_run_config
from kanplatform.train.stacked import fit_stacked, stack_reason
from tests.tracking.conftest import history, leet_records, leet_summary, wandb_env  # noqa: F401

QUICK = Path(__file__).resolve().parents[2] / "configs" / "experiment" / "quick.yaml"


def _cfgs(tmp_path: Path, where: str, runs: list[dict], *extra: str) -> list:
    base = [f"output_dir={tmp_path / where}", "trainer.num_threads=1", "optim.name=adam",
            "data.n_train=200", "data.n_val=100", "data.n_test=100", "data.batch_size=32",
            "trainer.val_every_n_steps=10", "trainer.log_every_n_steps=5",
            "trainer.checkpoint_every_n_steps=0", *extra]
    return [load_run_config(QUICK, [*base, *(f"{k}={v}" for k, v in run.items())])
            for run in runs]


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "model.pt", weights_only=True)["state_dict"]


def _same_run(a: Path, b: Path) -> None:
    """Run directories ``a`` (a separate fit) and ``b`` (a stacked one) hold the same run."""
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    for key in ("status", "reason", "final", "stages", "step", "epoch", "seed",
                "model/params", "model/flops", "data/n_train", "task"):
        assert ma[key] == mb[key], key
    assert (a / "history.csv").read_text() == (b / "history.csv").read_text()
    assert json.loads((a / "data.json").read_text()) == json.loads((b / "data.json").read_text())
    figures = sorted(p.name for p in (a / "figures").glob("*")) if (a / "figures").is_dir() \
        else []
    assert figures == (sorted(p.name for p in (b / "figures").glob("*"))
                       if (b / "figures").is_dir() else [])
    assert mb["trainer/stacked"] >= 2 and "trainer/stacked" not in ma
    assert not (b / "checkpoints").exists()  # a stack writes no Lightning checkpoint


@pytest.mark.parametrize("case", ["kan-grid-extension-float64", "mlp-lrs-cosine-clip"])
def test_a_stack_computes_what_separate_runs_compute_bit_for_bit(tmp_path, case):
    """A KAN whose grid is updated and extended (float64, the KAN regulariser), and MLPs with
    different learning rates under a cosine schedule and gradient clipping."""
    if case.startswith("kan"):
        runs = [{"seed": s} for s in (0, 1, 2)]
        extra = ("grid.schedule=[3,5]", "grid.steps_per_stage=20", "grid.update_every=5",
                 "grid.update_until=15", "trainer.precision=64", "reg.lamb=0.001")
    else:
        runs = [{"seed": 0, "optim.lr": 0.01}, {"seed": 0, "optim.lr": 0.003},
                {"seed": 4, "optim.lr": 0.03}]
        extra = ("model=mlp", "model.width=[2,8,8,1]", "grid.schedule=[]",
                 "trainer.max_steps=45", "optim.scheduler=cosine", "optim.warmup_steps=5",
                 "trainer.gradient_clip_val=0.5", "optim.name=adamw")
    separate = [fit(c, verbose=False) for c in _cfgs(tmp_path, "alone", runs, *extra)]
    stacked = fit_stacked(_cfgs(tmp_path, "stack", runs, *extra), verbose=False)
    assert [r.status for r in stacked] == ["completed"] * 3
    for a, b in zip(separate, stacked):
        _same_run(a.run_dir, b.run_dir)
        assert b.metrics["trainer/stacked"] == 3
    if case.startswith("kan"):
        assert [s["grid_size"] for s in stacked[0].metrics["stages"]] == [3, 5]


def test_runs_that_end_early_leave_the_stack_and_the_others_go_on(tmp_path, wandb_env):  # noqa: F811
    """One run diverges at once, one stops early (early stopping), one completes: each ends
    where its separate run ends, with the same status, reason and W&B run."""
    runs = [{"seed": 0, "optim.lr": 1e6}, {"seed": 1, "optim.lr": 0.05},
            {"seed": 2, "optim.lr": 0.003}]
    extra = ("model=mlp", "model.width=[2,6,1]", "grid.schedule=[]", "trainer.max_steps=80",
             "trainer.early_stopping={metric: val/rmse, patience: 1, mode: min, "
             "min_delta: 0.01}", "tracking.mode=offline")
    separate = [fit(c, verbose=False) for c in _cfgs(tmp_path, "alone", runs, *extra)]
    stacked = fit_stacked(_cfgs(tmp_path, "stack", runs, *extra), verbose=False)
    assert [r.status for r in separate] == [r.status for r in stacked]
    assert stacked[0].status == "diverged" and stacked[0].metrics["step"] < 5
    assert {r.status for r in stacked[1:]} <= {"stopped", "completed"}
    assert any(r.status == "stopped" for r in stacked), [r.metrics["reason"] for r in stacked]
    for a, b in zip(separate, stacked):
        _same_run(a.run_dir, b.run_dir)
        sa, sb = leet_summary(a.run_dir), leet_summary(b.run_dir)
        assert sa["state"] == sb["state"] and sa["exit_code"] == sb["exit_code"]
        for key in ("status", "reason", "val/rmse", "test/rmse", "step"):
            assert sa["summary"].get(key) == sb["summary"].get(key), key
        def rows(run_dir: Path) -> list[dict]:
            return [{k: v for k, v in row.items() if k.startswith(("train/", "val/", "stage/"))
                     or k in ("epoch", "grid/size", "grid/stage", "trainer/global_step")}
                    for row in history(leet_records(run_dir))]

        assert rows(b.run_dir) == rows(a.run_dir)


def test_runs_that_cannot_stack_are_refused_before_anything_is_written(tmp_path):
    lbfgs = load_config(QUICK, [f"output_dir={tmp_path / 'runs'}"])
    assert "LBFGS" in stack_reason([lbfgs, lbfgs])
    cfgs = _cfgs(tmp_path, "runs", [{"seed": 0}, {"seed": 1, "model.width": "[2,2,1]"}])
    assert stack_reason(cfgs) == ("the runs differ in more than seed, data.seed, optim.lr and "
                                  "their names")
    assert stack_reason(cfgs[:1]) == "a stack needs at least two runs"
    assert stack_reason(_cfgs(tmp_path, "runs", [{"seed": 0}, {"seed": 1, "data.seed": 3}])) \
        is None
    with pytest.raises(ConfigError, match="cannot train as one stack: the runs differ"):
        fit_stacked(cfgs, verbose=False)
    assert not (tmp_path / "runs").exists()
