"""Whole-layer and whole-network calls of the compiled CPU kernels (``csrc/layer_body.h``).

For layers whose per-interval tables stay in the cache, one C call per direction does what
took a table build, the spline kernel, three GEMMs and a handful of tensor ops for the base
term and the bias (each with its Python and dispatch cost, which at batch 64-1024 outweighed
the arithmetic): the base term ``silu(x) @ sb^T`` rides along as one more table row per
input, the forward's tables are kept for the backward, and the backward forms every
gradient in one pass over the ``(sample, input)`` points. :func:`network_mse` chains those
same calls over a whole small KAN, so a full-batch LBFGS evaluation is one C call; it equals
the per-layer path bit for bit (tested). :class:`NetworkPlan` and :class:`NetworkFunction` do
the same for autograd (``KAN.forward`` of a small KAN, e.g. an Adam step): one C call for the
whole forward, keeping every layer's tables and outputs, and one for the whole backward, one
autograd node for the network instead of one per layer.

Applies to the ``silu`` base activation or none (:func:`fits`); other activations take the
per-term kernels of :mod:`.ckernel`.
"""

from __future__ import annotations

import ctypes
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from kanplatform.kernels import ckernel

__all__ = ["SMALL_TABLE_BYTES", "NetworkFunction", "NetworkPlan", "fits", "layer_backward",
           "layer_forward", "network_mse"]

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


class NetworkPlan:
    """The fixed arguments of a KAN's one-call forward and backward (``kan_network_forward``
    / ``kan_network_backward`` in ``csrc/layer_body.h``): its layers' grid plans and
    parameters, bound by pointer. Valid while none of those tensors is replaced (in-place
    updates, as an optimiser step makes, are fine); the parameter tensors, in the order
    :meth:`params` gives them, are :class:`NetworkFunction`'s inputs.

    Args:
        layers: per layer a dict of contiguous tensors of one dtype: ``plan`` (the layer's
            grid plan), ``coef``, ``sp``, ``sb`` (or ``None``: no base term), ``bias`` (or
            ``None``).
        k: the spline order of every layer.
    """

    def __init__(self, layers: list[dict[str, Any]], k: int) -> None:
        dtype = layers[0]["coef"].dtype
        self.dims = [layers[0]["coef"].shape[0]] + [lay["coef"].shape[2] for lay in layers]
        self.layers = layers  # keeps every pointer below alive
        pointers, fixed, big_t, big_s = [], 0, 1, 1
        for lay, n_in, n_out in zip(layers, self.dims[:-1], self.dims[1:]):
            plan = lay["plan"]
            t_size = n_in * plan.polys.shape[1] * (k + 1) * n_out
            fixed += t_size + n_in * n_out
            big_t, big_s = max(big_t, t_size), max(big_s, n_in * n_out)
            pointers += [plan.lo, plan.scale, plan.knots, plan.start_inv_h, plan.polys,
                         lay["coef"], lay["sp"], lay["sb"], lay["bias"]]
        self._lp = (ctypes.c_void_p * len(pointers))(*[_p(t) for t in pointers])
        self._dims = (ctypes.c_int64 * len(self.dims))(*self.dims)
        gs = [lay["plan"].polys.shape[1] for lay in layers]
        self._gs = (ctypes.c_int64 * len(gs))(*gs)
        self._head = (len(layers), self._dims)
        self._k1 = k + 1
        # ws: every layer's tables and SBt, plus the inner layers' outputs (per sample)
        self._fixed, self._inner = fixed, sum(self.dims[1:-1])
        self._widest = max(self.dims[1:-1], default=1)
        self._big = (big_t, big_s)
        self._work = max(a * b for a, b in zip(self.dims[:-1], self.dims[1:]))
        self._fwd = _fn("kan_network_forward", dtype)
        self._bwd = _fn("kan_network_backward", dtype)
        # per gradient slot of kan_network_backward (coef, sp, sb, bias a layer): the
        # parameter (None: the layer has none), its NetworkFunction input index, and whether
        # it is formed only when wanted (biases; the kernel forms the others together)
        self._params: list[torch.Tensor] = []
        self._slots: list[tuple[torch.Tensor | None, int, bool]] = []
        for lay in layers:
            for name in ("coef", "sp", "sb", "bias"):
                t = lay[name]
                self._slots.append((t, 2 + len(self._params), name == "bias"))
                if t is not None:
                    self._params.append(t)

    def params(self) -> list[torch.Tensor]:
        """The parameter tensors in :class:`NetworkFunction`'s order: per layer ``coef``,
        ``sp``, then ``sb`` and ``bias`` where the layer has them."""
        return self._params

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The network's output ``(B, dims[-1])`` for contiguous ``x (B, dims[0])``, and the
        workspace :meth:`backward` reads."""
        n_b = x.shape[0]
        ws = x.new_empty(self._fixed + n_b * self._inner)
        y = x.new_empty(n_b, self.dims[-1])
        _check(self._fwd(*self._head, n_b, self._k1, self._gs, x.data_ptr(), self._lp,
                         ws.data_ptr(), y.data_ptr(), ckernel._threads(n_b * self._work)))
        return y, ws

    def backward(self, x: torch.Tensor, ws: torch.Tensor, grad_y: torch.Tensor,
                 needs: tuple[bool, ...]) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
        """``(grad_x, grads)`` from :meth:`forward`'s ``x`` and ``ws`` and the output's
        gradient (contiguous): ``grads`` in :meth:`params`' order; ``needs`` says, in
        :class:`NetworkFunction`'s input order (``x``, the plan, the parameters), which are
        wanted (``grad_x`` is ``None`` where ``x``'s is not; a bias's is formed only when
        wanted; the other parameters' always)."""
        n_b = x.shape[0]
        gx = x.new_empty(n_b, self.dims[0]) if needs[0] else None
        grads, pointers = [], []
        for t, at, optional in self._slots:
            if t is None:
                pointers.append(None)
                continue
            g = torch.empty_like(t) if needs[at] or not optional else None
            grads.append(g)
            pointers.append(None if g is None else g.data_ptr())
        gp = (ctypes.c_void_p * len(pointers))(*pointers)
        dtype = x.dtype
        size = n_b * self._widest
        ga = ckernel._workspace("net_ga", (size,), dtype)
        gb = ckernel._workspace("net_gb", (size,), dtype)
        g_t = ckernel._workspace("grad_tables", (self._big[0],), dtype)
        g_s = ckernel._workspace("grad_sbt", (self._big[1],), dtype)
        _check(self._bwd(*self._head, n_b, self._k1, self._gs, x.data_ptr(), self._lp,
                         ws.data_ptr(), grad_y.data_ptr(), _p(gx), gp, ga.data_ptr(),
                         gb.data_ptr(), g_t.data_ptr(), g_s.data_ptr(),
                         ckernel._threads(n_b * self._work)))
        return gx, grads


class NetworkFunction(torch.autograd.Function):
    """A whole small KAN as one autograd node: ``apply(x, plan, *plan.params())`` with a
    :class:`NetworkPlan` and contiguous ``x`` of its dtype. The same numbers as the layers'
    own nodes (:class:`~kanplatform.nn.functional._KANLinearC`), bit for bit: every layer
    runs the same whole-layer kernels on the same inputs."""

    @staticmethod
    def forward(ctx, x, plan, *params):  # noqa: ANN001, ANN205, D102
        y, ws = plan.forward(x)
        ctx.plan, ctx.ws = plan, ws
        ctx.save_for_backward(x, *params)  # in-place changes before backward raise
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y):  # noqa: ANN001, ANN205, D102
        x = ctx.saved_tensors[0]
        needs = ctx.needs_input_grad
        gx, grads = ctx.plan.backward(x, ctx.ws, grad_y.contiguous(), needs)
        return (gx, None, *[g if need else None for g, need in zip(grads, needs[2:])])
