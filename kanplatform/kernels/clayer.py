"""Whole-layer and whole-network calls of the compiled CPU kernels (``csrc/layer_body.h``).

For layers whose per-interval tables stay in the cache, one C call per direction does what
took a table build, the spline kernel, three GEMMs and a handful of tensor ops for the base
term and the bias (each with its Python and dispatch cost, which at batch 64-1024 outweighed
the arithmetic): the base term ``silu(x) @ sb^T`` rides along as one more table row per
input, the forward's tables are kept for the backward, and the backward forms every
gradient in one pass over the ``(sample, input)`` points. :func:`network_mse` chains those
same calls over a whole small KAN, so a full-batch LBFGS evaluation is one C call; it equals
the per-layer path bit for bit (tested).

Applies to the ``silu`` base activation or none (:func:`fits`); other activations take the
per-term kernels of :mod:`.ckernel`.
"""

from __future__ import annotations

import ctypes
from typing import Any

import torch

from kanplatform.kernels import ckernel

__all__ = ["SMALL_TABLE_BYTES", "fits", "layer_backward", "layer_forward", "network_mse"]

# tables (I * G * (k + 1) * O elements) up to this size take the whole-layer kernels: they
# stay in the L2 cache, where walking samples in their natural order beats sorting them by
# interval
SMALL_TABLE_BYTES = 1 << 19

_fns: dict[tuple[str, torch.dtype], Any] = {}


def _fn(name: str, dtype: torch.dtype) -> Any:
    fn = _fns.get((name, dtype))
    if fn is None:
        lib = ckernel._loaded()
        suffix = "f32" if dtype == torch.float32 else "f64"
        fn = _fns[(name, dtype)] = getattr(lib, f"{name}_{suffix}")
    return fn


def fits(n_in: int, n_out: int, grid_size: int, spline_order: int, dtype: torch.dtype,
         activation: str | None) -> bool:
    """Whether a layer of this shape runs on the whole-layer kernels."""
    if activation not in ("silu", None):
        return False
    size = n_in * grid_size * (spline_order + 1) * n_out * (8 if dtype == torch.float64 else 4)
    return size <= SMALL_TABLE_BYTES


def _p(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _locate(x: torch.Tensor, plan: Any, n_out: int, k: int) -> list:
    return [x.shape[0], x.shape[1], n_out, k + 1, plan.polys.shape[1], x.data_ptr(),
            plan.lo.data_ptr(), plan.scale.data_ptr(), _p(plan.knots),
            plan.start_inv_h.data_ptr()]


def _check(rc: int) -> None:
    if rc != 0:
        raise MemoryError("kanplatform's KAN kernel could not allocate its scratch memory")


def layer_forward(x: torch.Tensor, plan: Any, coef: torch.Tensor, sp: torch.Tensor,
                  sb: torch.Tensor | None, bias: torch.Tensor | None, k: int
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``y = bias + silu(x) @ sb^T + spline(x)``: ``(B, O)``, and the tables and ``sb^T`` the
    backward reads. Every tensor contiguous, one dtype; ``sp``, ``sb``: ``(O, I)``."""
    n_b, n_in = x.shape
    n_out = coef.shape[2]
    g = plan.polys.shape[1]
    y = x.new_empty(n_b, n_out)
    tables = x.new_empty(n_in * g, k + 1, n_out)
    sbt = x.new_empty(n_in, n_out) if sb is not None else tables
    _check(_fn("kan_layer_forward", x.dtype)(
        *_locate(x, plan, n_out, k), plan.polys.data_ptr(), coef.data_ptr(), sp.data_ptr(),
        _p(sb), _p(bias), tables.data_ptr(), sbt.data_ptr(), y.data_ptr(),
        ckernel._threads(n_b * n_in * n_out),
    ))
    return y, tables, sbt


def layer_backward(x: torch.Tensor, plan: Any, coef: torch.Tensor, sp: torch.Tensor,
                   sb: torch.Tensor | None, tables: torch.Tensor, sbt: torch.Tensor,
                   grad_y: torch.Tensor, need_x: bool, need_bias: bool
                   ) -> tuple[torch.Tensor | None, ...]:
    """``(grad_x, grad_coef, grad_sp, grad_sb, grad_bias)`` from :func:`layer_forward`'s
    tables; ``grad_x`` only when ``need_x``, ``grad_sb`` only with a base term, ``grad_bias``
    only when ``need_bias``."""
    n_b, n_in = x.shape
    n_out = coef.shape[2]
    g = plan.polys.shape[1]
    k = plan.polys.shape[2] - 1
    gx = x.new_empty(n_b, n_in) if need_x else None
    gcoef, gsp = torch.empty_like(coef), torch.empty_like(sp)
    gsb = torch.empty_like(sb) if sb is not None else None
    gbias = x.new_empty(n_out) if need_bias else None
    g_tables = ckernel._workspace("grad_tables", (n_in * g, k + 1, n_out), x.dtype)
    g_sbt = ckernel._workspace("grad_sbt", (n_in, n_out), x.dtype)
    _check(_fn("kan_layer_backward", x.dtype)(
        *_locate(x, plan, n_out, k), plan.polys.data_ptr(), coef.data_ptr(), sp.data_ptr(),
        _p(sb), tables.data_ptr(), sbt.data_ptr(), grad_y.data_ptr(), _p(gx),
        g_tables.data_ptr(), g_sbt.data_ptr(), gcoef.data_ptr(), gsp.data_ptr(), _p(gsb),
        _p(gbias), ckernel._threads(n_b * n_in * n_out),
    ))
    return gx, gcoef, gsp, gsb, gbias


class NetworkCall:
    """The prepared arguments of one :func:`network_mse` configuration: a KAN's layers (their
    parameters, grid plans and gradient buffers) on inputs ``x`` and targets ``y``. Build it
    with :func:`prepare` and call it while none of those tensors is replaced (the parameters
    may change in place)."""

    def __init__(self, x: torch.Tensor, target: torch.Tensor, layers: list[dict[str, Any]],
                 k: int) -> None:
        dtype = x.dtype
        n_b = x.shape[0]
        dims = [x.shape[1]] + [lay["coef"].shape[2] for lay in layers]
        self.keep: list[Any] = [x, target, layers]  # keeps every pointer below alive
        self.diff = x.new_empty(n_b, dims[-1])
        self.outputs = [x.new_empty(n_b, d) for d in dims[1:]]
        widest = max(dims)
        self.ga, self.gb = x.new_empty(n_b * widest), x.new_empty(n_b * widest)
        work, lp, gs = [], [], []
        big_t, big_s = 1, 1
        for lay, out in zip(layers, self.outputs):
            plan = lay["plan"]
            n_in, _, n_out = lay["coef"].shape
            g = plan.polys.shape[1]
            t = x.new_empty(n_in * g, k + 1, n_out)
            s = x.new_empty(n_in, n_out)
            self.keep += [t, s]
            big_t, big_s = max(big_t, t.numel()), max(big_s, s.numel())
            gs.append(g)
            lp += [plan.lo, plan.scale, plan.knots, plan.start_inv_h, plan.polys, lay["coef"],
                   lay["sp"], lay["sb"], lay["bias"]]
            work += [t, s, out, lay["gcoef"], lay["gsp"], lay["gsb"], lay["gbias"]]
        self.g_tables, self.g_sbt = x.new_empty(big_t), x.new_empty(big_s)
        ptr_array = ctypes.c_void_p * len(lp)
        self._lp = ptr_array(*[_p(t) for t in lp])
        self._wp = (ctypes.c_void_p * len(work))(*[_p(t) for t in work])
        self._dims = (ctypes.c_int64 * len(dims))(*dims)
        self._gs = (ctypes.c_int64 * len(gs))(*gs)
        self._fn = _fn("kan_network_mse", dtype)
        self._args = (len(layers), self._dims, n_b, k + 1, self._gs, x.data_ptr(),
                      target.data_ptr(), self._lp, self._wp, self.diff.data_ptr(),
                      self.ga.data_ptr(), self.gb.data_ptr(), self.g_tables.data_ptr(),
                      self.g_sbt.data_ptr())
        self.work = max(d_in * d_out for d_in, d_out in zip(dims[:-1], dims[1:])) * n_b

    def __call__(self) -> torch.Tensor:
        """Run forward, loss gradient and backward; returns ``prediction - target``."""
        _check(self._fn(*self._args, ckernel._threads(self.work)))
        return self.diff


def network_mse(x: torch.Tensor, target: torch.Tensor, layers: list[dict[str, Any]],
                k: int) -> NetworkCall:
    """Prepare the one-call MSE gradient of a KAN (see :class:`NetworkCall`).

    Args:
        x: inputs ``(B, I)``, contiguous.
        target: ``(B, O)``, contiguous, ``x``'s dtype.
        layers: per layer a dict of contiguous tensors: ``plan`` (the layer's grid plan),
            ``coef``, ``sp``, ``sb`` (or ``None``), ``bias`` (or ``None``), and the gradient
            buffers ``gcoef``, ``gsp``, ``gsb``, ``gbias`` (``None`` where the parameter is).
        k: the spline order of every layer.
    """
    return NetworkCall(x, target, layers, k)
