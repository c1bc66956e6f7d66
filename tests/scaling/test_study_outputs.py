"""Study outputs from run directories, without Ray: table, fits, plot, scaling.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kanplatform.scaling.spec import load_study
from kanplatform.scaling.study import (
    SCALING_JSON,
    TABLE_CSV,
    StudyResult,
    base_config,
    fit_families,
    rows_from_run,
    write_outputs,
    write_plots,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "scaling"


def fake_run(run_dir: Path, metrics: dict) -> Path:
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    return run_dir


def kan_metrics(seed: int) -> dict:
    # paper-like: RMSE ~ G^-4 until G=50, then the grid overfits at G=100
    stages = []
    for g, rmse in [(3, 1.5e-2), (5, 2e-3), (10, 3.3e-4), (20, 4e-5), (50, 1.2e-5),
                    (100, 5e-5)]:
        rmse *= 1 + 0.05 * seed
        stages.append({"grid_size": g, "step": 200, "train/rmse": rmse / 2, "val/rmse": rmse,
                       "test/rmse": rmse, "model/params": 3 * (g + 5) + 2,
                       "model/flops": 90 * g + 350})
    return {"status": "completed", "stages": stages, "final": {}}


def mlp_metrics(params: int, seed: int, status: str = "completed") -> dict:
    rmse = 0.5 * params**-1.0 * (1 + 0.1 * seed)
    return {"status": status, "model/params": params, "model/flops": 3 * params,
            "final": {"train/rmse": rmse, "val/rmse": rmse, "test/rmse": rmse}}


@pytest.fixture
def study(tmp_path):
    spec = load_study(CONFIGS / "tiny.yaml", ["seeds=[0,1]", "families.mlp.widths=[4,8,16,32]",
                                              "fit.n_boot=200", "fit.min_sizes=3"])
    from kanplatform.scaling.spec import expand

    trials = expand(spec)
    rows = []
    for t in trials:
        d = tmp_path / "runs" / t.key.replace("/", "_")
        if t.kind == "kan":
            rows += rows_from_run(t, fake_run(d, kan_metrics(t.seed)))
        else:
            w = t.overrides["model.width"][1]
            m = mlp_metrics(4 * w + 1, t.seed)
            if w == 32 and t.seed == 1:
                m["final"]["test/rmse"] = float("nan")  # a diverged run
                m["status"] = "diverged"
            rows += rows_from_run(t, fake_run(d, m))
    return spec, rows, tmp_path


def test_rows_from_runs_and_stages(study):
    spec, rows, _ = study
    kan = [r for r in rows if r["family"] == "kan"]
    assert len(kan) == 2 * 6 and {r["grid_size"] for r in kan} == {3, 5, 10, 20, 50, 100}
    assert all(r["kind"] == "kan" and r["width"] == "[2, 1, 1]" for r in kan)
    mlp = [r for r in rows if r["family"] == "mlp"]
    assert len(mlp) == 2 * 4 and {r["model/params"] for r in mlp} == {17, 33, 65, 129}
    assert {r["depth"] for r in mlp} == {2}


def test_missing_run_gives_a_row_without_losses(tmp_path):
    spec = load_study(CONFIGS / "tiny.yaml")
    from kanplatform.scaling.spec import expand

    trial = [t for t in expand(spec) if t.kind == "mlp"][0]
    (row,) = rows_from_run(trial, None, "error")
    assert row["status"] == "error" and row["test/rmse"] is None


def test_fit_families_drops_tail_and_diverged(study):
    spec, rows, _ = study
    fits, errors = fit_families(spec, rows)
    assert not errors
    kan = fits["kan"]["model/params"]
    assert kan.n_range == (26.0, 167.0)  # G=3..50; G=100 is the overfitting tail
    assert 3.0 < kan.alpha < 5.0
    assert any("overfitting tail" in d.reason for d in kan.dropped)
    mlp = fits["mlp"]["model/params"]
    assert mlp.alpha == pytest.approx(1.0, abs=0.05)
    assert any("not finite" in d.reason for d in mlp.dropped)
    assert "model/flops" in fits["kan"] and "model/flops" in fits["mlp"]


def test_outputs_written_and_readable(study):
    spec, rows, tmp_path = study
    fits, errors = fit_families(spec, rows)
    result = StudyResult(tmp_path, rows, fits, errors, trials_run=3, wall_time_s=1.0)
    base = base_config(spec)
    result.plots = write_plots(spec, base, result)
    write_outputs(spec, base, result)
    doc = json.loads((tmp_path / SCALING_JSON).read_text())
    assert doc["families"]["kan"]["theory_alpha"] == 4.0
    assert doc["families"]["mlp"]["theory_alpha"] is None
    fit = doc["families"]["kan"]["fits"]["model/params"]
    assert fit["alpha"] == pytest.approx(fits["kan"]["model/params"].alpha)
    assert len(fit["alpha_ci"]) == 2 and fit["n_range"] == [26.0, 167.0]
    assert len(doc["rows"]) == len(rows)
    csv_text = (tmp_path / TABLE_CSV).read_text().splitlines()
    assert csv_text[0].startswith("family,kind,label") and len(csv_text) == len(rows) + 1
    for name in ("scaling.png", "scaling_flops.png"):
        png = tmp_path / name
        assert png.stat().st_size > 10_000
        from matplotlib.image import imread

        assert imread(png).shape[0] > 300
    # the tracking package's fit_curve reads the same layout
    from kanplatform.tracking.figures import fit_curve

    assert np.allclose(fit_curve(fit, np.array([50.0])),
                       fits["kan"]["model/params"].predict(50.0))


def test_study_logged_to_wandb_offline(study, monkeypatch):
    spec, rows, tmp_path = study
    for var in ("WANDB_DIR", "WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
        d = tmp_path / "wandb-home" / var.lower()
        d.mkdir(parents=True)
        monkeypatch.setenv(var, str(d))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    spec.wandb = "offline"
    from kanplatform.scaling.study import log_study

    fits, errors = fit_families(spec, rows)
    result = StudyResult(tmp_path, rows, fits, errors)
    base = base_config(spec)
    result.plots = write_plots(spec, base, result)
    log_study(spec, base, result)
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    import subprocess
    import sys

    wandb_cli = Path(sys.executable).with_name("wandb")
    out = subprocess.run([str(wandb_cli), "leet", "inspect", "--json", str(run_dir)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    text = json.dumps(records)
    assert '"study"' in text and "scaling/model/params_image" in text
    assert "scaling/kan/model/params/alpha" in text
    pngs = list((run_dir / "files" / "media").rglob("*.png"))
    assert {"params", "flops"} <= {p.name.split("_")[0] for p in pngs}
    # every image logged is a figure write_plots saved, not a second drawing of it
    saved = {p.read_bytes() for p in result.plots.values()}
    assert {p.read_bytes() for p in pngs} == saved
