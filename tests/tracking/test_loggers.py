"""make_loggers + make_callbacks in real Lightning training, read back with wandb's own tooling."""

from __future__ import annotations

import json
import warnings

import pytest
import pytorch_lightning as pl
import torch

from kanplatform import tracking
from kanplatform.tracking import TrackingWarning

from .conftest import FakeKAN, history, leet_records, leet_summary, offline_run_dir


class TinyModule(pl.LightningModule):
    """Trains ``self.model`` (replaceable, as the grid-extension callback does)."""

    def __init__(self) -> None:
        super().__init__()
        self.model = FakeKAN((2, 3, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.mean((self.model(x) - y) ** 2)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/rmse", torch.sqrt(torch.mean((self.model(x) - y) ** 2)))

    def configure_optimizers(self):
        return torch.optim.Adam(self.model.parameters(), lr=1e-2)


def _loader():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(32, 2, generator=g) * 2 - 1
    y = torch.sin(x).sum(1, keepdim=True)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)


def _trainer(loggers, callbacks, steps=8):
    return pl.Trainer(max_steps=steps, logger=loggers, callbacks=callbacks, log_every_n_steps=1,
                      val_check_interval=4, enable_progress_bar=False,
                      enable_checkpointing=False, enable_model_summary=False,
                      num_sanity_val_steps=0, accelerator="cpu", devices=1)


def _cfg(**tracking_kw):
    from omegaconf import OmegaConf

    return OmegaConf.create({"name": "tiny", "seed": 7,
                             "model": {"kind": "kan", "width": [2, 3, 1]},
                             "tracking": {"mode": "offline", "project": "p", "group": "g",
                                          "tags": ["t1"], "snapshot_every": 4,
                                          "log_checkpoints": False, **tracking_kw}})


@pytest.mark.slow
class _ReplaceModel(pl.Callback):
    """Replaces the trained model after step ``at``, as grid extension does mid-fit."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.at:
            pl_module.model = FakeKAN((2, 3, 1))


def test_two_stage_training_is_read_back_by_wandb_leet(wandb_env):
    run_dir = wandb_env / "run"
    cfg = _cfg()
    loggers = tracking.make_loggers(cfg, run_dir)
    callbacks = tracking.make_callbacks(cfg, run_dir)
    module = TinyModule()
    first_model = module.model
    torch.set_num_threads(1)
    # one trainer runs both stages (as fit does); the model is replaced after step 8
    _trainer(loggers, [*callbacks, _ReplaceModel(8)], steps=16).fit(module, _loader(), _loader())
    tracking.finish(loggers)

    rows = history(leet_records(run_dir))
    loss_steps = [r["trainer/global_step"] for r in rows if "train/loss" in r]
    val_steps = [r["trainer/global_step"] for r in rows if "val/rmse" in r]
    # W&B steps are trainer.global_step
    assert loss_steps == list(range(1, 17))
    assert val_steps == [4, 8, 12, 16]
    axis = [r["trainer/global_step"] for r in rows if "trainer/global_step" in r]
    assert axis == sorted(axis)

    summary = leet_summary(run_dir)
    config = summary["config"]
    resolved = tracking.run_config(cfg)
    assert set(config) - {"_wandb"} == set(resolved)
    assert config["model"] == resolved["model"] and config["seed"] == 7
    assert config["tracking"]["tags"] == ["t1"]

    media = offline_run_dir(run_dir) / "files" / "media"
    images = sorted(p.name for p in (media / "images").rglob("*.png"))
    # W&B gets steps 4 and 8, step 12, stage 1 end: stage 0's end is step 8's model at step 8
    # and the last step's periodic snapshot is the stage-1 end (files only), 2 layers each
    assert len(images) == 2 * 4
    assert list((media / "table").rglob("*.table.json"))
    # the history references the images by path (leet flattens nested values with dots)
    image_rows = [r for r in rows if r.get("splines/layer0._type") == "image-file"]
    assert [r["splines/layer0.caption"] for r in image_rows] == [
        "step000004 layer 0", "step000008 layer 0", "step000012 layer 0", "stage1_G5 layer 0"]
    for r in image_rows:
        assert (offline_run_dir(run_dir) / "files" / r["splines/layer0.path"]).is_file()
    assert all(r.get("splines/curves._type") == "table-file" for r in image_rows)

    figures = run_dir / "figures"
    for tag in ("step000004", "step000008", "step000012", "step000016",
                "stage0_G5", "stage1_G5", "final"):
        assert (figures / f"splines_{tag}_layer0.png").is_file(), tag
        assert (figures / f"splines_{tag}_layer1.png").is_file(), tag
        assert (figures / f"splines_{tag}.npz").is_file(), tag
    assert callbacks[0].tags.count("stage0_G5") == 1  # no duplicate stage end
    # the stage-0 snapshot shows the first model (as trained), not its replacement
    curves = tracking.load_curves(figures / "splines_stage0_G5.npz")
    w = first_model.layers[0].w.detach().double()
    expected = torch.sin(torch.as_tensor(curves[0]["x"]))[:, None, :] * w[None]
    assert torch.allclose(torch.as_tensor(curves[0]["phi"]), expected, atol=1e-6)


@pytest.mark.slow
def test_online_with_network_unreachable_completes_and_warns_once(wandb_env, monkeypatch):
    """Runs in the test netns (loopback only): online W&B cannot connect anywhere."""
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)  # a key, so W&B really tries the network
    run_dir = wandb_env / "run"
    cfg = _cfg(mode="online", init_timeout=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loggers = tracking.make_loggers(cfg, run_dir)
        module = TinyModule()
        _trainer(loggers, tracking.make_callbacks(cfg, run_dir)).fit(module, _loader(), _loader())
        tracking.finish(loggers)
    ours = [str(w.message) for w in caught if issubclass(w.category, TrackingWarning)]
    assert len(ours) == 1, ours
    assert "online run failed" in ours[0] and "wandb sync" in ours[0]
    # nothing lost: the run fell back to offline and holds the whole history
    rows = history(leet_records(run_dir))
    assert [r["trainer/global_step"] for r in rows if "train/loss" in r] == list(range(1, 9))
    assert len([r for r in rows if "val/rmse" in r]) == 2
    assert (run_dir / "figures" / "splines_final_layer0.png").is_file()


def test_disabled_trains_without_wandb_but_writes_figures(wandb_env):
    run_dir = wandb_env / "run"
    cfg = _cfg(mode="disabled")
    loggers = tracking.make_loggers(cfg, run_dir)
    assert loggers == []
    _trainer(False, tracking.make_callbacks(cfg, run_dir)).fit(TinyModule(), _loader())
    assert not (run_dir / "wandb").exists()
    assert (run_dir / "figures" / "splines_final.npz").is_file()


def test_logging_failure_mid_run_is_a_warning(wandb_env):
    run_dir = wandb_env / "run"
    cfg = _cfg(snapshot_every=0)
    loggers = tracking.make_loggers(cfg, run_dir)
    run = loggers[0].experiment
    calls = {"n": 0}
    real_log = run.log

    def flaky_log(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] >= 3:
            raise OSError("No space left on device")
        return real_log(*args, **kwargs)

    run.log = flaky_log
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = _trainer(loggers, tracking.make_callbacks(cfg, run_dir))
        trainer.fit(TinyModule(), _loader(), _loader())
    assert trainer.global_step == 8  # training completed
    ours = [str(w.message) for w in caught if issubclass(w.category, TrackingWarning)]
    assert len(ours) == 1 and "No space left" in ours[0]
    tracking.finish(loggers)


@pytest.mark.parametrize("log_checkpoints", [False, True])
def test_checkpoints_as_artifacts_by_config(wandb_env, log_checkpoints):
    run_dir = wandb_env / "run"
    cfg = _cfg(snapshot_every=0, log_checkpoints=log_checkpoints)
    loggers = tracking.make_loggers(cfg, run_dir)
    trainer = _trainer(loggers, [], steps=2)
    module = TinyModule()
    trainer.fit(module, _loader())
    # the files fit writes before it calls finish
    torch.save({"state_dict": module.model.state_dict()}, run_dir / "model.pt")
    (run_dir / "checkpoints").mkdir()
    trainer.save_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    (run_dir / "metrics.json").write_text('{"status": "completed", "final": {"test/rmse": 0.5}}')
    tracking.finish(loggers)
    records = leet_records(run_dir)
    artifacts = [r["artifact"] for r in records if r.get("type") == "artifact"]
    if log_checkpoints:
        assert len(artifacts) == 1 and artifacts[0]["type"] == "model"
        assert set(artifacts[0]["aliases"]) == {"latest", "completed"}
        text = json.dumps(artifacts[0])
        assert "model.pt" in text and "checkpoints/last.ckpt" in text
    else:
        assert not artifacts
    summary = leet_summary(run_dir)["summary"]
    assert summary["test/rmse"] == 0.5 and summary["status"] == "completed"


def test_a_failing_snapshot_is_a_warning(wandb_env, monkeypatch):
    from kanplatform.tracking import snapshots

    def broken(*args, **kwargs):
        raise RuntimeError("matplotlib exploded")

    monkeypatch.setattr("kanplatform.tracking.callbacks.snapshot", broken)
    assert snapshots.snapshot is not broken
    cfg = _cfg(mode="disabled", snapshot_every=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = _trainer(False, tracking.make_callbacks(cfg, wandb_env / "run"), steps=4)
        trainer.fit(TinyModule(), _loader())
    assert trainer.global_step == 4
    ours = [str(w.message) for w in caught if issubclass(w.category, TrackingWarning)]
    assert len(ours) == 1 and "matplotlib exploded" in ours[0]
