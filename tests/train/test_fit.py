"""fit(): the run directory, reloading, determinism, optimisers, divergence."""

import csv
import json
import re
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

import kanplatform
from kanplatform.config import apply_overrides, load_config
from kanplatform.nn import count_params
from kanplatform.train import fit
from kanplatform.train.fitting import run_threads
from kanplatform.train.resolve import apply_run_overrides


def test_fit_writes_the_run_directory(quick_cfg):
    result = fit(quick_cfg, verbose=False)
    run = result.run_dir
    assert run.parent.name == "runs" and run.name.startswith("quick-")
    for name in ("config.yaml", "metrics.json", "history.csv", "model.pt",
                 "checkpoints/last.ckpt"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["reason"] is None
    assert set(metrics["final"]) >= {"train/rmse", "val/rmse", "test/rmse", "train/loss"}
    for key in ("model/params", "model/flops", "wall_time_s", "seed", "git_sha", "versions"):
        assert key in metrics, key
    assert metrics["versions"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert metrics["trainer/num_threads"] == 1  # the config's
    assert load_config(run / "config.yaml").name == "quick"
    with open(run / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and {"step", "train/loss", "grid/size"} <= set(rows[0])
    steps = [int(r["step"]) for r in rows]
    assert steps == sorted(steps)  # one trainer: the step axis is monotone across stages


def test_grid_extension_stages(quick_cfg):
    metrics = fit(quick_cfg, verbose=False).metrics
    stages = metrics["stages"]
    assert [s["grid_size"] for s in stages] == [3, 5]
    assert [s["step"] for s in stages] == [10, 20]
    assert stages[1]["model/params"] > stages[0]["model/params"]
    for s in stages:
        assert {"train/rmse", "val/rmse", "test/rmse", "model/flops"} <= set(s)
    assert metrics["final"]["test/rmse"] == pytest.approx(stages[-1]["test/rmse"])
    assert metrics["final"]["test/rmse"] < 0.5



def test_fused_lbfgs_evaluations_train_exactly_as_the_plain_closure(quick_cfg, monkeypatch):
    """The one-call loss (FusedMSE) under FlatLBFGS gives the plain autograd closure's run:
    the same gradients bit for bit, the loss (a float reduced by numpy) to rounding, which 20
    LBFGS steps with grid updates amplify to ~1e-5 relative in the metrics."""
    from kanplatform.nn.fused import FusedMSE

    calls = []
    prepare = FusedMSE.prepare
    monkeypatch.setattr(FusedMSE, "prepare",
                        lambda self, *a, **k: calls.append(1) or prepare(self, *a, **k))
    fused = fit(quick_cfg, verbose=False)
    assert len(calls) == 20  # one per LBFGS step: the fused path ran
    monkeypatch.setattr(FusedMSE, "supported", staticmethod(lambda *a: False))
    plain = fit(quick_cfg, verbose=False)
    for got, ref in zip(fused.metrics["stages"], plain.metrics["stages"]):
        assert got.keys() == ref.keys()
        for key, value in ref.items():
            assert got[key] == pytest.approx(value, rel=1e-4), key
    assert fused.metrics["final"] == pytest.approx(plain.metrics["final"], rel=1e-4)
    for a, b in zip(fused.model.parameters(), plain.model.parameters()):
        a, b = a.detach(), b.detach()
        assert float((a - b).abs().max()) <= 1e-4 * float(b.abs().max())  # ~5e-6 seen

def test_load_reproduces_predictions(quick_cfg):
    result = fit(quick_cfg, verbose=False)
    x = torch.rand(32, 2, dtype=torch.float64) * 2 - 1
    loaded = kanplatform.load(result.run_dir)
    with torch.no_grad():
        assert torch.allclose(loaded(x), result.model(x), atol=0, rtol=0)
    from_ckpt = kanplatform.load(result.run_dir / "checkpoints" / "last.ckpt")
    with torch.no_grad():
        assert torch.allclose(from_ckpt(x), result.model(x))
    assert loaded.grid_size == 5


def test_load_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model in"):
        kanplatform.load(tmp_path)


def test_same_seed_same_metrics_and_global_rng_untouched(quick_cfg):
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    a = fit(quick_cfg, verbose=False)
    assert torch.equal(state, torch.get_rng_state())
    b = fit(quick_cfg, verbose=False)
    assert a.run_dir != b.run_dir
    assert a.metrics["final"] == b.metrics["final"]
    assert a.metrics["stages"] == b.metrics["stages"]
    threads = torch.get_num_threads()
    c = fit(apply_overrides(quick_cfg, ["seed=1", "trainer.num_threads=null"]), verbose=False)
    assert c.metrics["final"] != a.metrics["final"]
    # the default: torch's count capped by the process's CPUs (affinity, cgroup quota)
    assert c.metrics["trainer/num_threads"] == run_threads(None)
    assert torch.get_num_threads() == threads


def _hand_written_adam(cfg):
    """What an Adam mini-batch fit of ``cfg`` computes, as a plain loop: the same model, the
    same batches, a grid update before every ``update_every``-th step; (model, last loss)."""
    from kanplatform.data import KANDataModule, dataset_for_run
    from kanplatform.train.callbacks import grid_samples
    from kanplatform.train.models import build_model_from_config
    from kanplatform.train.optim import make_optimizer

    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        model = build_model_from_config(cfg.model, None, grid_eps=cfg.grid.grid_eps,
                                        seed=cfg.seed).float()
    splits = dataset_for_run(cfg)
    opt = make_optimizer(model.parameters(), cfg.optim)
    batches = iter(KANDataModule(splits, batch_size=cfg.data.batch_size,
                                 seed=cfg.seed).train_dataloader())
    for step in range(cfg.trainer.max_steps):
        if step and step % cfg.grid.update_every == 0 and step < cfg.grid.update_until:
            with torch.no_grad():
                model.update_grid(grid_samples(splits))
        x, y = next(batches)
        opt.zero_grad()
        loss = torch.mean((model(x) - y) ** 2)
        loss.backward()
        opt.step()
    return model, float(loss.detach())


class _StepPlanSeen(pl.Callback):
    """Records whether the run's steps took the lean path."""

    lean = None

    def on_train_end(self, trainer, pl_module):
        self.lean = pl_module.__dict__["_step_plan"].lean


class _GradientNorms(pl.Callback):
    """Overrides a backward hook: the run must take Lightning's own step (every hook)."""

    def __init__(self):
        self.calls = 0

    def on_after_backward(self, trainer, pl_module):
        self.calls += 1


def test_adam_mini_batches(quick_cfg, tmp_path):
    cfg = apply_overrides(quick_cfg, ["optim.name=adam", "optim.lr=0.01", "data.batch_size=50",
                                      "grid.schedule=[]", "trainer.max_steps=12",
                                      "trainer.precision=32"])
    seen = _StepPlanSeen()
    result = fit(cfg, run_dir=tmp_path / "adam", verbose=False, callbacks=[seen])
    assert seen.lean is True
    assert result.run_dir == (tmp_path / "adam").resolve()
    assert result.metrics["status"] == "completed" and result.metrics["step"] == 12
    assert result.metrics["stages"][0]["grid_size"] == 5
    assert next(result.model.parameters()).dtype == torch.float32
    # the lean step (torch's optimiser and backward, no Lightning hook rounds) computes what
    # a hand-written loop does, bit for bit, grid updates at steps 5 and 10 included
    model, loss = _hand_written_adam(cfg)
    assert result.metrics["final"]["train/loss"] == loss
    for (name, ours), theirs in zip(result.model.state_dict().items(),
                                    model.state_dict().values()):
        assert torch.equal(ours, theirs), name
    # and so does Lightning's own path, taken when a callback overrides a step hook
    hooked, seen = _GradientNorms(), _StepPlanSeen()
    plain = fit(cfg, run_dir=tmp_path / "hooked", verbose=False, callbacks=[hooked, seen])
    assert hooked.calls == 12 and seen.lean is False
    assert plain.metrics["final"] == result.metrics["final"]
    assert plain.metrics["stages"] == result.metrics["stages"]
    for ours, theirs in zip(plain.model.state_dict().values(), model.state_dict().values()):
        assert torch.equal(ours, theirs)


def test_parameter_matched_mlp(quick_cfg):
    cfg = apply_run_overrides(quick_cfg, ["model=mlp"])
    kan_params = fit(quick_cfg, verbose=False).metrics["model/params"]
    result = fit(cfg, verbose=False)
    assert result.model.__class__.__name__ == "MLP"
    assert abs(count_params(result.model) - kan_params) <= 0.2 * kan_params
    assert [s["grid_size"] for s in result.metrics["stages"]] == [None, None]
    # the recorded config holds the widths that trained, not mlp.yaml's [2, 32, 32, 1]
    recorded = load_config(result.run_dir / "config.yaml")
    assert list(recorded.model.width) == result.model.width != [2, 32, 32, 1]
    assert list(cfg.model.width) == result.model.width  # resolved before training


def test_regularisation_runs(quick_cfg):
    cfg = apply_overrides(quick_cfg, ["reg.lamb=0.001"])
    assert fit(cfg, verbose=False).metrics["final"]["train/loss"] > 0


class _Poison(pl.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == 3:
            with torch.no_grad():
                for p in pl_module.model.parameters():
                    p.fill_(float("nan"))


def test_divergence_stops_and_is_recorded(quick_cfg):
    result = fit(quick_cfg, callbacks=[_Poison()], verbose=False)
    assert result.status == "diverged"
    assert "non-finite train/loss" in result.metrics["reason"]
    assert result.metrics["step"] <= 5
    saved = json.loads((result.run_dir / "metrics.json").read_text())
    assert saved["status"] == "diverged"


def test_failure_is_recorded_and_raised(quick_cfg):
    class Boom(pl.Callback):
        def on_train_batch_start(self, *args):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fit(quick_cfg, callbacks=[Boom()], verbose=False)
    run = next(Path(quick_cfg.output_dir).iterdir())
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["status"] == "failed" and "boom" in saved["reason"]


def test_invalid_config_writes_nothing(quick_cfg, tmp_path):
    from kanplatform.config import ConfigError, to_dict

    bad = to_dict(quick_cfg)
    bad["model"]["grid_size"] = 0
    with pytest.raises(ConfigError, match="model.grid_size"):
        fit(bad, run_dir=tmp_path / "never", verbose=False)
    assert not (tmp_path / "never").exists()


def _history_steps(run_dir: Path) -> list[int]:
    with open(run_dir / "history.csv") as f:
        return [int(row["step"]) for row in csv.DictReader(f)]


@pytest.mark.parametrize("stop_at", [7, 10])  # mid-stage; at the end of the first grid stage
def test_resume_continues_the_run_and_matches_an_uninterrupted_one(quick_cfg, tmp_path, stop_at):
    cfg = apply_overrides(quick_cfg, ["trainer.log_every_n_steps=1"])
    whole = fit(cfg, run_dir=tmp_path / "whole", verbose=False)
    part = fit(cfg, run_dir=tmp_path / "part", trainer_kwargs={"max_steps": stop_at},
               verbose=False)
    assert part.metrics["step"] == stop_at and _history_steps(part.run_dir)[-1] == stop_at

    ckpt = part.run_dir / "checkpoints" / "last.ckpt"
    resumed = fit(cfg, run_dir=part.run_dir, ckpt_path=ckpt, verbose=False)
    metrics = resumed.metrics
    assert metrics["status"] == "completed" and metrics["step"] == 20
    assert metrics["resumed_from"] == {"checkpoint": str(ckpt.resolve()), "step": stop_at}
    # one step axis: the rows saved before the stop, then the resumed ones, no restart
    assert _history_steps(resumed.run_dir) == list(range(1, 21)) == _history_steps(whole.run_dir)
    # stage rows: measured at each stage's end (a row written at the stop is measured again)
    assert [(s["stage"], s["step"], s["grid_size"]) for s in metrics["stages"]] == \
        [(1, 10, 3), (2, 20, 5)]  # stages counted from 1, as grid/stage everywhere
    # Same seed, full-batch data, LBFGS and grid state restored from the checkpoint: the same
    # floating-point operations in the same order, so on one CPU thread the results agree to
    # the last bit; rel=1e-9 leaves room only for summation-order noise, far below the
    # differences a resume bug leaves (a float32 round trip of the float64 weights on load
    # moved the final RMSE by 7e-5 relative; a lost grid extension or restarted step counter
    # by far more).
    for key, value in whole.metrics["final"].items():
        assert metrics["final"][key] == pytest.approx(value, rel=1e-9), key
    for a, b in zip(whole.metrics["stages"], metrics["stages"]):
        assert b["test/rmse"] == pytest.approx(a["test/rmse"], rel=1e-9)
    assert next(resumed.model.parameters()).dtype == torch.float64


def test_resume_from_a_missing_checkpoint_fails_before_anything_is_written(quick_cfg, tmp_path):
    missing = tmp_path / "nowhere" / "last.ckpt"
    with pytest.raises(FileNotFoundError) as err:
        fit(quick_cfg, run_dir=tmp_path / "run", ckpt_path=missing, verbose=False)
    assert str(err.value) == f"checkpoint file not found: {missing.resolve()}"
    assert not (tmp_path / "run").exists()


def test_resume_refuses_a_checkpoint_of_another_model_or_past_the_budget(quick_cfg, tmp_path):
    from kanplatform.config import ConfigError

    done = fit(quick_cfg, run_dir=tmp_path / "done", verbose=False)
    ckpt = done.run_dir / "checkpoints" / "last.ckpt"
    with pytest.raises(ConfigError, match=r"holds a kan of width \[2, 1, 1\], but the config "
                                          r"trains a kan of width \[2, 3, 1\]"):
        fit(apply_overrides(quick_cfg, ["model.width=[2,3,1]"]), run_dir=tmp_path / "other",
            ckpt_path=ckpt, verbose=False)
    with pytest.raises(ConfigError, match="at step 20, past the config's budget of 10 steps"):
        fit(apply_overrides(quick_cfg, ["grid.schedule=[3]"]), run_dir=tmp_path / "short",
            ckpt_path=ckpt, verbose=False)
    assert not (tmp_path / "other").exists() and not (tmp_path / "short").exists()


class _KeepCheckpoints(pl.Callback):
    """Copies ``last.ckpt`` whenever it holds a new step: what a kill would have left."""

    def __init__(self, run_dir: Path, keep: Path) -> None:
        self.ckpt, self.keep, self.kept = run_dir / "checkpoints" / "last.ckpt", keep, {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        import shutil

        if self.ckpt.is_file():
            step = torch.load(self.ckpt, map_location="cpu", weights_only=False)["global_step"]
            if step not in self.kept:
                self.kept[step] = self.keep / f"step{step}.ckpt"
                shutil.copyfile(self.ckpt, self.kept[step])


def _history(run_dir: Path) -> list[dict]:
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


def test_periodic_checkpoints_each_resume_to_the_uninterrupted_run(quick_cfg, tmp_path):
    """Every 3 steps and at the stage end (step 10), during training; at a validation step
    (every 5) once validation has ended. Each one continues to the uninterrupted result."""
    cfg = apply_overrides(quick_cfg, ["trainer.log_every_n_steps=1",
                                      "trainer.checkpoint_every_n_steps=3"])
    keep = tmp_path / "kept"
    keep.mkdir()
    kept = _KeepCheckpoints(tmp_path / "whole", keep)
    whole = fit(cfg, run_dir=tmp_path / "whole", callbacks=[kept], verbose=False)
    # not at step 20: fit writes that one when the run ends
    assert sorted(kept.kept) == [3, 6, 9, 10, 12, 15, 18]
    assert [p.name for p in (whole.run_dir / "checkpoints").iterdir()] == ["last.ckpt"]
    rows = _history(whole.run_dir)
    assert [r["step"] for r in rows if r["val/rmse"]] == ["5", "10", "15", "20"]
    for step, ckpt in sorted(kept.kept.items()):
        resumed = fit(cfg, run_dir=tmp_path / f"from{step}", ckpt_path=ckpt, verbose=False)
        assert resumed.metrics["resumed_from"]["step"] == step
        # the whole history, validation rows included (a checkpoint written before the
        # validation of its step would lose that row: a resume does not validate again)
        assert _history(resumed.run_dir) == rows, step
        assert resumed.metrics["stages"] == whole.metrics["stages"], step
        # same arithmetic as the uninterrupted run (tolerance: see the test above)
        for key, value in whole.metrics["final"].items():
            assert resumed.metrics["final"][key] == pytest.approx(value, rel=1e-9), (step, key)


def test_no_periodic_checkpoint_with_zero(quick_cfg, tmp_path):
    cfg = apply_overrides(quick_cfg, ["trainer.checkpoint_every_n_steps=0"])
    kept = _KeepCheckpoints(tmp_path / "run", tmp_path)
    result = fit(cfg, run_dir=tmp_path / "run", callbacks=[kept], verbose=False)
    assert kept.kept == {}  # none while training...
    assert (result.run_dir / "checkpoints" / "last.ckpt").is_file()  # ...one at the end


@pytest.mark.parametrize("precision", [32, 64])
def test_a_loss_that_explodes_without_overflowing_is_diverged(quick_cfg, precision):
    """Adam at lr 1e6: float64 climbs to ~1e36 while staying finite; still ``diverged``."""
    cfg = apply_overrides(quick_cfg, {"optim.name": "adam", "optim.lr": 1e6,
                                      "trainer.precision": precision})
    result = fit(cfg, verbose=False)
    assert result.status == "diverged", result.metrics
    reason = result.metrics["reason"]
    assert re.search(r"(rose above 10000x its best|non-finite train/loss).* at step \d+|"
                     r"at step \d+ rose above", reason), reason
    assert result.metrics["step"] < 20
    assert json.loads((result.run_dir / "metrics.json").read_text())["status"] == "diverged"

    off = fit(apply_overrides(cfg, {"trainer.divergence_factor": 0, "trainer.precision": 64}),
              verbose=False)
    assert off.status == "completed"  # the old rule: only NaN/inf, so 1e24 RMSE "completes"


def test_ood_split_is_evaluated_beside_the_test_split(quick_cfg):
    from kanplatform.data import dataset_from_config

    cfg = apply_overrides(quick_cfg, {"data.n_ood": 300, "data.n_train": 200})
    result = fit(cfg, verbose=False)
    m = json.loads((result.run_dir / "metrics.json").read_text())
    assert m["ood"] == {"n": 300, "shell": [1.0, 1.5], "nonfinite_dropped": 0}
    dtype = next(result.model.parameters()).dtype
    ood = dataset_from_config(cfg.data, dtype=dtype).ood
    x, y = ood.x, ood.y
    with torch.no_grad():
        rmse = float(torch.sqrt(torch.mean((result.model(x) - y) ** 2)))
    assert m["final"]["ood/rmse"] == pytest.approx(rmse, rel=1e-5)
    assert m["final"]["ood/rmse"] > m["final"]["test/rmse"]  # outside the box is harder

