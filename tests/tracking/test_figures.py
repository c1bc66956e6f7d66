"""Figures are real: spline snapshots draw the edge functions, scaling plots draw the fits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kanplatform import tracking
from kanplatform.nn import KAN
from kanplatform.nn.basis import bspline_basis
from kanplatform.tracking import figures


def _set_edge(layer, o: int, i: int, fn) -> None:
    """Make edge (o, i) of a KANLayer equal to ``fn`` (least-squares spline, no base term)."""
    lo, hi = layer.input_range()[i].tolist()
    x = torch.linspace(lo, hi, 400, dtype=torch.float64)
    cols = torch.zeros(400, layer.in_features, dtype=torch.float64)
    cols[:, i] = x
    basis = bspline_basis(cols, layer.grid.double(), layer.spline_order)[:, i, :]  # (n, G+k)
    coef = torch.linalg.lstsq(basis, fn(x)[:, None]).solution[:, 0]
    with torch.no_grad():
        layer.coef[i, :, o] = coef.to(layer.coef.dtype)
        layer.scale_sp[o, i] = 1.0
        if layer.scale_base is not None:
            layer.scale_base[o, i] = 0.0


def test_snapshot_draws_the_function_an_edge_was_set_to(tmp_path):
    kan = KAN(width=[2, 2, 1], grid_size=20, grid_range=(-2.0, 2.0), seed=0).double()
    layer = kan.layers[0]
    _set_edge(layer, 0, 0, lambda x: torch.sin(math.pi * x / 2))
    _set_edge(layer, 1, 1, lambda x: x**2 / 4)
    with torch.no_grad():  # edge (0, 1): switched off, should be nearly transparent
        layer.coef[1, :, 0] = 0.0
        layer.scale_base[0, 1] = 0.0
    paths = tracking.snapshot(kan, tmp_path, "known", n_points=201)
    names = sorted(p.name for p in paths)
    assert names == ["splines_known.npz", "splines_known_layer0.png", "splines_known_layer1.png"]

    curves = tracking.load_curves(tmp_path / "figures" / "splines_known.npz")
    assert len(curves) == 2
    x, phi, l1 = curves[0]["x"], curves[0]["phi"], curves[0]["l1"]
    assert x.shape == (201, 2) and phi.shape == (201, 2, 2) and l1.shape == (2, 2)
    assert x[0, 0] == pytest.approx(-2.0) and x[-1, 0] == pytest.approx(2.0)  # the grid range
    np.testing.assert_allclose(phi[:, 0, 0], np.sin(np.pi * x[:, 0] / 2), atol=1e-4)
    np.testing.assert_allclose(phi[:, 1, 1], x[:, 1] ** 2 / 4, atol=1e-6)
    np.testing.assert_allclose(phi[:, 0, 1], 0.0, atol=1e-12)
    # transparency follows the L1 magnitude: the dead edge is at the floor, the biggest opaque
    alpha = figures.edge_alpha(l1)
    assert alpha[0, 1] == pytest.approx(0.1) and alpha.max() == pytest.approx(1.0)

    # the PNG is a real image of a 2x2 panel grid with curves drawn in it
    from matplotlib.image import imread

    img = imread(tmp_path / "figures" / "splines_known_layer0.png")
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert (img[..., :3].mean(axis=2) < 0.5).sum() > 200  # dark curve pixels exist


def test_snapshot_of_a_model_without_kan_layers_is_empty(tmp_path):
    from kanplatform.nn import MLP

    assert tracking.snapshot(MLP(width=[2, 4, 1]), tmp_path, "final") == []
    assert not (tmp_path / "figures").exists()


def test_snapshot_rejects_bad_tags(tmp_path):
    with pytest.raises(ValueError, match="tag"):
        tracking.snapshot(KAN(width=[1, 1]), tmp_path, "../escape")


def test_plot_scaling_draws_points_and_the_fitted_power_law(tmp_path):
    n = np.array([10.0, 100.0, 1000.0])
    rows = [{"kind": "kan", "model/params": a, "test/rmse": 2.0 * a**-4} for a in n]
    rows += [{"kind": "mlp", "model/params": a, "test/rmse": 3.0 * a**-1} for a in n]
    fits = {"kan": {"alpha": 4.0, "alpha_ci": [3.9, 4.1], "a": 2.0, "c": 0.0},
            "mlp": {"alpha": 1.0, "a": 3.0}}
    fig = tracking.plot_scaling(rows, fits, path=tmp_path / "scaling.png")
    assert (tmp_path / "scaling.png").stat().st_size > 5000
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    labels = [line.get_label() for line in ax.get_lines()]
    assert any(lbl.startswith("kan fit: α = 4 [3.9, 4.1]") for lbl in labels), labels
    kan_line = next(line for line in ax.get_lines() if line.get_label().startswith("kan fit"))
    xs, ys = kan_line.get_data()
    np.testing.assert_allclose(ys, 2.0 * np.asarray(xs) ** -4.0, rtol=1e-12)


def test_fit_curve_accepts_powerlawfit_objects_and_dicts():
    from kanplatform.scaling import fit_power_law

    n = np.array([10.0, 20.0, 40.0, 80.0, 160.0])
    fit = fit_power_law(n, 5.0 * n**-2.0)
    np.testing.assert_allclose(figures.fit_curve(fit, n), 5.0 * n**-2.0, rtol=1e-6)
    np.testing.assert_allclose(figures.fit_curve(fit.to_dict(), n), 5.0 * n**-2.0, rtol=1e-6)
    with pytest.raises(ValueError, match="prefactor"):
        figures.fit_curve({"alpha": 1.0}, n)


def test_log_scaling_to_an_offline_run(wandb_env):
    from .conftest import leet_records, offline_run_dir

    run = tracking.init_run({"tracking": {"mode": "offline"}}, wandb_env / "study")
    n = np.array([10.0, 100.0, 1000.0])
    tracking.log_scaling(run, {"kan": (n, 2.0 * n**-4)}, {"kan": {"alpha": 4.0, "a": 2.0}},
                         path=wandb_env / "study" / "figures" / "scaling.png")
    tracking.finish()
    items = [r["history"]["item"] for r in leet_records(wandb_env / "study")
             if r.get("type") == "history"]
    keys = {k for item in items for k in item}
    assert "scaling/model/params_image._type" in keys
    assert "scaling/model/params_table._type" in keys
    assert "scaling/model/params_line_table._type" in keys  # the W&B line plot's data
    media = offline_run_dir(wandb_env / "study") / "files" / "media"
    assert list(media.rglob("*.png")) and list(media.rglob("*.table.json"))
    assert (wandb_env / "study" / "figures" / "scaling.png").is_file()


def test_a_wide_layer_draws_its_strongest_inputs_and_outputs_and_keeps_every_curve(tmp_path):
    """Beyond MAX_EDGES_PLOTTED edges a layer's figure draws the grid of its most important
    inputs and outputs (summed L1), so the strongest edge is in it; the npz still holds every
    edge's curve."""
    import torch

    from kanplatform.nn import KAN

    kan = KAN([3, 40, 1], grid_size=3, seed=0)
    with torch.no_grad():
        kan.layers[0].coef[1, :, 7] *= 50  # edge x1 -> y7 is the strongest by far
    paths = tracking.snapshot(kan, tmp_path, "wide", n_points=11)
    curves = tracking.load_curves(tmp_path / "figures" / "splines_wide.npz")
    assert curves[0]["phi"].shape == (11, 40, 3)  # all 120 edges
    l1 = curves[0]["l1"]
    rows, cols = figures.plotted_grid(l1)
    assert cols == [0, 1, 2] and len(rows) == 21  # 3 inputs, 21 x 3 = 63 <= 64 cells
    assert 7 in rows and rows == sorted(np.argsort(-l1.sum(axis=1), kind="stable")[:21])
    assert figures.plotted_edges(l1) == [(j, i) for j in rows for i in cols]
    # 1 output x 40 inputs: the 16 strongest inputs (a figure at most 16 cells wide)
    rows, cols = figures.plotted_grid(curves[1]["l1"])
    assert rows == [0] and cols == sorted(np.argsort(-curves[1]["l1"][0], kind="stable")[:16])
    # a 32 x 32 layer: 8 x 8; a small layer whole
    square = np.random.default_rng(0).random((32, 32))
    assert [len(v) for v in figures.plotted_grid(square)] == [8, 8]
    assert figures.plotted_grid(np.ones((5, 2))) == ([0, 1, 2, 3, 4], [0, 1])
    assert all(p.stat().st_size > 0 for p in paths)
