"""KAN: grid extension and update preserve the function, out-of-grid behaviour, config."""

import copy
import pickle

import pytest
import torch

from kanplatform.nn import KAN, KANLayer, build_model
from kanplatform.nn.basis import bspline_basis


def _samples(n: int, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 2, generator=gen, dtype=dtype) * 2 - 1) * 0.95


def _polynomial_kan(dtype: torch.dtype) -> KAN:
    """A [2, 3, 1] KAN whose every spline is a cubic polynomial (representable on any knots)
    and whose hidden values stay inside the second layer's grid."""
    kan = KAN(width=[2, 3, 1], grid_size=5, seed=1).to(dtype)
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for layer in kan.layers:
            n_in, n_basis, n_out = layer.coef.shape
            pts = torch.linspace(-1, 1, 40, dtype=dtype).unsqueeze(1).repeat(1, n_in)
            a = torch.randn(4, n_in, n_out, generator=gen, dtype=dtype) * 0.1
            target = sum(a[p] * pts.unsqueeze(-1) ** p for p in range(4))  # (40, I, O)
            b = bspline_basis(pts, layer.grid, 3)  # (40, I, G+k)
            sol = torch.linalg.lstsq(b.transpose(0, 1), target.transpose(0, 1)).solution
            layer.coef.copy_(sol)  # (I, G+k, O)
            layer.scale_base.mul_(0.1)
    return kan


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_extend_grid_preserves_function(dtype) -> None:
    kan = KAN(width=[2, 3, 1], grid_size=5, seed=0).to(dtype)
    with torch.no_grad():  # rough, non-polynomial splines
        for layer in kan.layers:
            layer.coef.normal_(generator=torch.Generator().manual_seed(3))
    x = _samples(300, dtype)
    y0 = kan(x)
    scale = y0.abs().max()
    tol = 1e-4 * scale if dtype == torch.float32 else 1e-9
    model = kan
    for g in (10, 20, 50):
        model = model.extend_grid(g, x)
        assert model.grid_size == g and kan.grid_size == 5
        assert (model(x) - y0).abs().max() <= tol
    # exact everywhere, not only on the samples: beyond the grid the linear continuation's
    # slope carries the rounding of the fit, amplified by the distance (hence 100 x)
    x_new = _samples(300, dtype, seed=9) * 1.3
    assert (model(x_new) - kan(x_new)).abs().max() <= 100 * tol


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_update_grid_preserves_function(dtype) -> None:
    kan = _polynomial_kan(dtype)
    x = _samples(200, dtype) ** 3  # concentrated samples: a clearly non-uniform grid
    y0 = kan(x)
    tol = 1e-4 * y0.abs().max() if dtype == torch.float32 else 1e-9
    model = kan
    for g in (5, 10, 20, 50):
        model = model if g == 5 else model.extend_grid(g, x)
        before = model.layers[0].grid.clone()
        model.update_grid(x)
        assert not torch.allclose(model.layers[0].grid, before)
        assert (model(x) - y0).abs().max() <= tol


def test_update_grid_general_spline_is_close_and_finite() -> None:
    kan = KAN(width=[2, 2, 1], grid_size=10, seed=0).double()
    x = _samples(500, torch.float64)
    y0 = kan(x)
    kan.update_grid(x)
    err = (kan(x) - y0).abs().max()
    assert torch.isfinite(err) and err < 1e-2 * y0.abs().max()
    # rank-deficient samples (all equal, or fewer than coefficients) never give NaN
    kan.update_grid(torch.zeros(7, 2, dtype=torch.float64))
    kan.update_grid(_samples(3, torch.float64))
    fine = kan.extend_grid(20, torch.ones(2, 2, dtype=torch.float64))
    assert torch.isfinite(fine(x)).all()


def test_update_grid_range_follows_samples() -> None:
    kan = KAN(width=[1, 1], grid_size=5)
    x = torch.linspace(-3, 2, 101).unsqueeze(1)
    kan.update_grid(x)
    assert torch.allclose(kan.layers[0].input_range(), torch.tensor([[-3.0, 2.0]]))


def test_outside_grid_spline_continues_linearly_and_base_continues() -> None:
    kan = KAN(width=[1, 1], grid_size=5, seed=0)
    layer = kan.layers[0]
    x = torch.tensor([[1.0], [2.0], [3.0], [-1.0], [-4.0], [-7.0]])
    spline = layer.spline(x)[:, 0, 0]
    # beyond each end the spline follows its tangent: equal steps give equal increments
    assert torch.allclose(spline[2] - spline[1], spline[1] - spline[0], atol=1e-5)
    assert torch.allclose(spline[5] - spline[4], spline[4] - spline[3], atol=1e-5)
    phi = layer.edge_activations(x)[:, 0, 0]
    silu = torch.nn.functional.silu(x[:, 0])
    expect = layer.scale_sp[0, 0] * spline + layer.scale_base[0, 0] * silu
    assert torch.allclose(phi, expect)
    assert torch.allclose(kan(x)[:, 0], phi + layer.bias, atol=1e-6)
    # and the fast path's gradient outside is the tangent's slope plus the base term's
    xx = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(kan(xx).sum(), xx)
    (g_ref,) = torch.autograd.grad(layer.forward_dense(xx).sum(), xx)
    assert torch.allclose(g, g_ref, atol=1e-5)


def test_edge_activations_sum_to_forward() -> None:
    kan = KAN(width=[3, 4, 2], grid_size=6, seed=0)
    x = torch.randn(50, 3)
    acts = kan.edge_activations(x)
    assert [a.shape for a in acts] == [(50, 4, 3), (50, 2, 4)]
    h = x
    for layer, phi in zip(kan.layers, acts):
        h = layer(h)
        assert torch.allclose(phi.sum(-1) + layer.bias, h, atol=1e-5)


def test_config_round_trip_keeps_adapted_grid(tmp_path) -> None:
    kan = KAN(width=[2, 3, 1], grid_size=5, seed=0)
    x = _samples(200, torch.float32)
    kan.update_grid(x)
    fine = kan.extend_grid(10, x)
    ckpt = {"model_config": fine.config(), "state_dict": fine.state_dict()}
    torch.save(ckpt, tmp_path / "model.pt")
    loaded = torch.load(tmp_path / "model.pt")
    rebuilt = build_model(loaded["model_config"])
    rebuilt.load_state_dict(loaded["state_dict"])
    assert rebuilt.grid_size == 10
    torch.testing.assert_close(rebuilt(x), fine(x), rtol=0, atol=1e-6)  # same up to rounding


def test_seed_is_private_and_reproducible() -> None:
    state = torch.get_rng_state()
    a, b = KAN(width=[2, 3, 1], seed=5), KAN(width=[2, 3, 1], seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    gen = torch.Generator().manual_seed(5)
    c = KAN(width=[2, 3, 1], generator=gen)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


def test_deepcopy_and_pickle_after_forward() -> None:
    kan = KAN(width=[2, 3, 1], seed=0)
    x = torch.rand(10, 2)
    kan(x).sum().backward()
    for clone in (copy.deepcopy(kan), pickle.loads(pickle.dumps(kan))):
        assert torch.equal(clone(x), kan(x))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"grid_size": 0}, "grid_size"),
        ({"spline_order": 0}, "spline_order"),
        ({"width": [3]}, "width"),
        ({"width": [2, 0, 1]}, "width"),
        ({"grid_range": (1.0, -1.0)}, "grid_range"),
        ({"grid_range": (1.0, 1.0)}, "grid_range"),
        ({"grid_eps": 2.0}, "grid_eps"),
        ({"base_activation": "swish42"}, "activation"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, name) -> None:
    args = {"width": [2, 1, 1], **kwargs}
    with pytest.raises(ValueError, match=name):
        KAN(**args)
    with pytest.raises(ValueError, match=name):
        build_model({"kind": "kan", **args})


def test_bad_input_shape() -> None:
    with pytest.raises(ValueError, match="batch, 2"):
        KAN(width=[2, 1])(torch.zeros(3, 3))


@pytest.mark.parametrize("kernel", ["auto", "torch"])
def test_layer_paths_agree_and_cached_plan_follows_the_grid(kernel, monkeypatch) -> None:
    """``layer(x)`` (compiled kernels under ``auto``, the compact path for this small layer
    under ``torch``) agrees with the other paths while the grid changes in place and is
    replaced: the per-grid plan both use is cached and must follow."""
    monkeypatch.setenv("KANPLATFORM_KERNEL", kernel)
    torch.manual_seed(0)
    layer = KANLayer(2, 3, grid_size=5).double()
    x = torch.rand(200, 2, dtype=torch.float64) * 3 - 1.5  # inside and outside the grid
    for _ in range(2):  # uniform grid, then adapted in place (the cached plan must follow)
        y = layer(x)
        torch.testing.assert_close(y, layer.forward_fast(x), rtol=0, atol=1e-12)
        torch.testing.assert_close(y, layer.forward_dense(x), rtol=0, atol=1e-12)
        layer.update_grid(x[:100] * 0.7)
    layer.set_grid_size(8, x)  # a new grid tensor
    torch.testing.assert_close(layer(x), layer.forward_dense(x), rtol=0, atol=1e-12)
