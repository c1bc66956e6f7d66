"""The KAN layer's forward maps: a fast sparse path and the dense reference.

Both compute, for ``x: (batch, in)``,

    y[b, o] = sum_i  wb[o, i] * act(x[b, i])  +  sum_i sum_m  B_m(x[b, i]) * W[i, m, o]

where ``W = coef * (scale_sp * mask)`` is the spline weight table ``(in, G + k, out)`` and
``wb = scale_base * mask``. Neither ever forms a ``(batch, in, out)`` per-edge tensor.

* :func:`kan_linear_dense` - the reference: full basis ``(batch, in * (G + k))`` @ table.
* :func:`kan_linear` - the fast path. Only ``k + 1`` of the ``G + k`` basis functions are
  non-zero at a point, so the spline product is a weighted row gather-sum
  (``embedding_bag``): ``batch * in * (k + 1) * out`` multiply-adds instead of
  ``batch * in * (G + k) * out``. A custom autograd function saves only ``x`` and recomputes
  the (cheap) local basis in backward, so the memory kept for backward is that of
  ``nn.Linear``. Its backward uses, for the table gradient, the transposed gather-sum after one
  integer sort, and for the input gradient a sampled dense-dense product (``sampled_addmm``)
  times the analytic basis derivatives. Pure PyTorch throughout.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from kanplatform.nn.basis import bspline_basis, bspline_local, grid_size_of

__all__ = ["ACTIVATIONS", "get_activation", "kan_linear", "kan_linear_dense"]

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
    """Spline weight table ``(in, G + k, out)`` from ``coef`` and ``scale_sp: (out, in)``."""
    return coef * scale_sp.t().unsqueeze(1)


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


def _flat_index(j: torch.Tensor, n_basis: int, k: int) -> torch.Tensor:
    """Rows of the flattened table touched by each point: ``(batch, in * (k + 1))``."""
    n_in = j.shape[1]
    start = j + torch.arange(n_in, device=j.device) * n_basis  # (B, I)
    idx = start.unsqueeze(-1) + torch.arange(k + 1, device=j.device)  # (B, I, k+1)
    return idx.reshape(j.shape[0], -1)


def _grad_table(
    j: torch.Tensor, vals: torch.Tensor, grad_out: torch.Tensor, n_basis: int
) -> torch.Tensor:
    """``A^T @ grad_out`` for the sparse basis matrix ``A``: ``(in * n_basis, out)``.

    Sorting the ``(input, interval)`` keys once groups, for every table row, the samples that
    touch it; the ``k + 1`` shifted groupings are then plain gather-sums of ``grad_out`` rows.
    """
    n_b, n_in, kp1 = vals.shape
    n_rows = n_in * n_basis
    key = (j + torch.arange(n_in, device=j.device) * n_basis).t().reshape(-1)  # (I*B,) by input
    key_sorted, perm = torch.sort(key.to(torch.int32), stable=True)
    samples = perm.remainder(n_b)  # which row of grad_out each sorted entry reads
    v = vals.transpose(0, 1).reshape(n_in * n_b, kp1)[perm]  # (I*B, k+1)
    counts = torch.bincount(key_sorted, minlength=n_rows)
    start = torch.zeros(n_rows + 1, dtype=torch.long, device=j.device)
    torch.cumsum(counts, 0, out=start[1:])
    out = None
    for r in range(kp1):
        # table row m collects the entries whose key is m - r
        offsets = torch.cat([start.new_zeros(r), start[: n_rows + 1 - r]])
        part = F.embedding_bag(
            samples,
            grad_out,
            offsets,
            mode="sum",
            per_sample_weights=v[:, r].contiguous(),
            include_last_offset=True,
        )
        out = part if out is None else out.add_(part)
    return out


def _grad_vals(
    idx: torch.Tensor, grad_out: torch.Tensor, table: torch.Tensor, n_in: int
) -> torch.Tensor:
    """``dL/dvals[b, e] = <grad_out[b], table[idx[b, e]]>``: ``(batch, in, k + 1)``."""
    n_b, nnz_row = idx.shape
    if grad_out.device.type in ("cpu", "cuda"):
        crow = torch.arange(n_b + 1, device=idx.device) * nnz_row
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            pattern = torch.sparse_csr_tensor(
                crow,
                idx.reshape(-1),
                grad_out.new_zeros(n_b * nnz_row),
                size=(n_b, table.shape[0]),
                check_invariants=False,
            )
        out = torch.sparse.sampled_addmm(pattern, grad_out, table.t(), beta=0.0)
        return out.values().view(n_b, n_in, -1)
    # portable fallback (other devices): gather rows in chunks
    rows = []
    for sl in torch.split(torch.arange(n_b, device=idx.device), 1024):
        rows.append((table[idx[sl]] * grad_out[sl].unsqueeze(1)).sum(-1))
    return torch.cat(rows).view(n_b, n_in, -1)


class _KANLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, grid, coef, scale_sp, scale_base, k, activation):  # noqa: D102
        n_in, n_basis, n_out = coef.shape
        j, vals, _ = bspline_local(x, grid, k)
        idx = _flat_index(j, n_basis, k)  # (B, I*(k+1))
        table = _table(coef, scale_sp).reshape(n_in * n_basis, n_out)
        y = F.embedding_bag(idx, table, per_sample_weights=vals.reshape(idx.shape), mode="sum")
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
        grad_out = grad_out.contiguous()
        need_x, _, need_coef, need_sp, need_base = ctx.needs_input_grad[:5]
        j, vals, ders = bspline_local(x, grid, k, derivative=need_x)
        grad_x = grad_coef = grad_sp = grad_base = None
        if need_x:
            table = _table(coef, scale_sp).reshape(n_in * n_basis, n_out)
            gv = _grad_vals(_flat_index(j, n_basis, k), grad_out, table, n_in)  # (B, I, k+1)
            grad_x = (gv * ders).sum(-1)
        if need_coef or need_sp:
            gt = _grad_table(j, vals, grad_out, n_basis).view(n_in, n_basis, n_out)
            if need_coef:
                grad_coef = gt * scale_sp.t().unsqueeze(1)
            if need_sp:
                grad_sp = (gt * coef).sum(1).t()
        act = get_activation(activation)
        if act is not None and scale_base is not None:
            with torch.enable_grad():
                xd = x.detach().requires_grad_(need_x)
                a = act(xd)
            if need_base:
                grad_base = grad_out.t() @ a.detach()
            if need_x:
                (ga,) = torch.autograd.grad(a, xd, grad_out @ scale_base)
                grad_x = grad_x + ga
        return grad_x, None, grad_coef, grad_sp, grad_base, None, None


def kan_linear(
    x: torch.Tensor,
    grid: torch.Tensor,
    coef: torch.Tensor,
    scale_sp: torch.Tensor,
    scale_base: torch.Tensor | None,
    spline_order: int,
    activation: str | None = "silu",
) -> torch.Tensor:
    """Fast KAN layer map; same arguments and result as :func:`kan_linear_dense`.

    Differentiable once (w.r.t. ``x``, ``coef``, ``scale_sp``, ``scale_base``); double
    backward is not supported.
    """
    if grid_size_of(grid, spline_order) < 1:
        raise ValueError("grid must hold at least one interval")
    return _KANLinear.apply(x, grid, coef, scale_sp, scale_base, spline_order, activation)
