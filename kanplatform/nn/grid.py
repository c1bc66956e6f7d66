"""Grid adaptation and refinement: new knots, and coefficients refitted by least squares.

All fits solve the normal equations of a batched (one problem per input) least-squares
problem in float64 with a tiny relative ridge, so rank-deficient samples (empty intervals,
repeated points) give finite coefficients instead of NaN. The normal equations are built
from the ``k + 1`` non-zero basis functions at each point (banded Gram matrices), a chunk of
points at a time, so no dense ``(samples, in, G + k)`` basis and no ``(samples, in, out)``
tensor is built.
"""

from __future__ import annotations

import torch

from kanplatform.nn.basis import extend_knots, grid_size_of

__all__ = ["adaptive_grid", "refine_grid", "refit_coef"]

_CHUNK_ELEMENTS = 1 << 22  # scattered products per chunk of points


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


def _local_basis(
    xt: torch.Tensor, grid: torch.Tensor, spline_order: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k + 1`` non-zero values of :func:`bspline_basis` at ``xt`` and the first's index.

    De Boor's triangular scheme (as :func:`bspline_local`) at the points clamped to the
    grid's range, plus the tangent continuation outside it, ``B(e) + B'(e) (x - e)``, exactly
    as :func:`bspline_basis` continues (the basis functions with a non-zero slope at an end
    are those of its end interval). Works input-major, so every step is a contiguous
    ``(in, n)`` operation.

    Args:
        xt: points, input-major ``(in, n)``.
        grid: knots ``(in, G + 2k + 1)``.
        spline_order: ``k``.

    Returns:
        ``(j, values)``: the interval (= first non-zero basis) index ``(in, n)`` (int64) and
        the basis values ``(k + 1, in, n)``.
    """
    k = spline_order
    n_in, n_knots = grid.shape
    g = n_knots - 2 * k - 1
    lo, hi = grid[:, k : k + 1], grid[:, g + k : g + k + 1]
    xc = torch.minimum(torch.maximum(xt, lo), hi)
    if g > 1:
        j = torch.searchsorted(grid[:, k + 1 : g + k].contiguous(), xc, right=True)
    else:
        j = torch.zeros(xt.shape, dtype=torch.long, device=xt.device)
    if k == 0:
        return j, torch.ones_like(xt).unsqueeze(0)
    # local knots t_{J-k+1} .. t_{J+k} with J = j + k: (I, 2k, n)
    offs = torch.arange(1, 2 * k + 1, device=xt.device).view(1, -1, 1)
    t = grid.gather(1, (j.unsqueeze(1) + offs).view(n_in, -1)).view(n_in, 2 * k, -1)
    left = [xc - t[:, k - d] for d in range(1, k + 1)]  # x - t_{J+1-d}, d = 1..k
    right = [t[:, k - 1 + d] - xc for d in range(1, k + 1)]  # t_{J+d} - x
    n = [torch.ones_like(xc)]
    temps: list[torch.Tensor] = []
    for d in range(1, k + 1):
        saved = None
        new = []
        temps = []
        for r in range(d):
            temp = n[r] / (right[r] + left[d - r - 1])
            temps.append(temp)
            term = right[r] * temp
            new.append(term if saved is None else saved + term)
            saved = left[d - r - 1] * temp
        new.append(saved)
        n = new
    step = xt - xc
    if bool((step != 0).any()):  # points outside the grid: continue along the tangent
        # d/dx B_{r,k} = k (B_{r,k-1} / (t_{r+k} - t_r) - B_{r+1,k-1} / (t_{r+k+1} - t_{r+1}))
        kstep = k * step
        n = [
            b + kstep * ((temps[r - 1] if r > 0 else 0) - (temps[r] if r < k else 0))
            for r, b in zip(range(k + 1), n)
        ]
    return j, torch.stack(n)


def _rhs_via_cross_gram(n: int, p: int, n_new: int, n_old: int, n_out: int) -> bool:
    """Whether the right-hand side is cheaper as ``(B_new^T B_old) @ coef`` than per point.

    Per input: the cross Gram matrix costs ``p^2`` scattered products per point plus a dense
    ``(n_new, n_old) @ (n_old, out)`` product (and its memory); the per-point route gathers
    the old spline's ``out`` values at each point and scatters ``p * out`` products.
    """
    return n * p * p + n_new * n_old * n_out < 2 * n * p * n_out


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
    Both splines are evaluated as the forward pass does (linear continuation outside a grid).

    The normal equations are assembled from the ``k + 1`` non-zero basis functions at each
    point (:func:`_local_basis`): the banded Gram matrix ``B_new^T B_new`` by scatter-adding
    ``(k + 1)^2`` products per point, the right-hand side either the same way from
    ``B_new^T B_old`` or from the old splines' values at the points, whichever is cheaper
    (:func:`_rhs_via_cross_gram`). No dense ``(n, in, G + k)`` basis is built; the result is
    that of the dense formulation up to rounding (``tests/nn/test_grid.py`` keeps it as the
    reference). On CUDA the scatter-adds are atomic, so their summation order (rounding
    only) varies unless deterministic algorithms are on, as they are in training.

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
    p = k + 1
    xt = x.detach().to(torch.float64).t().contiguous()  # (I, n)
    og = old_grid.detach().to(torch.float64)
    ng = new_grid.detach().to(torch.float64)
    coef = old_coef.detach().to(torch.float64)
    n_in, n_old, n_out = coef.shape
    n_new = ng.shape[1] - k - 1
    via_cross = _rhs_via_cross_gram(xt.shape[1], p, n_new, n_old, n_out)
    dev = xt.device
    rows = torch.arange(n_in, device=dev).unsqueeze(-1) * n_new  # (I, 1): each input's block
    r = torch.arange(p, device=dev)
    gram_offs = (r.view(-1, 1) * n_new + r).view(p, p, 1, 1)  # entry (j + r, j + s)
    ata = xt.new_zeros(n_in * n_new * n_new)
    if via_cross:
        atb = xt.new_zeros(n_in * n_new * n_old)
        cross_offs = (r.view(-1, 1) * n_old + r).view(p, p, 1, 1)
    else:
        rhs = xt.new_zeros(n_in * n_new, n_out)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, n_in * p * max(p, n_out)))
    for xc in torch.split(xt, chunk, dim=1):
        jn, bn = _local_basis(xc, ng, k)  # (I, c), (p, I, c)
        jo, bo = _local_basis(xc, og, k)
        row = rows + jn  # (I, c): row of the first non-zero basis in the stacked systems
        ata.index_add_(0, (row * n_new + jn + gram_offs).view(-1),
                       (bn.unsqueeze(1) * bn.unsqueeze(0)).view(-1))
        if via_cross:
            atb.index_add_(0, (row * n_old + jo + cross_offs).view(-1),
                           (bn.unsqueeze(1) * bo.unsqueeze(0)).view(-1))
            continue
        # old splines at the points, (I, c, out), then scattered onto the new bases' rows
        idx = (jo.unsqueeze(-1) + r).view(n_in, -1, 1).expand(-1, -1, n_out)  # (I, c*p, O)
        old = coef.gather(1, idx).view(n_in, -1, p, n_out)  # (I, c, p, O)
        y = torch.einsum("pic,icpo->ico", bo, old)
        for q in range(p):
            rhs.index_add_(0, (row + q).view(-1), (bn[q].unsqueeze(-1) * y).view(-1, n_out))
    ata = ata.view(n_in, n_new, n_new)
    if via_cross:
        rhs = atb.view(n_in, n_new, n_old) @ coef  # (I, G'+k, out)
    else:
        rhs = rhs.view(n_in, n_new, n_out)
    diag = ata.diagonal(dim1=-2, dim2=-1)
    lam = ridge * diag.mean(-1, keepdim=True) + 1e-300  # (I, 1)
    ata = ata + torch.diag_embed(lam.expand_as(diag))
    coef = torch.linalg.solve(ata, rhs)
    return coef.to(old_coef.dtype).contiguous()
