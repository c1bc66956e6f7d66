"""Run files are data: a pickle payload planted in ``model.pt`` or ``last.ckpt`` never runs.

The payload is a real one: unpickled with ``weights_only=False`` it creates a marker file
(``open(marker, "w")``). Every reader -- ``kanplatform.load``, ``train --resume``,
``interpret`` and Lightning's own checkpoint restore -- refuses the file with a message naming
it, and the marker never appears.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

import kanplatform
from kanplatform.cli import main
from kanplatform.train.checkpoint import UnsafeCheckpointError, read_run_file

QUICK = str(Path(__file__).resolve().parents[2] / "configs" / "experiment" / "quick.yaml")


class _Payload:
    """Unpickling this calls ``open(marker, "w")``: code running from a data file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _plant(path: Path, marker: Path) -> None:
    """Rewrite a run file with the same content plus the payload (still a valid torch file)."""
    content = torch.load(path, map_location="cpu", weights_only=True)
    content["extra"] = _Payload(marker)
    torch.save(content, path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("ckpt") / "run"
    assert main(["train", QUICK, "grid.schedule=[3]", "trainer.num_threads=1",
                 f"output_dir={run.parent}", "--run-dir", str(run), "--quiet"]) == 0
    return run


@pytest.fixture
def crafted(trained, tmp_path) -> tuple[Path, Path]:
    """A copy of the trained run whose model.pt and last.ckpt both carry the payload."""
    run = tmp_path / "crafted"
    shutil.copytree(trained, run)
    marker = tmp_path / "PWNED"
    for name in ("model.pt", "checkpoints/last.ckpt"):
        _plant(run / name, marker)
    # the planted file really is dangerous: the unsafe reader runs the payload
    probe = tmp_path / "probe.pt"
    shutil.copyfile(run / "model.pt", probe)
    torch.load(probe, weights_only=False)
    assert marker.exists()
    marker.unlink()
    return run, marker


def test_our_own_files_load_as_data(trained):
    saved = read_run_file(trained / "model.pt")
    assert set(saved) == {"model_config", "state_dict", "data_info"}
    assert saved["data_info"]["task"] == "regression"  # plain values, read as data too
    assert "optimizer_states" in read_run_file(trained / "checkpoints" / "last.ckpt")
    model = kanplatform.load(trained)
    dtype = next(model.parameters()).dtype
    assert model(torch.zeros(3, 2, dtype=dtype)).shape == (3, 1)


def test_load_refuses_a_crafted_model_file_and_a_crafted_checkpoint(crafted):
    run, marker = crafted
    with pytest.raises(UnsafeCheckpointError,
                       match=r"refusing to load .*model\.pt.*needs GLOBAL io\.open"):
        kanplatform.load(run)
    (run / "model.pt").unlink()  # then load falls back to the checkpoint: refused too
    with pytest.raises(UnsafeCheckpointError, match=r"last\.ckpt"):
        kanplatform.load(run)
    assert not marker.exists()


def test_train_resume_refuses_a_crafted_checkpoint_before_writing_anything(crafted, capsys):
    run, marker = crafted
    before = (run / "metrics.json").read_text()
    code = main(["train", "--resume", str(run), "grid.schedule=[3,5]", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and "refusing to load" in err and "last.ckpt" in err
    assert "Traceback" not in err
    assert (run / "metrics.json").read_text() == before
    assert not marker.exists()


def test_interpret_refuses_a_crafted_model_file(crafted, capsys):
    run, marker = crafted
    assert main(["interpret", str(run), "--tracking", "disabled"]) == 1
    err = capsys.readouterr().err
    assert "refusing to load" in err and "model.pt" in err
    assert not (run / "interpret" / "interpret.json").exists()
    assert not marker.exists()


def test_lightnings_own_restore_is_weights_only(crafted, tmp_path):
    """Past our checks, Lightning's ``ckpt_path`` restore with ``weights_only=True`` (as
    ``fit`` calls it) refuses the payload too: the installed Lightning honours the argument."""
    import pickle

    import pytorch_lightning as pl

    from kanplatform.config import load_config
    from kanplatform.data import KANDataModule
    from kanplatform.nn import build_model
    from kanplatform.train.module import RegressionModule

    run, marker = crafted
    cfg = load_config(run / "config.yaml")
    module = RegressionModule(build_model({"kind": "kan", "width": [2, 1, 1], "grid_size": 3}),
                              cfg.optim)
    trainer = pl.Trainer(max_steps=12, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=str(tmp_path))
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        trainer.fit(module, datamodule=KANDataModule(data_cfg=cfg.data),
                    ckpt_path=str(run / "checkpoints" / "last.ckpt"), weights_only=True)
    assert not marker.exists()
