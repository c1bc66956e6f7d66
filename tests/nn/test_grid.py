"""Grid refits: the banded (local-basis) normal equations equal the dense formulation."""

import pytest
import torch

from kanplatform.nn import grid as grid_mod
from kanplatform.nn.basis import bspline_basis, uniform_grid
from kanplatform.nn.grid import (
    _local_basis,
    _rhs_via_cross_gram,
    adaptive_grid,
    interval_points,
    refine_grid,
    refit_coef,
)


def _refit_dense(x, old_grid, old_coef, new_grid, k, ridge=1e-12):
    """The previous ``refit_coef``: dense Cox-de Boor design matrices, one chunk."""
    xd, og, ng = x.double(), old_grid.double(), new_grid.double()
    bn = bspline_basis(xd, ng, k)  # (n, I, G'+k)
    bo = bspline_basis(xd, og, k)  # (n, I, G+k)
    ata = torch.einsum("nim,nil->iml", bn, bn)
    rhs = torch.einsum("nim,nil->iml", bn, bo) @ old_coef.double()
    diag = ata.diagonal(dim1=-2, dim2=-1)
    lam = ridge * diag.mean(-1, keepdim=True) + 1e-300
    coef = torch.linalg.solve(ata + torch.diag_embed(lam.expand_as(diag)), rhs)
    return coef.to(old_coef.dtype)


def _spline(x, grid, coef, k):
    """Per-edge spline values ``(n, I, O)`` (dense basis, linear beyond the grid)."""
    return torch.einsum("nim,imo->nio", bspline_basis(x.double(), grid.double(), k),
                        coef.double())


def _case(kind: str, n_in: int, g_old: int, g_new: int, n_out: int, k: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(600, n_in, generator=gen, dtype=torch.float64) * 2 - 1) ** 3 * 1.2
    if kind == "uniform":
        old = uniform_grid(n_in, g_old, k, (-1.0, 1.0), dtype=torch.float64)
        new = uniform_grid(n_in, g_new, k, (-1.1, 0.9), dtype=torch.float64)
    else:  # adaptive: non-uniform knots, different per input
        old = adaptive_grid(torch.randn(300, n_in, generator=gen, dtype=torch.float64), g_old, k)
        new = adaptive_grid(x, g_new, k)
    coef = torch.randn(n_in, g_old + k, n_out, generator=gen, dtype=torch.float64)
    return x, old, coef, new


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_local_basis_equals_dense_basis_inside_and_outside(k) -> None:
    gen = torch.Generator().manual_seed(k)
    grid = adaptive_grid(torch.randn(200, 3, generator=gen, dtype=torch.float64), 7, k)
    x = torch.randn(400, 3, generator=gen, dtype=torch.float64) * 2  # many points beyond it
    x[:3] = grid[:, [k, k + 3, k + 7]].t()  # ends and an inner knot exactly
    j, vals = _local_basis(x.t().contiguous(), grid, k)  # (I, n), (k+1, I, n)
    local = torch.zeros(400, 3, 7 + k, dtype=torch.float64)
    local.scatter_(2, (j.t().unsqueeze(-1) + torch.arange(k + 1)), vals.permute(2, 1, 0))
    torch.testing.assert_close(local, bspline_basis(x, grid, k), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["uniform", "adaptive"])
@pytest.mark.parametrize(("n_in", "g_old", "g_new", "n_out", "k"), [
    (2, 5, 10, 1, 3),  # right-hand side from the old splines' values
    (1, 20, 50, 1, 3),
    (3, 7, 5, 8, 3),  # right-hand side from B_new^T B_old (many outputs)
    (2, 6, 9, 2, 2),
    (2, 6, 6, 4, 1),
    (2, 4, 8, 3, 0),
])
def test_refit_equals_dense_formulation(kind, n_in, g_old, g_new, n_out, k) -> None:
    x, old, coef, new = _case(kind, n_in, g_old, g_new, n_out, k)
    ref = _refit_dense(x, old, coef, new, k)
    got = refit_coef(x, old, coef, new, k)
    assert got.dtype == torch.float64 and got.shape == ref.shape
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-10 * ref.abs().max())


def test_both_right_hand_sides_and_chunks_agree(monkeypatch) -> None:
    x, old, coef, new = _case("adaptive", 3, 6, 12, 5, 3)
    assert not _rhs_via_cross_gram(600, 4, 15, 9, 1) and _rhs_via_cross_gram(600, 4, 15, 9, 5)
    ref = _refit_dense(x, old, coef, new, 3)
    per_point = torch.cat([refit_coef(x, old, coef[..., o : o + 1], new, 3) for o in range(5)],
                          dim=-1)
    tol = 1e-10 * ref.abs().max()
    torch.testing.assert_close(per_point, ref, rtol=0, atol=tol)
    monkeypatch.setattr(grid_mod, "_CHUNK_ELEMENTS", 1000)  # several chunks, a short tail
    torch.testing.assert_close(refit_coef(x, old, coef, new, 3), ref, rtol=0, atol=tol)
    torch.testing.assert_close(refit_coef(x, old, coef[..., :1], new, 3), ref[..., :1],
                               rtol=0, atol=tol)


def test_refit_for_grid_extension_equals_dense_and_is_exact() -> None:
    x, old, coef, _ = _case("adaptive", 2, 5, 5, 1, 3)
    new = refine_grid(old, 3, 20)
    pts = torch.cat([interval_points(new, 3, 4), x])
    got = refit_coef(pts, old, coef, new, 3)
    ref = _refit_dense(pts, old, coef, new, 3)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-10 * ref.abs().max())
    before = _spline(x, old, coef, 3)
    assert (_spline(x, new, got, 3) - before).abs().max() <= 1e-10 * before.abs().max()


def test_refit_float32_coefficients() -> None:
    x, old, coef, new = _case("adaptive", 2, 5, 8, 3, 3)
    got = refit_coef(x.float(), old.float(), coef.float(), new.float(), 3)
    ref = _refit_dense(x.float(), old.float(), coef.float(), new.float(), 3)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-5 * ref.abs().max())


@pytest.mark.parametrize("kind", ["uniform", "adaptive"])
def test_rank_deficient_samples_stay_finite_and_fit_the_samples(kind) -> None:
    _, old, coef, new = _case(kind, 2, 5, 10, 2, 3)
    k = 3
    lo, hi = new[:, k + 4], new[:, k + 5]  # every sample inside one interval of the new grid
    frac = torch.linspace(0.1, 0.9, 50, dtype=torch.float64).unsqueeze(1)
    for x in (lo + frac * (hi - lo), torch.zeros(7, 2, dtype=torch.float64), lo.view(1, -1)):
        got = refit_coef(x, old, coef, new, k)
        ref = _refit_dense(x, old, coef, new, k)
        assert torch.isfinite(got).all() and torch.isfinite(ref).all()
        # coefficients of bases without samples are set by the ridge (and rounding); the
        # spline on the samples is determined, and is the same least-squares fit in both
        target = _spline(x, old, coef, k)
        fit, fit_ref = _spline(x, new, got, k), _spline(x, new, ref, k)
        scale = target.abs().max()
        assert (fit - fit_ref).abs().max() <= 1e-9 * scale
        if x.unique(dim=0).shape[0] == 1:  # one distinct point: always fitted exactly
            assert (fit - target).abs().max() <= 1e-9 * scale
