"""K optimiser steps per Lightning batch (kanplatform.train.chunking): the same run, bit for
bit, as one step per batch; K falls back to 1 where a cadence or a callback needs it."""

import csv
import re
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from kanplatform.config import apply_overrides
from kanplatform.train import fit
from kanplatform.train.callbacks import GridSchedule, PeriodicCheckpoint, RunRecorder
from kanplatform.train.chunking import callback_cadence, steps_per_batch


class _EveryBatch(pl.Callback):
    """A user's callback with a batch hook and no cadence: one step per batch (K = 1)."""

    def __init__(self):
        self.steps = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps.append(trainer.global_step)


def _rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


def _same_run(a, b) -> None:
    """Final metrics, stage rows, history and every tensor of the model, bit for bit."""
    assert a.metrics["status"] == b.metrics["status"]
    assert a.metrics["reason"] == b.metrics["reason"]
    assert a.metrics["step"] == b.metrics["step"] and a.metrics["epoch"] == b.metrics["epoch"]
    # repr: NaNs (a diverged run) compare equal too
    assert repr(a.metrics["final"]) == repr(b.metrics["final"])
    assert repr(a.metrics["stages"]) == repr(b.metrics["stages"])
    assert _rows(a.run_dir) == _rows(b.run_dir)
    sa, sb = a.model.state_dict(), b.model.state_dict()  # grids included
    assert list(sa) == list(sb)
    for name in sa:
        torch.testing.assert_close(sa[name], sb[name], rtol=0, atol=0, equal_nan=True,
                                   msg=name)


# batches of 64 over 1000 rows: 16 an epoch (the last of 40 rows); K = 6 does not divide
# them, so chunks straddle epoch ends (an endless loader, as full batch)
ACROSS_EPOCHS = ["data.batch_size=64", "grid.steps_per_stage=24", "grid.update_every=6",
                 "grid.update_until=18", "trainer.val_every_n_steps=12",
                 "trainer.checkpoint_every_n_steps=24"]


@pytest.fixture
def chunked_cfg(quick_cfg):
    """Adam mini-batches of 50 over 1000 rows (20 steps an epoch), two grid stages of 20
    steps with grid updates every 5, validation every 10, a warm-up + cosine schedule and
    history rows every 3 steps (and at step 1, inside a chunk): K = 5."""
    return apply_overrides(quick_cfg, [
        "optim.name=adam", "optim.lr=0.02", "optim.scheduler=cosine", "optim.warmup_steps=3",
        "data.batch_size=50", "grid.schedule=[3,5]", "grid.steps_per_stage=20",
        "grid.update_every=5", "grid.update_until=15", "trainer.val_every_n_steps=10",
        "trainer.log_every_n_steps=3", "trainer.checkpoint_every_n_steps=20",
        "trainer.precision=32"])


def test_multi_step_batches_train_exactly_as_one_step_per_batch(chunked_cfg, tmp_path):
    chunked = fit(chunked_cfg, run_dir=tmp_path / "k5", verbose=False)
    every = _EveryBatch()
    plain = fit(chunked_cfg, run_dir=tmp_path / "k1", verbose=False, callbacks=[every])
    assert chunked.metrics["trainer/steps_per_batch"] == 5
    assert plain.metrics["trainer/steps_per_batch"] == 1 and every.steps == list(range(1, 41))
    assert chunked.metrics["status"] == "completed" and chunked.metrics["step"] == 40
    assert chunked.metrics["epoch"] == 2
    _same_run(chunked, plain)
    rows = _rows(chunked.run_dir)
    assert [r["step"] for r in rows if r["train/loss"]][:3] == ["1", "3", "6"]
    assert [r["step"] for r in rows if r["val/rmse"]] == ["10", "20", "30", "40"]
    assert [(s["step"], s["grid_size"]) for s in chunked.metrics["stages"]] == [(20, 3), (40, 5)]


def test_chunks_that_run_on_across_epochs_train_exactly_as_one_step_per_batch(
        chunked_cfg, tmp_path, monkeypatch):
    cfg = apply_overrides(chunked_cfg, ACROSS_EPOCHS)
    for var in ("WANDB_DIR", "WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
        (tmp_path / "wandb-home" / var).mkdir(parents=True)
        monkeypatch.setenv(var, str(tmp_path / "wandb-home" / var))
    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_RUN_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    chunked = fit(apply_overrides(cfg, ["tracking.mode=offline"]), run_dir=tmp_path / "k6",
                  verbose=False)
    plain = fit(cfg, run_dir=tmp_path / "k1", verbose=False, callbacks=[_EveryBatch()])
    assert chunked.metrics["trainer/steps_per_batch"] == 6
    assert chunked.metrics["step"] == 48 and chunked.metrics["epoch"] == 3  # 48 // 16
    _same_run(chunked, plain)
    # W&B holds the steps history.csv holds, train rows inside chunks (step 1) included
    from tests.tracking.conftest import history, leet_records

    wandb_rows = history(leet_records(chunked.run_dir))
    for key in ("train/loss", "val/rmse"):
        ours = [int(r["step"]) for r in _rows(chunked.run_dir) if r[key]]
        theirs = [int(r["trainer/global_step"]) for r in wandb_rows if key in r]
        assert ours == theirs and ours[0] == (1 if key == "train/loss" else 12), key


def test_divergence_inside_a_chunk_stops_at_that_step(chunked_cfg, tmp_path):
    cfg = apply_overrides(chunked_cfg, ["optim.lr=1e6", "optim.scheduler=none"])
    chunked = fit(cfg, run_dir=tmp_path / "k5", verbose=False)
    plain = fit(cfg, run_dir=tmp_path / "k1", verbose=False, callbacks=[_EveryBatch()])
    assert chunked.metrics["trainer/steps_per_batch"] == 5
    assert chunked.status == "diverged", chunked.metrics
    step = int(re.search(r"at step (\d+)", chunked.metrics["reason"]).group(1))
    assert step % 5 and chunked.metrics["step"] == step  # mid-chunk, and not one step more
    _same_run(chunked, plain)


def test_cadences_that_are_not_multiples_fall_back(chunked_cfg, tmp_path):
    # validation every 7 steps: no K > 1 lands on every one of them
    cfg = apply_overrides(chunked_cfg, ["trainer.val_every_n_steps=7", "trainer.max_steps=14",
                                        "grid.schedule=[]"])
    result = fit(cfg, run_dir=tmp_path / "v7", verbose=False)
    assert result.metrics["trainer/steps_per_batch"] == 1
    assert [r["step"] for r in _rows(result.run_dir) if r["val/rmse"]] == ["7", "14"]
    # the rule itself: the largest divisor of every cadence, at most 16
    assert steps_per_batch([40, 20, 10]) == 10
    assert steps_per_batch([400, 200, 100]) == 10  # 20, 25, 50 and 100 exceed 16
    assert steps_per_batch([64, 128]) == 16
    assert steps_per_batch([40, 20, 7]) == 1
    assert steps_per_batch([40, 20], [_EveryBatch()]) == 1  # needs every step
    assert callback_cadence(_EveryBatch()) is None
    # ours: the recorder runs between a chunk's steps, the others name their cadence
    assert callback_cadence(RunRecorder(3)) == 0
    assert callback_cadence(GridSchedule([3, 5], 20, 5, 15)) == 5
    assert callback_cadence(GridSchedule([3, 5], 20, 5, 5)) == 20  # updates at stage starts
    assert callback_cadence(PeriodicCheckpoint(tmp_path / "c.ckpt", 30)) == 30


@pytest.mark.parametrize(("stop_at", "part_k", "k"), [(20, 5, 5), (10, 5, 5), (10, 1, 5),
                                                      (24, 6, 6)])
def test_resume_at_a_chunk_boundary_continues_exactly(chunked_cfg, tmp_path, stop_at, part_k,
                                                      k):
    """At an epoch end (20), mid-epoch (10; 24 with chunks across epochs, K = 6), from a run
    chunked as the resumed one or one step per batch (its Lightning batch counters are
    rescaled on load)."""
    # no LR schedule: the stopped run's budget would set a different one
    chunked_cfg = apply_overrides(chunked_cfg, ["optim.scheduler=none",
                                                *(ACROSS_EPOCHS if k == 6 else [])])
    whole = fit(chunked_cfg, run_dir=tmp_path / "whole", verbose=False)
    extra = [] if part_k == k else [_EveryBatch()]
    part = fit(chunked_cfg, run_dir=tmp_path / "run", trainer_kwargs={"max_steps": stop_at},
               callbacks=extra, verbose=False)
    assert part.metrics["trainer/steps_per_batch"] == part_k and part.metrics["step"] == stop_at
    resumed = fit(chunked_cfg, run_dir=part.run_dir, verbose=False,
                  ckpt_path=part.run_dir / "checkpoints" / "last.ckpt")
    assert resumed.metrics["trainer/steps_per_batch"] == k
    assert resumed.metrics["resumed_from"]["step"] == stop_at
    _same_run(resumed, whole)
