"""SymbolicKAN: auto_symbolic, formula, affine training — and the paper's exp(sin(πx)+y²) case."""

from __future__ import annotations

import math

import pytest
import sympy
import torch

from kanplatform.nn import KAN
from kanplatform.nn.prune import prune
from kanplatform.nn.symbolic_kan import auto_symbolic, snap_constants, train_affine
from tests.nn._kanfit import exp_sin_sq, train_lbfgs

LIB = ["x", "x^2", "x^3", "sin", "exp", "tanh"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _x(n=200, d=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, d, generator=g, dtype=torch.float64) * 2 - 1


def _small_kan():
    kan = KAN([2, 2, 1], grid_size=5, seed=0).double()
    with torch.no_grad():
        kan.layers[0].mask[1, 0] = 0  # a pruned edge
    return kan


def test_formula_evaluates_to_the_model_and_masked_edges_are_zero():
    kan, x = _small_kan(), _x()
    sym = auto_symbolic(kan, x, LIB, r2_threshold=0.0, max_search_points=64)
    assert sym.is_fully_symbolic
    masked = [r for r in sym.fits if r.reason == "masked"]
    assert [(r.layer, r.out, r.inp) for r in masked] == [(0, 1, 0)]
    (expr,) = sym.formula(["x", "y"], digits=12)
    f = sympy.lambdify(sympy.symbols("x y", real=True), expr, "math")
    got = torch.tensor([f(float(a), float(b)) for a, b in x], dtype=torch.float64)
    torch.testing.assert_close(got, sym(x)[:, 0].detach(), atol=1e-8, rtol=0)


def test_edges_without_good_fit_stay_splines_and_are_reported():
    kan, x = _small_kan(), _x()
    sym = auto_symbolic(kan, x, ["x"], r2_threshold=1.1, max_search_points=64)
    kept = [r for r in sym.fits if not r.accepted]
    assert len(kept) == 5 and all("kept as a spline" in r.reason for r in kept)
    torch.testing.assert_close(sym(x), kan(x))  # nothing replaced: the same function
    (expr,) = sym.formula()
    assert "phi_0_0_0" in str(expr)


def test_symbolic_model_is_trainable_and_never_nan():
    kan, x = _small_kan(), _x()
    sym = auto_symbolic(kan, x, ["x", "1/x", "log", "sqrt"], r2_threshold=0.0,
                        max_search_points=64)
    y = kan(x).detach()
    before = torch.sqrt(torch.mean((sym(x) - y) ** 2)).item()
    after = train_affine(sym, x, y, steps=5)
    assert after <= before + 1e-12 and math.isfinite(after)
    far = torch.tensor([[0.0, 0.0], [50.0, -50.0], [-1e3, 1e3]], dtype=torch.float64)
    assert torch.isfinite(sym(far)).all()
    assert any("outside the fitted range" in n for n in sym.check_inputs(far))
    phi = sym.layers[0].edge_activations(x)
    torch.testing.assert_close(phi.sum(-1) + sym.layers[0].spline.bias, sym.layers[0](x))


def test_unknown_library_name_fails_before_fitting():
    with pytest.raises(KeyError, match="register_symbolic"):
        auto_symbolic(_small_kan(), _x(), ["x", "sinc"])


def test_snap_constants():
    x = sympy.Symbol("x")
    assert snap_constants(1.0004 * sympy.sin(3.1409 * x) + 0.003) == sympy.sin(sympy.pi * x)
    assert snap_constants(0.4999 * x + 2.37 * x**2) == x / 2 + 2.37 * x**2


@pytest.mark.slow
def test_exp_sin_sq_prunes_to_2_1_1_and_recovers_formula():
    """The KAN paper's example: [2,5,1] + sparsity → [2,1,1] → exp(sin(πx) + y²).

    Seed 1: with seed 0 the 40-step sparsified fit is borderline (it prunes to [2, 1, 1],
    [2, 2, 1] or [2, 3, 1] depending on rounding: float32/float64, PyTorch or compiled
    kernels); seeds 1 and 2 prune to [2, 1, 1] in all four combinations."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1000, 2, generator=g) * 2 - 1
    xt = torch.rand(1000, 2, generator=g) * 2 - 1
    y, yt = exp_sin_sq(x), exp_sin_sq(xt)
    kan = KAN([2, 5, 1], grid_size=5, seed=1)
    train_lbfgs(kan, x, y, steps=40, lamb=1e-2)
    small = prune(kan, x)
    assert small.width == [2, 1, 1]
    train_lbfgs(small, x, y, steps=40)

    # the whole library; the (a, b) grid search on 64 of the 1000 points (its default 256
    # cost ~2/3 of this test; Levenberg-Marquardt still polishes on every point, and the
    # CLI's `--interpret` test runs the defaults on the same example)
    sym = auto_symbolic(small, x, max_search_points=64).double()
    names = sorted(r.fit.name for r in sym.fits)
    assert names == ["exp", "sin", "x^2"]
    train_affine(sym, x.double(), y.double(), steps=20)
    test_rmse = torch.sqrt(torch.mean((sym(xt.double()) - yt.double()) ** 2)).item()
    assert test_rmse <= 1e-3

    X, Y = sympy.symbols("x y", real=True)
    (expr,) = sym.formula(["x", "y"])
    snapped = snap_constants(sympy.expand(expr), tol=1e-2)  # constants within 1e-2
    assert sympy.simplify(snapped - sympy.exp(sympy.sin(sympy.pi * X) + Y**2)) == 0


def test_layerwise_fit_retrains_downstream_layers():
    kan, x = _small_kan(), _x()
    y = kan(x).detach()
    sym = auto_symbolic(kan, x, ["x", "x^2"], y=y, retrain_steps=2, r2_threshold=0.0,
                        max_search_points=64)
    assert sym.is_fully_symbolic and len(sym.fits) == 6
    assert torch.isfinite(sym(x)).all()
    # layer 1 was fitted on the retrained model, whose splines moved
    assert not torch.equal(sym.layers[1].spline.coef, kan.layers[1].coef)
