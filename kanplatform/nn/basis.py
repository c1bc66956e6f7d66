"""B-spline bases on per-input (possibly non-uniform) knot vectors.

A grid of ``G`` intervals and spline order ``k`` is stored as a knot tensor of shape
``(in_features, G + 2k + 1)``: the ``G + 1`` inner knots (the grid proper) extended by ``k``
knots on each side. It carries ``G + k`` basis functions per input. Everything here is
device- and dtype-agnostic and never reads a global random state.

Two evaluations are provided:

* :func:`bspline_basis` - every basis function (dense, Cox-de Boor), shape ``(batch, in, G+k)``.
  The reference formulation; used for least-squares fits, plots and tests.
* :func:`bspline_local` - only the ``k + 1`` non-zero basis functions at each point, with the
  index of the first one (de Boor's triangular scheme). The fast path in
  :mod:`kanplatform.nn.functional` derives its per-interval polynomials from it.

Outside the grid's inner range ``[t_k, t_{G+k}]`` :func:`bspline_basis` continues every basis
function (hence every spline) linearly along its tangent at the nearest end (see
:class:`kanplatform.nn.KANLayer`); :func:`bspline_local` clamps ``x`` to the range.
"""

from __future__ import annotations

import torch

__all__ = [
    "bspline_basis",
    "bspline_local",
    "clamp_to_grid",
    "extend_knots",
    "grid_size_of",
    "uniform_grid",
]


def uniform_grid(
    in_features: int,
    grid_size: int,
    spline_order: int,
    grid_range: tuple[float, float] = (-1.0, 1.0),
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Uniform knots on ``grid_range``, extended by ``spline_order`` knots on each side.

    Returns:
        Knots of shape ``(in_features, grid_size + 2 * spline_order + 1)``.

    Example:
        >>> uniform_grid(1, 2, 1, (0.0, 1.0))
        tensor([[-0.5000,  0.0000,  0.5000,  1.0000,  1.5000]])
    """
    lo, hi = float(grid_range[0]), float(grid_range[1])
    h = (hi - lo) / grid_size
    steps = torch.arange(-spline_order, grid_size + spline_order + 1, dtype=torch.float64)
    knots = (lo + h * steps).to(dtype=dtype or torch.get_default_dtype(), device=device)
    return knots.unsqueeze(0).repeat(in_features, 1)


def extend_knots(inner: torch.Tensor, spline_order: int) -> torch.Tensor:
    """Extend inner knots ``(in, G + 1)`` by ``spline_order`` knots each side.

    The extension uses the mean inner spacing ``(t_G - t_0) / G`` (as pykan does), so it never
    collapses when the boundary interval is tiny.
    """
    g = inner.shape[1] - 1
    h = (inner[:, -1:] - inner[:, :1]) / g  # (in, 1)
    steps = torch.arange(1, spline_order + 1, dtype=inner.dtype, device=inner.device)
    left = inner[:, :1] - h * steps.flip(0)
    right = inner[:, -1:] + h * steps
    return torch.cat([left, inner, right], dim=1)


def grid_size_of(grid: torch.Tensor, spline_order: int) -> int:
    """Number of grid intervals ``G`` of a knot tensor ``(in, G + 2k + 1)``."""
    return grid.shape[-1] - 2 * spline_order - 1


def clamp_to_grid(x: torch.Tensor, grid: torch.Tensor, spline_order: int) -> torch.Tensor:
    """Clamp ``x: (batch, in)`` to each input's inner grid range ``[t_k, t_{G+k}]``."""
    g = grid_size_of(grid, spline_order)
    lo = grid[:, spline_order]
    hi = grid[:, g + spline_order]
    return torch.minimum(torch.maximum(x, lo), hi)


def bspline_basis(x: torch.Tensor, grid: torch.Tensor, spline_order: int) -> torch.Tensor:
    """All ``G + k`` B-spline basis functions at ``x`` (Cox-de Boor recursion, dense).

    Inside the grid's inner range ``[t_k, t_{G+k}]`` these are the usual B-splines (the last
    inner interval closed on the right, so they sum to one on the whole closed range). Outside
    it every basis function continues along its tangent at the nearest end,
    ``B(x) = B(e) + B'(e) (x - e)``, so every spline continues linearly (value and slope kept).

    Args:
        x: points, ``(batch, in)``.
        grid: knots, ``(in, G + 2k + 1)``, strictly increasing along the last axis.
        spline_order: ``k >= 0``.

    Returns:
        Basis values ``(batch, in, G + k)``; differentiable w.r.t. ``x``.
    """
    k = spline_order
    g = grid_size_of(grid, k)
    xc = clamp_to_grid(x, grid, k).unsqueeze(-1)  # (B, I, 1)
    t = grid.unsqueeze(0)  # (1, I, K)
    upper = torch.cat(  # the last inner interval is closed on the right: covers x == t_{G+k}
        [xc < t[..., 1 : g + k], xc <= t[..., g + k : g + k + 1], t[..., g + k + 1 :] < xc], -1
    )
    b = ((xc >= t[..., :-1]) & upper).to(x.dtype)  # (B, I, G + 2k)
    prev = b
    for d in range(1, k + 1):
        prev = b
        left = (xc - t[..., : -(d + 1)]) / (t[..., d:-1] - t[..., : -(d + 1)])
        right = (t[..., d + 1 :] - xc) / (t[..., d + 1 :] - t[..., 1:-d])
        b = left * prev[..., :-1] + right * prev[..., 1:]
    if k == 0:
        return b
    # d/dx B_{m,k} = k (B_{m,k-1} / (t_{m+k} - t_m) - B_{m+1,k-1} / (t_{m+k+1} - t_{m+1}))
    deriv = k * (
        prev[..., :-1] / (t[..., k:-1] - t[..., : -(k + 1)])
        - prev[..., 1:] / (t[..., k + 1 :] - t[..., 1:-k])
    )
    return b + deriv * (x.unsqueeze(-1) - xc)


def bspline_local(
    x: torch.Tensor, grid: torch.Tensor, spline_order: int, *, derivative: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The ``k + 1`` non-zero basis functions at each point (de Boor's triangular scheme).

    At a point in inner interval ``j`` (``0 <= j < G``) the non-zero basis functions are
    ``B_j .. B_{j+k}`` (indices into the ``G + k`` functions of its input).

    Args:
        x: points, ``(batch, in)``; clamped to the inner grid range.
        grid: knots, ``(in, G + 2k + 1)``, strictly increasing.
        spline_order: ``k >= 0``.
        derivative: also return ``d B / d x`` of the clamped evaluation (zero outside the grid).

    Returns:
        ``(j, values, derivatives)``: interval index ``(batch, in)`` (int64), basis values
        ``(batch, in, k + 1)``, and their derivatives ``(batch, in, k + 1)`` or ``None``.
        Not differentiable (the fast path differentiates by hand).
    """
    k = spline_order
    n_in, n_knots = grid.shape
    g = n_knots - 2 * k - 1
    with torch.no_grad():
        lo = grid[:, k]
        hi = grid[:, g + k]
        xc = torch.minimum(torch.maximum(x, lo), hi)  # (B, I)
        if g > 1:
            inner = grid[:, k + 1 : g + k].contiguous()  # (I, G - 1) interior knots
            j = torch.searchsorted(inner, xc.t().contiguous(), right=True).t()  # (B, I)
        else:
            j = torch.zeros(x.shape, dtype=torch.long, device=x.device)
        if k == 0:
            vals = torch.ones_like(x).unsqueeze(-1)
            ders = torch.zeros_like(vals) if derivative else None
            return j, vals, ders
        # local knots t_{J-k+1} .. t_{J+k} with J = j + k, laid out (2k, B, I)
        offs = torch.arange(1, 2 * k + 1, device=x.device).view(-1, 1, 1)
        base = (torch.arange(n_in, device=x.device) * n_knots).view(1, 1, -1)
        t = grid.reshape(-1)[j.unsqueeze(0) + offs + base]  # (2k, B, I)
        left = [None] + [xc - t[k - d] for d in range(1, k + 1)]  # x - t_{J+1-d}
        right = [None] + [t[k - 1 + d] - xc for d in range(1, k + 1)]  # t_{J+d} - x
        n = [torch.ones_like(xc)]
        temps: list[torch.Tensor] = []
        for d in range(1, k + 1):
            saved = torch.zeros_like(xc)
            new = []
            temps = []
            for r in range(d):
                temp = n[r] / (right[r + 1] + left[d - r])
                temps.append(temp)
                new.append(saved + right[r + 1] * temp)
                saved = left[d - r] * temp
            new.append(saved)
            n = new
        vals = torch.stack(n, dim=-1)  # (B, I, k+1)
        ders = None
        if derivative:
            # d/dx B_{r,k} = k (B_{r,k-1} / (t_{r+k}-t_r) - B_{r+1,k-1} / (t_{r+k+1}-t_{r+1}));
            # temps holds exactly those ratios from the last recursion step.
            z = torch.zeros_like(xc)
            tt = [z, *temps, z]
            ders = torch.stack([k * (tt[r] - tt[r + 1]) for r in range(k + 1)], dim=-1)
            inside = ((x >= lo) & (x <= hi)).to(x.dtype).unsqueeze(-1)
            ders = ders * inside
    return j, vals, ders
