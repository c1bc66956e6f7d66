"""SplineSnapshotCallback in a resumed ``fit``: its stage tags (tracking/callbacks.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kanplatform import tracking
from kanplatform.config import load_config
from kanplatform.train import fit

QUICK = Path(__file__).resolve().parents[2] / "configs" / "experiment" / "quick.yaml"


def _stage_tags(run_dir: Path) -> list[str]:
    return sorted(p.name[len("splines_"):-len(".npz")]
                  for p in (run_dir / "figures").glob("splines_stage*.npz"))


def _same_curves(a: Path, b: Path) -> bool:
    return all(np.allclose(x[k], y[k], rtol=1e-9, atol=0)
               for x, y in zip(tracking.load_curves(a), tracking.load_curves(b), strict=True)
               for k in ("x", "phi", "l1"))


# stopped mid-stage 0 (its snapshot is written at the stop), and right at its end (the grid
# already extended: the stopped run holds an untrained G=5 model)
@pytest.mark.parametrize("stop_at", [7, 10])
def test_a_resumed_run_tags_its_stage_snapshots_as_an_uninterrupted_run(tmp_path, stop_at):
    cfg = load_config(QUICK, [f"output_dir={tmp_path}", "trainer.num_threads=1",
                              "tracking.mode=disabled"])
    whole = fit(cfg, run_dir=tmp_path / "whole", verbose=False).run_dir
    run = fit(cfg, run_dir=tmp_path / "run", trainer_kwargs={"max_steps": stop_at},
              verbose=False).run_dir
    assert _stage_tags(run) == ["stage0_G3"]  # not a stage1_G5 of the untrained finer grid
    fit(cfg, run_dir=run, ckpt_path=run / "checkpoints" / "last.ckpt", verbose=False)

    assert _stage_tags(whole) == ["stage0_G3", "stage1_G5"]
    assert _stage_tags(run) == _stage_tags(whole)  # no stage1_G3 / stage2_G5
    # each tag shows its stage's model at the stage's end (rewritten there after a mid-stage
    # stop), the same as the uninterrupted run's (a resume repeats its arithmetic)
    for tag in ("stage0_G3", "stage1_G5", "final"):
        name = f"splines_{tag}.npz"
        assert _same_curves(run / "figures" / name, whole / "figures" / name), tag
