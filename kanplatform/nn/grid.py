"""Grid adaptation and refinement: new knots, and coefficients refitted by least squares.

All fits solve the normal equations of a batched (one problem per input) least-squares
problem in float64 with a tiny relative ridge, so rank-deficient samples (empty intervals,
repeated points) give finite coefficients instead of NaN. The right-hand side is formed in
coefficient space (``B_new^T B_old @ coef``), so no ``(samples, in, out)`` tensor is built.
"""

from __future__ import annotations

import torch

from kanplatform.nn.basis import bspline_basis, extend_knots, grid_size_of

__all__ = ["adaptive_grid", "refine_grid", "refit_coef"]

_CHUNK_ELEMENTS = 1 << 22  # dense basis elements evaluated at a time


def adaptive_grid(
    x: torch.Tensor, grid_size: int, spline_order: int, grid_eps: float = 0.02
) -> torch.Tensor:
    """pykan's sample-adaptive grid: ``grid_eps * uniform + (1 - grid_eps) * quantiles``.

    Args:
        x: samples ``(n, in)``.
        grid_size: number of intervals ``G``.
        spline_order: ``k``; the inner knots are extended by ``k`` knots each side.
        grid_eps: weight of the uniform grid on ``[min x, max x]`` (1 = uniform, 0 = quantiles).

    Returns:
        Knots ``(in, G + 2k + 1)``. Inputs whose samples span (almost) nothing get a unit-width
        grid centred on them, so the knots are always strictly increasing.
    """
    xs = torch.sort(x.detach(), dim=0).values  # (n, I)
    n = xs.shape[0]
    ids = [int(n / grid_size * i) for i in range(grid_size)] + [n - 1]
    quant = xs[ids].t()  # (I, G + 1)
    lo, hi = quant[:, :1], quant[:, -1:]
    width = hi - lo
    tiny = (width <= 1e-6 * (1 + lo.abs())).to(x.dtype)
    lo = lo - 0.5 * tiny
    hi = hi + 0.5 * tiny
    frac = torch.linspace(0, 1, grid_size + 1, dtype=x.dtype, device=x.device)
    uniform = lo + (hi - lo) * frac  # (I, G + 1)
    eps = max(float(grid_eps), 1e-6)  # a sliver of uniform keeps repeated quantiles apart
    inner = eps * uniform + (1 - eps) * quant
    inner = tiny * uniform + (1 - tiny) * inner
    return extend_knots(inner, spline_order)


def refine_grid(grid: torch.Tensor, spline_order: int, new_grid_size: int) -> torch.Tensor:
    """Knots for ``new_grid_size`` intervals interpolated from ``grid``, keeping its density.

    For ``new_grid_size >= G`` the new inner knots contain every old inner knot (each old
    interval is split uniformly into ``floor`` or ``ceil`` of ``G'/G`` parts), so every spline
    on the old grid is exactly representable on the new one. For ``new_grid_size < G`` the
    knot positions are linearly interpolated in knot index (an approximation).

    Returns:
        Knots ``(in, new_grid_size + 2k + 1)``.
    """
    k = spline_order
    g = grid_size_of(grid, k)
    inner = grid[:, k : g + k + 1]  # (I, G + 1)
    if new_grid_size >= g:
        q_list, f_list = [], []
        for q in range(g):
            parts = (q + 1) * new_grid_size // g - q * new_grid_size // g
            q_list += [q] * parts
            f_list += [s / parts for s in range(parts)]
        q_list.append(g - 1)
        f_list.append(1.0)
    else:
        pos = [p * g / new_grid_size for p in range(new_grid_size + 1)]
        q_list = [min(int(u), g - 1) for u in pos]
        f_list = [u - q for u, q in zip(pos, q_list)]
    q = torch.tensor(q_list, device=grid.device)
    f = torch.tensor(f_list, dtype=grid.dtype, device=grid.device)
    new_inner = inner[:, q] + f * (inner[:, q + 1] - inner[:, q])
    return extend_knots(new_inner, k)


def interval_points(grid: torch.Tensor, spline_order: int, per_interval: int) -> torch.Tensor:
    """``per_interval`` points inside every inner interval plus the inner knots: ``(n, in)``."""
    k = spline_order
    g = grid_size_of(grid, k)
    inner = grid[:, k : g + k + 1]  # (I, G + 1)
    frac = torch.arange(1, per_interval + 1, dtype=grid.dtype, device=grid.device)
    frac = frac / (per_interval + 1)
    pts = inner[:, :-1, None] + frac * (inner[:, 1:, None] - inner[:, :-1, None])  # (I, G, p)
    return torch.cat([pts.reshape(grid.shape[0], -1), inner], dim=1).t()


def refit_coef(
    x: torch.Tensor,
    old_grid: torch.Tensor,
    old_coef: torch.Tensor,
    new_grid: torch.Tensor,
    spline_order: int,
    ridge: float = 1e-12,
) -> torch.Tensor:
    """Coefficients on ``new_grid`` whose splines best match the old ones at ``x``.

    Solves, per input ``i``, ``min_c sum_n |B_new(x_ni) c - B_old(x_ni) coef_i|^2
    + lam |c|^2`` with ``lam = ridge * mean(diag(B_new^T B_new))`` (plus a floor), in float64.
    Points are clamped to each grid's range, as in the forward pass.

    Args:
        x: fit points ``(n, in)``.
        old_grid: ``(in, G + 2k + 1)``; old_coef: ``(in, G + k, out)``.
        new_grid: ``(in, G' + 2k + 1)``.
        spline_order: ``k``.
        ridge: relative ridge weight.

    Returns:
        New coefficients ``(in, G' + k, out)`` in ``old_coef``'s dtype.
    """
    k = spline_order
    xd = x.detach().to(torch.float64)
    og, ng = old_grid.to(torch.float64), new_grid.to(torch.float64)
    n_in = xd.shape[1]
    n_new = ng.shape[1] - k - 1
    n_old = og.shape[1] - k - 1
    ata = xd.new_zeros(n_in, n_new, n_new)
    atb = xd.new_zeros(n_in, n_new, n_old)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, n_in * (n_new + n_old)))
    for xc in torch.split(xd, chunk):
        bn = bspline_basis(xc, ng, k)  # (c, I, G'+k)
        bo = bspline_basis(xc, og, k)  # (c, I, G+k)
        ata += torch.einsum("nim,nil->iml", bn, bn)
        atb += torch.einsum("nim,nil->iml", bn, bo)
    rhs = atb @ old_coef.detach().to(torch.float64)  # (I, G'+k, out)
    diag = ata.diagonal(dim1=-2, dim2=-1)
    lam = ridge * diag.mean(-1, keepdim=True) + 1e-300  # (I, 1)
    ata = ata + torch.diag_embed(lam.expand_as(diag))
    coef = torch.linalg.solve(ata, rhs)
    return coef.to(old_coef.dtype).contiguous()
