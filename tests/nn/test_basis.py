"""B-spline bases: partition of unity, non-negativity, agreement with scipy, local == dense."""

import numpy as np
import pytest
import torch
from scipy.interpolate import BSpline

from kanplatform.nn.basis import (
    bspline_basis,
    bspline_local,
    extend_knots,
    uniform_grid,
)


def _grids(k: int, g: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(k * 100 + g)
    uniform = uniform_grid(3, g, k, (-1.0, 2.0), dtype=torch.float64)
    gaps = torch.rand(3, g, generator=gen, dtype=torch.float64) + 0.05
    inner = torch.cat([torch.zeros(3, 1, dtype=torch.float64), gaps.cumsum(1)], 1) - 0.7
    return {"uniform": uniform, "non_uniform": extend_knots(inner, k)}


def _points(grid: torch.Tensor, k: int, n: int = 257) -> torch.Tensor:
    g = grid.shape[1] - 2 * k - 1
    lo, hi = grid[:, k], grid[:, g + k]
    frac = torch.linspace(0, 1, n, dtype=grid.dtype).unsqueeze(1)
    return lo + frac * (hi - lo)  # (n, in), both ends included


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("kind", ["uniform", "non_uniform"])
def test_partition_of_unity_and_non_negative(k: int, kind: str) -> None:
    grid = _grids(k, 6)[kind]
    b = bspline_basis(_points(grid, k), grid, k)
    assert b.shape == (257, 3, 6 + k)
    assert torch.allclose(b.sum(-1), torch.ones(257, 3, dtype=torch.float64), atol=1e-12)
    assert (b >= 0).all()


@pytest.mark.parametrize("k", [1, 2, 3, 5])
@pytest.mark.parametrize("kind", ["uniform", "non_uniform"])
def test_matches_scipy_bspline(k: int, kind: str) -> None:
    grid = _grids(k, 7)[kind]
    x = _points(grid, k)
    b = bspline_basis(x, grid, k)
    for i in range(grid.shape[0]):
        ref = BSpline.design_matrix(x[:, i].numpy(), grid[i].numpy(), k).toarray()
        np.testing.assert_allclose(b[:, i].numpy(), ref, atol=1e-6, rtol=0)
        assert np.abs(b[:, i].numpy() - ref).max() < 1e-12


@pytest.mark.parametrize("k", [1, 2, 3, 5])
@pytest.mark.parametrize("kind", ["uniform", "non_uniform"])
def test_local_equals_dense_and_derivative(k: int, kind: str) -> None:
    grid = _grids(k, 5)[kind]
    x = _points(grid, k, 101)
    j, vals, ders = bspline_local(x, grid, k, derivative=True)
    cols = j.unsqueeze(-1) + torch.arange(k + 1)
    dense = torch.zeros(101, 3, 5 + k, dtype=torch.float64).scatter(2, cols, vals)
    assert torch.allclose(dense, bspline_basis(x, grid, k), atol=1e-12)
    # derivative against autograd of the dense recursion (interior points)
    xx = x[1:-1].clone().requires_grad_()
    w = torch.randn(99, 3, 5 + k, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    (gx,) = torch.autograd.grad((bspline_basis(xx, grid, k) * w).sum(), xx)
    dd = torch.zeros(101, 3, 5 + k, dtype=torch.float64).scatter(2, cols, ders)
    assert torch.allclose((dd[1:-1] * w).sum(-1), gx, atol=1e-9)


def test_outside_grid_continues_linearly() -> None:
    grid = uniform_grid(1, 4, 3, (-1.0, 1.0), dtype=torch.float64)
    x = torch.tensor([[1.0], [2.0], [3.0], [-1.0], [-2.5], [-4.0]], dtype=torch.float64)
    b = bspline_basis(x, grid, 3)
    assert torch.allclose(b[2] - b[0], 2 * (b[1] - b[0]), atol=1e-12)  # linear beyond hi
    assert torch.allclose(b[5] - b[3], 2 * (b[4] - b[3]), atol=1e-12)  # linear below lo
    assert torch.allclose(b.sum(-1), torch.ones(6, 1, dtype=torch.float64))
    # the slope outside equals the one-sided derivative at the end (C1 continuation)
    e = torch.tensor([[1.0 - 1e-6], [-1.0 + 1e-6]], dtype=torch.float64)
    inside = (bspline_basis(e, grid, 3) - b[[0, 3]]) / (e - x[[0, 3]]).unsqueeze(-1)
    outside = (b[[1, 4]] - b[[0, 3]]) / (x[[1, 4]] - x[[0, 3]]).unsqueeze(-1)
    assert torch.allclose(inside, outside, atol=1e-4)
    # the local evaluation clamps, with zero derivative outside
    _, vals, ders = bspline_local(x, grid, 3, derivative=True)
    assert torch.equal(vals[1], vals[0]) and (ders[1] == 0).all()
