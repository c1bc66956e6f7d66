"""The KAN layer's forward maps: the fast sparse path (compiled CPU kernels or pure PyTorch),
the compact path and the dense reference.

All compute, for ``x: (batch, in)``,

    y[b, o] = sum_i  wb[o, i] * act(x[b, i])  +  sum_i sum_m  B_m(x[b, i]) * W[i, m, o]

where ``W = coef * (scale_sp * mask)`` is the spline weight table ``(in, G + k, out)`` and
``wb = scale_base * mask``. None ever forms a ``(batch, in, out)`` per-edge tensor.

* :func:`kan_linear_dense` - the reference: full basis ``(batch, in * (G + k))`` @ table.
* :func:`kan_linear` - the fast path. Only ``k + 1`` of the ``G + k`` basis functions are
  non-zero at a point, and on each grid interval the spline is a degree-``k`` polynomial in the
  centred local coordinate ``sigma in [-1, 1]``. With per-interval monomial tables (``(k + 1)
  * in * G * out``, rebuilt from ``coef`` and the grid on every call) the spline sum is
  ``sum_p sum_i sigma_i^p C_p[i * G + j_i]``: ``batch * in * (k + 1) * out`` multiply-adds
  instead of ``batch * in * (G + k) * out``. Two backends compute it:

  - ``"c"``: the compiled CPU kernels of :mod:`kanplatform.kernels.ckernel` (``csrc/``: per input
    column, samples sorted by interval, table rows in SIMD registers; the default on CPU
    where a C compiler exists, faster than the PyTorch backend: see benchmarks/README.md);
  - ``"torch"``: pure PyTorch, any device: ``k + 1`` weighted row gather-sums
    (``embedding_bag``); the interval is a floor on uniform grids and a ``searchsorted``
    otherwise; the table gradient is a transposed gather-sum after one integer sort, the input
    gradient a sampled dense-dense product (``sampled_addmm``).

  Both are custom autograd functions that save only ``x`` (the memory kept for backward is
  that of ``nn.Linear``) and recompute the cheap per-point quantities in backward.
* :func:`kan_linear_compact` - the same per-interval polynomials with plain autograd ops on
  ``(k + 1, batch, in, out)`` gathers: a dozen small ops, so the cheapest PyTorch map for tiny
  layers (a few edges, ~1000 samples), where the PyTorch backend's per-op overhead (sort,
  sparse products) dominates. :func:`kanplatform.kernels.spline_backend` picks among the
  three for :class:`~kanplatform.nn.KANLayer`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from kanplatform.kernels import ckernel, clayer, compiled_supports, use_triton
from kanplatform.nn.basis import bspline_basis, bspline_local, grid_size_of

__all__ = [
    "ACTIVATIONS",
    "CompactLocal",
    "GridPlan",
    "compact_local",
    "get_activation",
    "grid_plan",
    "kan_linear",
    "kan_linear_compact",
    "kan_linear_dense",
]

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "silu": F.silu,
    "relu": F.relu,
    "gelu": F.gelu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "identity": lambda x: x,
}


def get_activation(name: str | None) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The activation called ``name`` (``None`` means no activation / no base term).

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    if name is None:
        return None
    if name not in ACTIVATIONS:
        raise ValueError(
            f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)} or None"
        )
    return ACTIVATIONS[name]


def _table(coef: torch.Tensor, scale_sp: torch.Tensor) -> torch.Tensor:
    """Spline weight table ``(in, G + k, out)`` from ``coef`` and ``scale_sp: (out, in)``
    (contiguous, so the row gathers see the same layout whatever ``coef``'s strides)."""
    return (coef * scale_sp.t().unsqueeze(1)).contiguous()


def kan_linear_dense(
    x: torch.Tensor,
    grid: torch.Tensor,
    coef: torch.Tensor,
    scale_sp: torch.Tensor,
    scale_base: torch.Tensor | None,
    spline_order: int,
    activation: str | None = "silu",
) -> torch.Tensor:
    """Reference KAN layer map: dense basis ``(batch, in*(G+k))`` @ table ``(in*(G+k), out)``.

    Args:
        x: ``(batch, in)``.
        grid: knots ``(in, G + 2k + 1)``.
        coef: spline coefficients ``(in, G + k, out)``.
        scale_sp: masked spline scales ``(out, in)``.
        scale_base: masked base scales ``(out, in)``, or ``None`` for no base term.
        spline_order: ``k``.
        activation: base activation name.

    Returns:
        ``(batch, out)``.
    """
    n_in, n_basis, n_out = coef.shape
    basis = bspline_basis(x, grid, spline_order).reshape(x.shape[0], n_in * n_basis)
    y = basis @ _table(coef, scale_sp).reshape(n_in * n_basis, n_out)  # (B, out)
    act = get_activation(activation)
    if act is not None and scale_base is not None:
        y = y + act(x) @ scale_base.t()
    return y


def interval_polynomials(grid: torch.Tensor, spline_order: int) -> torch.Tensor:
    """Monomial coefficients of the ``k + 1`` non-zero bases on every inner interval.

    On interval ``j`` of input ``i`` (width ``h``), with the centred local coordinate
    ``sigma = 2 (x - t_j) / h - 1`` in ``[-1, 1]``, ``B_{j+r}(x) = sum_p P[i, j, r, p] sigma^p``.
    Found by evaluating the bases at ``k + 1`` interior points and inverting the Vandermonde
    matrix, in float64.

    Returns:
        ``P: (in, G, k + 1, k + 1)`` in ``grid``'s dtype.
    """
    k = spline_order
    g = grid_size_of(grid, k)
    n_in = grid.shape[0]
    g64 = grid.detach().to(torch.float64)
    inner = g64[:, k : g + k + 1]  # (I, G + 1)
    sig = torch.cos(torch.pi * (torch.arange(k + 1, dtype=torch.float64) + 0.5) / (k + 1))
    sig = sig.to(grid.device)  # Chebyshev points in (-1, 1): interior, well conditioned
    frac = (sig + 1) / 2
    pts = inner[:, :-1, None] + frac * (inner[:, 1:, None] - inner[:, :-1, None])  # (I, G, k+1)
    _, vals, _ = bspline_local(pts.reshape(n_in, -1).t(), g64, k)  # (G*(k+1), I, k+1[r])
    vals = vals.view(g, k + 1, n_in, k + 1)  # (G, q, I, r)
    vander = sig.unsqueeze(1) ** torch.arange(k + 1, device=grid.device)  # (q, p)
    coef = torch.linalg.solve(vander, vals.permute(2, 0, 1, 3))  # (I, G, p, r)
    return coef.transpose(-1, -2).to(grid.dtype)  # (I, G, r, p)


def _poly_tables(coef: torch.Tensor, scale_sp: torch.Tensor, polys: torch.Tensor) -> torch.Tensor:
    """Per-interval monomial weights ``C[p, i * G + j, o] = sum_r P[i, j, r, p] W[i, j + r, o]``
    with ``W = coef * scale_sp``: ``(k + 1, in * G, out)``.

    Written as ``(k + 1)^2`` broadcast multiply-adds: a batched matmul of ``in * G`` tiny
    ``(k+1) x (k+1)`` matrices is several times slower on CPU.
    """
    n_in, n_basis, n_out = coef.shape
    g, kp1 = polys.shape[1], polys.shape[2]
    w = _table(coef, scale_sp)  # (I, G+k, out)
    out = w.new_zeros(kp1, n_in, g, n_out)
    for r in range(kp1):
        w_r = w[:, r : r + g]  # (I, G, out): W[i, j + r]
        for p in range(kp1):
            out[p].addcmul_(polys[:, :, r, p].unsqueeze(-1), w_r)
    return out.view(kp1, n_in * g, n_out)


def _untable_grad(grad_c: torch.Tensor, polys: torch.Tensor, n_basis: int) -> torch.Tensor:
    """Transpose of :func:`_poly_tables` w.r.t. ``W``: ``(in, G + k, out)``."""
    n_in, g, kp1, _ = polys.shape
    n_out = grad_c.shape[-1]
    gc = grad_c.view(kp1, n_in, g, n_out)
    out = grad_c.new_zeros(n_in, n_basis, n_out)
    for r in range(kp1):
        out_r = out[:, r : r + g]
        for p in range(kp1):
            out_r.addcmul_(polys[:, :, r, p].unsqueeze(-1), gc[p])
    return out


def _is_uniform(grid: torch.Tensor) -> bool:
    """Whether every input's full knot vector is evenly spaced (then all intervals share one
    set of local basis polynomials and the interval of ``x`` is a floor)."""
    span = grid[:, -1:] - grid[:, :1]
    lin = grid[:, :1] + span * torch.linspace(
        0, 1, grid.shape[1], dtype=grid.dtype, device=grid.device
    )
    tol = 64 * torch.finfo(grid.dtype).eps * (span.abs() + grid[:, :1].abs())
    return bool(((grid - lin).abs() <= tol).all())


def _locate(
    x: torch.Tensor, grid: torch.Tensor, k: int, uniform: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Interval index ``j (batch, in)`` of ``x`` clamped to the grid, the centred local
    coordinate ``sigma (batch, in)`` of the unclamped ``x`` in that interval (``|sigma| > 1``
    outside the grid) and ``d sigma / d x``."""
    n_in = grid.shape[0]
    g = grid_size_of(grid, k)
    inner = grid[:, k : g + k + 1]  # (I, G + 1)
    lo, hi = inner[:, 0], inner[:, -1]
    if uniform:  # the interval is a floor, no search
        span = hi - lo
        u = (x - lo) * (g / span)  # (B, I), in [0, G] inside the grid
        j = u.floor().clamp_(0, g - 1)
        sigma = 2 * (u - j) - 1
        return j.long(), sigma, (2 * g / span).expand_as(x)
    xc = torch.minimum(torch.maximum(x, lo), hi)
    if g > 1:
        j = torch.searchsorted(inner[:, 1:-1].contiguous(), xc.t().contiguous(), right=True).t()
    else:
        j = torch.zeros(x.shape, dtype=torch.long, device=x.device)
    start = inner[:, :-1]
    inv_h = 1 / (inner[:, 1:] - start)  # (I, G)
    table = torch.stack([start, inv_h], -1).reshape(n_in * g, 2)
    left, ih = F.embedding(j + torch.arange(n_in, device=x.device) * g, table).unbind(-1)
    return j, 2 * (x - left) * ih - 1, 2 * ih


def _transposed_bags(
    idx: torch.Tensor, sigma: torch.Tensor, k: int, grad_out: torch.Tensor, n_rows: int
) -> torch.Tensor:
    """``A_p^T @ grad_out`` for ``p = 0..k``, where ``A_p[b, idx[b, i]] = sigma[b, i]^p``.

    One integer sort groups, for every table row, the samples that touch it; each product is
    then a gather-sum of ``grad_out`` rows. Returns ``(k + 1, n_rows, out)``.
    """
    n_in = idx.shape[1]
    # radix sort: its cost grows with the key width, so use the narrowest integer type
    key_dtype = torch.int16 if n_rows < 2**15 else torch.int32
    key_sorted, perm = torch.sort(idx.reshape(-1).to(key_dtype), stable=True)  # (B*I,)
    samples = perm.div(n_in, rounding_mode="floor")
    sig = sigma.reshape(-1)[perm]
    offsets = torch.zeros(n_rows + 1, dtype=torch.long, device=idx.device)
    torch.cumsum(torch.bincount(key_sorted.to(torch.int32), minlength=n_rows), 0, out=offsets[1:])
    out = grad_out.new_empty(k + 1, n_rows, grad_out.shape[1])
    for p, w in enumerate(_powers(sig, k)):
        out[p] = F.embedding_bag(
            samples,
            grad_out,
            offsets,
            mode="sum",
            per_sample_weights=w,
            include_last_offset=True,
        )
    return out


def _sampled_rows_dot(
    idx: torch.Tensor, grad_out: torch.Tensor, tables: list[torch.Tensor]
) -> list[torch.Tensor]:
    """``out[p][b, i] = <grad_out[b], tables[p][idx[b, i]]>`` for every table: ``(batch, in)``."""
    n_b, n_in = idx.shape
    if grad_out.device.type not in ("cpu", "cuda"):  # portable fallback: gather in chunks
        chunks = torch.split(torch.arange(n_b, device=idx.device), 1024)
        return [
            torch.cat([(t[idx[c]] * grad_out[c].unsqueeze(1)).sum(-1) for c in chunks])
            for t in tables
        ]
    crow = torch.arange(n_b + 1, device=idx.device) * n_in
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        pattern = torch.sparse_csr_tensor(
            crow,
            idx.reshape(-1),
            grad_out.new_zeros(n_b * n_in),
            size=(n_b, tables[0].shape[0]),
            check_invariants=False,
        )
    return [
        torch.sparse.sampled_addmm(pattern, grad_out, t.t(), beta=0.0).values().view(n_b, n_in)
        for t in tables
    ]


def _powers(sigma: torch.Tensor, k: int) -> list[torch.Tensor | None]:
    """Monomials ``sigma^p`` (``p = 0..k``; ``None`` stands for 1) inside ``[-1, 1]``, and
    outside it their tangent lines at the nearest end, ``s^p + p s^(p-1) (sigma - s)`` with
    ``s = clamp(sigma, -1, 1)``: the spline then continues linearly beyond the grid."""
    s = sigma.clamp(-1, 1)
    d = sigma - s
    pw: list[torch.Tensor | None] = [None, sigma]
    sp = s  # s^(p-1)
    for p in range(2, k + 1):
        pw.append(sp * s + p * sp * d)
        sp = sp * s
    return pw


def _dpowers(sigma: torch.Tensor, k: int) -> list[torch.Tensor | None]:
    """``d/dsigma`` of :func:`_powers` for ``p = 1..k``: ``p s^(p-1)`` (``None`` for ``p = 1``)."""
    s = sigma.clamp(-1, 1)
    out: list[torch.Tensor | None] = [None]
    sp = s
    for p in range(2, k + 1):
        out.append(p * sp)
        sp = sp * s
    return out


class GridPlan(NamedTuple):
    """What the compact path needs from a grid, computed once per grid (:func:`grid_plan`)."""

    polys: torch.Tensor  # (I, G, k+1[r], k+1[p]): interval_polynomials
    knots: torch.Tensor | None  # (I, G - 1) interior knots, None on uniform grids
    lo: torch.Tensor  # (I,) inner range start
    scale: torch.Tensor  # (I,) G / span: interval index = floor((x - lo) * scale), uniform
    offsets: torch.Tensor  # (I,) long: i * G, the first table row of input i
    start_inv_h: torch.Tensor  # (I * G, 2): interval start and 2 / width per table row


def grid_plan(grid: torch.Tensor, spline_order: int) -> GridPlan:
    """The per-grid quantities of :func:`kan_linear_compact` (cache them while the grid holds)."""
    k = spline_order
    n_in = grid.shape[0]
    g = grid_size_of(grid, k)
    grid = grid.detach()
    inner = grid[:, k : g + k + 1]  # (I, G + 1)
    lo, span = inner[:, 0], inner[:, -1] - inner[:, 0]
    start, width = inner[:, :-1], inner[:, 1:] - inner[:, :-1]  # (I, G)
    return GridPlan(
        polys=interval_polynomials(grid, k).contiguous(),
        knots=None if _is_uniform(grid) else inner[:, 1:-1].contiguous(),
        lo=lo.contiguous(),
        scale=(g / span).contiguous(),
        offsets=torch.arange(n_in, device=grid.device) * g,
        start_inv_h=torch.stack([start, 2 / width], -1).reshape(n_in * g, 2),
    )


def _compact_locate(
    x: torch.Tensor, plan: GridPlan, g: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Table row ``idx = i * G + j (batch, in)`` of each point's interval, its centred local
    coordinate ``sigma (batch, in)`` (``|sigma| > 1`` outside the grid) and ``d sigma / d x``."""
    if plan.knots is None:  # uniform: the interval is a floor
        j = ((x - plan.lo) * plan.scale).floor_().clamp_(0, g - 1).long()
    elif g > 1:  # points beyond the range land in the first / last interval
        j = torch.searchsorted(plan.knots, x.t().contiguous(), right=True).t()
    else:
        j = torch.zeros(x.shape, dtype=torch.long, device=x.device)
    idx = j + plan.offsets  # (B, I)
    start, inv_h = F.embedding(idx, plan.start_inv_h).unbind(-1)
    return idx, (x - start) * inv_h - 1, inv_h


class CompactLocal(NamedTuple):
    """The per-point quantities of :func:`kan_linear_compact` (depend on ``x`` and the grid
    only: a caller may reuse them while both hold, e.g. a first layer's training inputs)."""

    idx: torch.Tensor  # (B, I) long: table row of each point's interval
    sigma: torch.Tensor  # (B, I): centred local coordinate
    inv_h: torch.Tensor  # (B, I): d sigma / d x
    powers: torch.Tensor  # (B, I, k+1): sigma^p, continued linearly outside the grid
    act_x: torch.Tensor | None  # (B, I): base activation of x, None without one


def compact_local(
    x: torch.Tensor, plan: GridPlan, spline_order: int, activation: str | None
) -> CompactLocal:
    """:class:`CompactLocal` of ``x: (batch, in)`` on the grid ``plan`` describes."""
    with torch.no_grad():
        g = plan.polys.shape[1]
        idx, sigma, inv_h = _compact_locate(x, plan, g)
        pw = _powers(sigma, spline_order)
        pw[0] = torch.ones_like(sigma)
        act = get_activation(activation)
        return CompactLocal(idx, sigma, inv_h, torch.stack(pw, -1), None if act is None else act(x))


class _KANLinearCompact(torch.autograd.Function):
    """:func:`kan_linear_compact` with a hand-written backward (no autograd graph: for tiny
    layers the graph's bookkeeping costs as much as the arithmetic)."""

    @staticmethod
    def forward(ctx, x, coef, scale_sp, scale_base, bias, k, activation, plan, local):  # noqa: D102
        n_in, n_basis, n_out = coef.shape
        g = n_basis - k
        polys = plan.polys
        w = coef * scale_sp.t().unsqueeze(1)  # (I, G+k, out)
        # (I, G, p, r) @ (I, G, r, out) -> (I*G, p*out): the per-interval monomial tables
        tables = (polys.transpose(-1, -2) @ w.unfold(1, k + 1, 1).transpose(-1, -2))
        tables = tables.view(n_in * g, (k + 1) * n_out)
        if local is None:
            local = compact_local(x, plan, k, activation)
        idx, sigma, inv_h, pw, act_x = local
        rows = tables[idx.reshape(-1)].view(*idx.shape, k + 1, n_out)  # (B, I, p, out)
        y = (pw.unsqueeze(-2) @ rows).sum((1, 2))  # (B, out)
        if act_x is not None and scale_base is not None:
            y = y.addmm_(act_x, scale_base.t())
        if bias is not None:
            y = y.add_(bias)
        ctx.save_for_backward(x, coef, scale_sp, scale_base, polys, idx, sigma, inv_h, pw, rows,
                              act_x)
        ctx.k, ctx.activation = k, activation
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):  # noqa: D102
        x, coef, scale_sp, scale_base, polys, idx, sigma, inv_h, pw, rows, act_x = ctx.saved_tensors
        k, activation = ctx.k, ctx.activation
        n_in, n_basis, n_out = coef.shape
        g = n_basis - k
        need_x, need_coef, need_sp, need_base, need_bias = ctx.needs_input_grad[:5]
        grad_out = grad_out.contiguous()
        grad_x = grad_coef = grad_sp = grad_base = None
        if need_x:
            # d y / d pw_p = <rows[b, i, p], grad_out[b]>; d pw_p / d sigma = p s^(p-1)
            dpw = (rows @ grad_out.view(-1, 1, n_out, 1)).squeeze(-1)  # (B, I, p)
            dsig = dpw[..., 1].clone()
            s = sigma.clamp(-1, 1)
            sp = s
            for p in range(2, k + 1):
                dsig.addcmul_(dpw[..., p], sp, value=p)
                sp = sp * s
            grad_x = dsig.mul_(inv_h)
        if need_coef or need_sp:
            grad_rows = pw.unsqueeze(-1) * grad_out.view(-1, 1, 1, n_out)  # (B, I, p, out)
            gt = grad_rows.new_zeros(n_in * g, (k + 1) * n_out)
            gt.index_add_(0, idx.reshape(-1), grad_rows.view(-1, (k + 1) * n_out))
            gu = polys @ gt.view(n_in, g, k + 1, n_out)  # (I, G, r, out)
            gw = gu.new_zeros(n_in, n_basis, n_out)
            for r in range(k + 1):
                gw[:, r : r + g].add_(gu[:, :, r])
            if need_coef:
                grad_coef = gw * scale_sp.t().unsqueeze(1)
            if need_sp:
                grad_sp = (gw * coef).sum(1).t()
        if act_x is not None and scale_base is not None:
            grad_x, grad_base = _base_backward(x, grad_out, scale_base, activation, grad_x,
                                               need_x, need_base, act_x)
        grad_bias = grad_out.sum(0) if need_bias else None
        return grad_x, grad_coef, grad_sp, grad_base, grad_bias, None, None, None, None


def kan_linear_compact(
    x: torch.Tensor,
    grid: torch.Tensor,
    coef: torch.Tensor,
    scale_sp: torch.Tensor,
    scale_base: torch.Tensor | None,
    spline_order: int,
    activation: str | None = "silu",
    plan: GridPlan | None = None,
    local: CompactLocal | None = None,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """The fast path's function for small layers; same arguments and result as
    :func:`kan_linear_dense`, plus what a caller may cache: ``plan``, the per-grid quantities
    (:func:`grid_plan` of ``grid``), and ``local``, the per-point ones (:func:`compact_local` of
    ``x`` on that plan); and ``bias: (out,)``, added to the result (one autograd node fewer).

    Materialises ``(batch, in, k + 1, out)`` gathered table rows: for small layers only.
    Differentiable once, like :func:`kan_linear`.
    """
    if grid_size_of(grid, spline_order) < 1:
        raise ValueError("grid must hold at least one interval")
    if plan is None:
        plan = grid_plan(grid, spline_order)
    return _KANLinearCompact.apply(x, coef, scale_sp, scale_base, bias, spline_order, activation,
                                   plan, local)


class _KANLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, grid, coef, scale_sp, scale_base, k, activation):  # noqa: D102
        n_in, n_basis, n_out = coef.shape
        g = n_basis - k
        polys = interval_polynomials(grid, k)  # (I, G, k+1, k+1)
        tables = _poly_tables(coef, scale_sp, polys)  # (k+1, I*G, out)
        j, sigma, _ = _locate(x, grid, k, _is_uniform(grid))
        idx = j + torch.arange(n_in, device=x.device) * g  # (B, I) rows of the tables
        y = None
        for p, w in enumerate(_powers(sigma, k)):
            part = F.embedding_bag(idx, tables[p], per_sample_weights=w, mode="sum")
            y = part if y is None else y.add_(part)
        act = get_activation(activation)
        if act is not None and scale_base is not None:
            y = y.addmm_(act(x), scale_base.t())
        ctx.save_for_backward(x, grid, coef, scale_sp, scale_base)
        ctx.k, ctx.activation = k, activation
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):  # noqa: D102
        x, grid, coef, scale_sp, scale_base = ctx.saved_tensors
        k, activation = ctx.k, ctx.activation
        n_in, n_basis, n_out = coef.shape
        g = n_basis - k
        grad_out = grad_out.contiguous()
        need_x, _, need_coef, need_sp, need_base = ctx.needs_input_grad[:5]
        polys = interval_polynomials(grid, k)
        j, sigma, dsig = _locate(x, grid, k, _is_uniform(grid))
        idx = j + torch.arange(n_in, device=x.device) * g
        grad_x = grad_coef = grad_sp = grad_base = None
        if need_x:
            tables = _poly_tables(coef, scale_sp, polys)
            dots = _sampled_rows_dot(idx, grad_out, list(tables[1:]))
            dpw = _dpowers(sigma, k)
            dsigma = dots[0]
            for p in range(2, k + 1):
                dsigma = dsigma.addcmul_(dots[p - 1], dpw[p - 1])
            grad_x = dsigma.mul_(dsig)
        if need_coef or need_sp:
            grad_tables = _transposed_bags(idx, sigma, k, grad_out, n_in * g)
            gw = _untable_grad(grad_tables, polys, n_basis)  # (I, G+k, out)
            if need_coef:
                grad_coef = gw * scale_sp.t().unsqueeze(1)
            if need_sp:
                grad_sp = (gw * coef).sum(1).t()
        if activation is not None and scale_base is not None:
            grad_x, grad_base = _base_backward(x, grad_out, scale_base, activation, grad_x,
                                               need_x, need_base)
        return grad_x, None, grad_coef, grad_sp, grad_base, None, None


class _KANLinearC(torch.autograd.Function):
    """The fast path on the compiled CPU kernels (:mod:`kanplatform.kernels.ckernel`): tables, the
    forward gather-sum, the input gradient and the table gradient are single C loops over the
    ``(batch, in)`` points, each reading or writing ``k + 1`` table rows of length ``out``;
    the base term stays three GEMMs. Saves only ``x``, like :class:`_KANLinear`."""

    @staticmethod
    def forward(ctx, x, coef, scale_sp, scale_base, bias, k, activation, plan):  # noqa: D102
        x = x.contiguous()
        n_in, _, n_out = coef.shape
        ctx.k, ctx.activation, ctx.plan = k, activation, plan
        ctx.whole = clayer.fits(n_in, n_out, plan.polys.shape[1], k, x.dtype, activation)
        if ctx.whole:  # one call: tables (kept for backward), base term, bias, spline term
            coef, scale_sp = coef.contiguous(), scale_sp.contiguous()
            sb = None if activation is None or scale_base is None else scale_base.contiguous()
            y, tables, sbt = clayer.layer_forward(x, plan, coef, scale_sp, sb, bias, k)
            ctx.save_for_backward(x, coef, scale_sp, sb, tables, sbt)
            return y
        sc = scale_sp.t().contiguous()  # (I, O)
        tables = ckernel.tables(coef.contiguous(), sc, plan.polys)
        act = get_activation(activation)
        n_out = coef.shape[2]
        if act is not None and scale_base is not None:
            a = act(x)
            y = a @ scale_base.t() if bias is None else torch.addmm(bias, a, scale_base.t())
        elif bias is not None:
            y = bias.expand(x.shape[0], n_out).clone()
        else:
            y = x.new_zeros(x.shape[0], n_out)
        ckernel.forward(x, plan, tables, y, k)
        ctx.save_for_backward(x, coef, scale_sp, scale_base)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):  # noqa: D102
        need_x, need_coef, need_sp, need_base, need_bias = ctx.needs_input_grad[:5]
        grad_out = grad_out.contiguous()
        if ctx.whole:
            x, coef, scale_sp, sb, tables, sbt = ctx.saved_tensors
            gx, gcoef, gsp, gsb, gbias = clayer.layer_backward(
                x, ctx.plan, coef, scale_sp, sb, tables, sbt, grad_out, need_x, need_bias)
            return (gx, gcoef if need_coef else None, gsp if need_sp else None,
                    gsb if need_base else None, gbias, None, None, None)
        x, coef, scale_sp, scale_base = ctx.saved_tensors
        k, activation, plan = ctx.k, ctx.activation, ctx.plan
        coef = coef.contiguous()
        sc = scale_sp.t().contiguous()
        grad_x = grad_coef = grad_sp = grad_base = None
        if need_x:
            grad_x = ckernel.backward_x(x, plan, ckernel.tables(coef, sc, plan.polys), grad_out, k)
        if need_coef or need_sp:
            grad_tables = ckernel.backward_tables(x, plan, grad_out, k)
            grad_coef, gsc = ckernel.tables_backward(coef, sc, plan.polys, grad_tables)
            grad_sp = gsc.t() if need_sp else None
            grad_coef = grad_coef if need_coef else None
        if activation is not None and scale_base is not None:
            grad_x, grad_base = _base_backward(x, grad_out, scale_base, activation, grad_x,
                                               need_x, need_base)
        grad_bias = grad_out.sum(0) if need_bias else None
        return grad_x, grad_coef, grad_sp, grad_base, grad_bias, None, None, None


def _base_backward(x, grad_out, scale_base, activation, grad_x, need_x, need_base,  # noqa: ANN001, ANN202
                   act_x=None):  # noqa: ANN001
    """Gradients of the base term ``act(x) @ scale_base.t()``: ``grad_x`` (added to the one
    given, which may be ``None``) and ``scale_base``'s; ``act_x`` is ``act(x)`` when the caller
    has it. Silu (the default) goes without an autograd graph."""
    grad_base = None
    if activation == "silu":
        a = act_x if act_x is not None or not need_base else F.silu(x)
        if need_x:
            ga = torch.ops.aten.silu_backward(grad_out @ scale_base, x)
            grad_x = ga if grad_x is None else grad_x + ga
    else:
        with torch.enable_grad():
            xd = x.detach().requires_grad_(need_x)
            a = get_activation(activation)(xd)
        if need_x:
            (ga,) = torch.autograd.grad(a, xd, grad_out @ scale_base)
            grad_x = ga if grad_x is None else grad_x + ga
    if need_base:
        grad_base = grad_out.t() @ a.detach()
    return grad_x, grad_base


# grid plans converted to the Triton kernels' accumulation dtype (e.g. for a bfloat16 model),
# keyed by the caller's cached plan (held too, so its id is not reused while the entry lives)
_acc_plans: dict[tuple[int, torch.dtype], tuple[GridPlan, GridPlan]] = {}


def _kan_linear_triton(x, grid, coef, scale_sp, scale_base, k, activation, plan, bias):  # noqa: ANN001, ANN202
    """:func:`kan_linear` on :mod:`kanplatform.kernels.triton_spline` (imported here: it needs
    triton); the grid plan in the kernels' accumulation dtype, rebuilt when the cached one is
    in another (e.g. a bfloat16 model's grid)."""
    try:
        from kanplatform.kernels import triton_spline
    except ImportError as err:
        raise RuntimeError(
            f"the Triton KAN kernel needs triton, which cannot be imported ({err}): pip "
            f"install 'kanplatform[gpu]', or set {ckernel.KERNEL_ENV}=auto or torch"
        ) from None
    acc = torch.float64 if torch.float64 in (x.dtype, coef.dtype, scale_sp.dtype) else \
        torch.float32
    if plan is None or plan.polys.dtype != acc or plan.polys.device != x.device:
        key = (id(plan), acc)
        hit = _acc_plans.get(key)
        if plan is None or hit is None or hit[0] is not plan:
            hit = (plan, grid_plan(grid.to(device=x.device, dtype=acc), k))
            if plan is not None:  # a caller's cached plan: keep its converted twin
                if len(_acc_plans) >= 64:
                    _acc_plans.pop(next(iter(_acc_plans)))
                _acc_plans[key] = hit
        plan = hit[1]
    return triton_spline.kan_linear_triton(x, coef, scale_sp, scale_base, k,
                                           get_activation(activation), plan, bias)


BACKENDS = ("auto", "c", "torch", "triton")


def kan_linear(
    x: torch.Tensor,
    grid: torch.Tensor,
    coef: torch.Tensor,
    scale_sp: torch.Tensor,
    scale_base: torch.Tensor | None,
    spline_order: int,
    activation: str | None = "silu",
    plan: GridPlan | None = None,
    bias: torch.Tensor | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Fast KAN layer map; same arguments and result as :func:`kan_linear_dense`, plus
    ``bias: (out,)`` added to the result, ``plan`` (:func:`grid_plan` of ``grid``, which a
    caller may cache while the grid holds) and ``backend``:

    * ``"c"``: the compiled CPU kernels (:mod:`kanplatform.kernels.ckernel`); CPU tensors of one
      float dtype only;
    * ``"torch"``: pure PyTorch (``embedding_bag`` gathers; any device);
    * ``"triton"``: the Triton kernels (:mod:`kanplatform.kernels.triton_spline`): CUDA
      tensors, or CPU ones in Triton's interpreter (``TRITON_INTERPRET=1``); float32,
      bfloat16, float16 or float64, accumulating in float32 (float64);
    * ``"auto"``: ``"triton"`` on CUDA (:func:`kanplatform.kernels.use_triton`), else ``"c"``
      where it applies and the kernel library builds, else ``"torch"``
      (``KANPLATFORM_KERNEL=torch`` forces PyTorch everywhere, ``KANPLATFORM_KERNEL=triton``
      Triton everywhere).

    All compute the same function to rounding. Differentiable once (w.r.t. ``x``, ``coef``,
    ``scale_sp``, ``scale_base``, ``bias``); double backward is not supported.
    """
    if grid_size_of(grid, spline_order) < 1:
        raise ValueError("grid must hold at least one interval")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "triton" or (backend == "auto" and use_triton(x)):
        return _kan_linear_triton(x, grid, coef, scale_sp, scale_base, spline_order, activation,
                                  plan, bias)
    tensors = [x, grid, coef, scale_sp] + ([] if scale_base is None else [scale_base])
    compiled = backend == "c" or (backend == "auto" and compiled_supports(*tensors))
    if compiled:
        if backend == "c" and ckernel.library() is None:
            raise RuntimeError(
                f"backend='c' but the compiled kernel is off ({ckernel.KERNEL_ENV}="
                f"{ckernel.kernel_mode()}) or "
                f"cannot be built: {ckernel.library_error()}"
            )
        if not ckernel.supports(x, grid, coef, scale_sp):
            raise ValueError(
                "backend='c' takes CPU tensors of one dtype (float32 or float64); use "
                "backend='torch' or 'auto'"
            )
        if plan is None:
            plan = grid_plan(grid, spline_order)
        return _KANLinearC.apply(x, coef, scale_sp, scale_base, bias, spline_order, activation,
                                 plan)
    y = _KANLinear.apply(x, grid, coef, scale_sp, scale_base, spline_order, activation)
    return y if bias is None else y + bias
