"""The fast sparse path and the compact path equal the dense reference: outputs and every
gradient."""

from functools import partial

import pytest
import torch

from kanplatform.nn.basis import bspline_basis, uniform_grid
from kanplatform.nn.functional import (
    interval_polynomials,
    kan_linear,
    kan_linear_compact,
    kan_linear_dense,
)
from kanplatform.nn.grid import adaptive_grid

# the fast path on each backend (compiled C kernels, pure PyTorch) and the compact path
FAST_FNS = [
    pytest.param(partial(kan_linear, backend="c"), id="c"),
    pytest.param(partial(kan_linear, backend="torch"), id="torch"),
    pytest.param(kan_linear_compact, id="compact"),
]


def _case(dtype, k, g, adaptive, base=True, seed=0):
    gen = torch.Generator().manual_seed(seed)
    n_in, n_out, n = 4, 3, 120
    grid = uniform_grid(n_in, g, k, (-1.0, 1.0), dtype=dtype)
    if adaptive:
        grid = adaptive_grid(torch.randn(500, n_in, generator=gen, dtype=dtype) ** 3, g, k)
    x = (1.3 * torch.randn(n, n_in, generator=gen, dtype=dtype)).requires_grad_()
    coef = torch.randn(n_in, g + k, n_out, generator=gen, dtype=dtype).requires_grad_()
    sp = torch.randn(n_out, n_in, generator=gen, dtype=dtype).requires_grad_()
    sb = torch.randn(n_out, n_in, generator=gen, dtype=dtype).requires_grad_() if base else None
    w = torch.randn(n, n_out, generator=gen, dtype=dtype)
    return x, grid, coef, sp, sb, w


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("k", "g"), [(3, 5), (3, 50), (1, 1), (2, 7), (5, 3)])
@pytest.mark.parametrize("adaptive", [False, True])
@pytest.mark.parametrize("fast_fn", FAST_FNS)
def test_fast_equals_dense(dtype, k, g, adaptive, fast_fn) -> None:
    x, grid, coef, sp, sb, w = _case(dtype, k, g, adaptive)
    inputs = [t for t in (x, coef, sp, sb) if t is not None]
    results = []
    for fn in (fast_fn, kan_linear_dense):
        y = fn(x, grid, coef, sp, sb, k, "silu")
        results.append((y, *torch.autograd.grad((y * w).sum(), inputs)))
    for fast, dense in zip(*results):
        scale = dense.abs().max().clamp_min(1.0)
        assert (fast - dense).abs().max() <= 1e-5 * scale
        if dtype == torch.float64:
            assert (fast - dense).abs().max() <= 1e-11 * scale


@pytest.mark.parametrize("fast_fn", FAST_FNS)
def test_fast_equals_dense_without_base(fast_fn) -> None:
    x, grid, coef, sp, _, w = _case(torch.float64, 3, 5, False, base=False)
    y1 = fast_fn(x, grid, coef, sp, None, 3, None)
    y2 = kan_linear_dense(x, grid, coef, sp, None, 3, None)
    g1 = torch.autograd.grad((y1 * w).sum(), (x, coef, sp))
    g2 = torch.autograd.grad((y2 * w).sum(), (x, coef, sp))
    assert torch.allclose(y1, y2, atol=1e-12)
    assert all(torch.allclose(a, b, atol=1e-11) for a, b in zip(g1, g2))


@pytest.mark.parametrize("fast_fn", FAST_FNS)
def test_only_parameters_need_grad(fast_fn) -> None:
    x, grid, coef, sp, sb, w = _case(torch.float64, 3, 5, False)
    y = fast_fn(x.detach(), grid, coef, sp, sb, 3, "silu")
    (gc,) = torch.autograd.grad((y * w).sum(), coef)
    y2 = kan_linear_dense(x.detach(), grid, coef, sp, sb, 3, "silu")
    (gc2,) = torch.autograd.grad((y2 * w).sum(), coef)
    assert torch.allclose(gc, gc2, atol=1e-11)


@pytest.mark.parametrize("k", [1, 3, 4])
def test_interval_polynomials_reproduce_basis(k: int) -> None:
    grid = adaptive_grid(torch.randn(200, 2, dtype=torch.float64), 6, k)
    polys = interval_polynomials(grid, k)  # (I, G, r, p)
    inner = grid[:, k : 6 + k + 1]
    frac = torch.tensor([0.1, 0.5, 0.93], dtype=torch.float64)
    for j in range(6):
        x = (inner[:, j] + frac[:, None] * (inner[:, j + 1] - inner[:, j])).contiguous()
        sigma = 2 * frac - 1
        want = bspline_basis(x, grid, k)[:, :, j : j + k + 1]  # (3, I, r)
        got = (polys[:, j] * sigma[:, None, None, None] ** torch.arange(k + 1)).sum(-1)
        assert torch.allclose(got, want, atol=1e-12)
