"""``kanplatform interpret RUN_DIR`` on real ``kanplatform train`` run directories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kanplatform.cli import main

QUICK = str(Path(__file__).resolve().parents[2] / "configs" / "experiment" / "quick.yaml")


def _train(run_dir: Path, *overrides: str) -> Path:
    rc = main(["train", QUICK, "model.width=[2,3,1]", f"output_dir={run_dir.parent}",
               *overrides, "--run-dir", str(run_dir), "--quiet"])
    assert rc == 0
    return run_dir


@pytest.fixture(scope="module")
def kan_run(tmp_path_factory) -> Path:
    return _train(tmp_path_factory.mktemp("runs") / "kan", "reg.lamb=0.001",
                  "tracking.mode=offline")


def test_interpret_writes_formula_snapshots_and_wandb(kan_run, capsys):
    rc = main(["interpret", str(kan_run), "--lib", "x,x^2,sin,exp", "--retrain-steps", "3",
               "--affine-steps", "3", "--r2-threshold", "0.9", "--layerwise-steps", "2"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "y1 = " in out and "test RMSE" in out
    d = kan_run / "interpret"
    summary = json.loads((d / "interpret.json").read_text())
    assert summary["width_before"] == [2, 3, 1]
    assert summary["formula"][0].startswith("y1 = ")
    assert (d / "formula.txt").read_text().startswith("y1 = ")
    assert (d / "formula.tex").read_text().startswith("$$y1 = ")
    m = summary["metrics"]
    for key in ("model/test_rmse", "pruned/test_rmse", "symbolic/test_rmse"):
        assert m[key] == m[key] and m[key] >= 0  # finite, never NaN
    for tag in ("before", "pruned", "symbolic"):
        assert (kan_run / "figures" / f"splines_interpret_{tag}_layer0.png").is_file()
    # the W&B run was re-opened (same id, resume) rather than a new one started
    from kanplatform.tracking.wandb_run import recorded_run_id

    runs = sorted((kan_run / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(r.name.endswith(f"-{recorded_run_id(kan_run)}") for r in runs)

    import kanplatform
    pruned = kanplatform.load(d / "pruned_model.pt")
    assert pruned.width == summary["width_after"]


def test_interpret_without_pruning_keeps_width(kan_run, capsys):
    """A poor library (x, x^2) leaves spline edges: every phi_l_o_i term of the formula is
    named below it with its edge, R² and why; --max-terms gives the short form."""
    import re

    rc = main(["interpret", str(kan_run), "--prune", "no", "--lib", "x,x^2",
               "--affine-steps", "2", "--tracking", "disabled", "--r2-threshold", "0.9999",
               "--max-terms", "1"])
    assert rc == 0
    out = capsys.readouterr().out
    summary = json.loads((kan_run / "interpret" / "interpret.json").read_text())
    assert summary["width_after"] == [2, 3, 1]
    assert "width [2, 3, 1] -> pruned [2, 3, 1] (nothing pruned)" in out  # it had reg.lamb
    kept = [e for e in summary["edges"] if not e["accepted"]]
    assert kept  # x and x^2 cannot fit exp/sin edges to R² 0.9999
    for e in kept:
        name = f"phi_{e['layer']}_{e['out']}_{e['in']}"
        note = next(line for line in out.splitlines() if line.startswith(f"  {name}(...)"))
        assert f"edge layer {e['layer']}, input {e['in']} -> output {e['out']}" in note
        assert "R²" in note or "R² ~0" in note
    formula = next(line for line in out.splitlines() if line.startswith("y1 = "))
    full = summary["formula"][0]
    import sympy

    if len(sympy.Add.make_args(sympy.sympify(full.split(" = ", 1)[1]))) > 1:  # a sum
        assert re.search(r" \+ \.\.\. \(\d+ smaller terms?; --max-terms 0 prints all\)$",
                         formula), formula


def test_interpret_refuses_mlp_and_missing_runs(tmp_path, capsys):
    mlp = _train(tmp_path / "mlp", "model.kind=mlp", "tracking.mode=disabled")
    assert main(["interpret", str(mlp)]) == 1
    assert "needs a KAN" in capsys.readouterr().err
    assert main(["interpret", str(tmp_path / "nope")]) == 1
    assert "config.yaml" in capsys.readouterr().err
    assert main(["interpret", str(mlp), "--lib", "x,sinc"]) == 1


def test_nothing_pruned_without_regularisation_says_why(tmp_path):
    """A run trained with reg.lamb 0 (configs/default.yaml) prunes nothing: the width line
    says why and which config prunes."""
    from types import SimpleNamespace

    from kanplatform.cli.interpret import _why

    (tmp_path / "config.yaml").write_text("reg: {lamb: 0.0}\n")
    assert "reg.lamb 0" in _why(SimpleNamespace(run_dir=tmp_path))
    assert "configs/experiment/interpret.yaml" in _why(SimpleNamespace(run_dir=tmp_path))
    (tmp_path / "config.yaml").write_text("reg: {lamb: 0.01}\n")
    assert _why(SimpleNamespace(run_dir=tmp_path)) == ""
