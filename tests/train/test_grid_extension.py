"""The KAN paper's grid-extension experiment, as shipped in configs/ (slow).

Paper / pykan test RMSE: 1.5e-2 (G=3), 3.3e-4 (G=10), 4.0e-5 (G=20), 1.2e-5 (G=50).
Ours must reach <= 5e-5 at G=20 and <= 2e-5 at G=50, training in under 30 s on 2 cores.
"""

from pathlib import Path

import pytest

from kanplatform.config import load_config
from kanplatform.train import fit

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "experiment" / "grid_extension.yaml"


@pytest.mark.slow
def test_grid_extension_reaches_the_paper_accuracy(tmp_path):
    cfg = load_config(CONFIG, [f"output_dir={tmp_path}", "tracking.mode=disabled",
                               "trainer.enable_progress_bar=false"])
    metrics = fit(cfg, verbose=False).metrics
    test = {s["grid_size"]: s["test/rmse"] for s in metrics["stages"]}
    assert list(test) == [3, 5, 10, 20, 50]
    assert test[20] <= 5e-5, test
    assert test[50] <= 2e-5, test
    assert metrics["wall_time_s"] is not None
