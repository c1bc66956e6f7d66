"""The KAN layer's spline term as Triton kernels (GPU; on CPU in Triton's interpreter).

For ``x: (B, I)`` and the scaled coefficient table ``W = coef * scale_sp: (I, G + k, O)``

    y[b, o] = sum_i sum_r  B_{j + r}(x[b, i]) * W[i, j + r, o],   j = interval of x[b, i]

only the ``k + 1`` bases that do not vanish on the point's interval. On that interval each is
a degree-``k`` polynomial in the centred coordinate ``sigma in [-1, 1]`` whose monomial
coefficients are ``polys[i, j, r, :]`` (the same per-interval polynomials as the C kernels and
the PyTorch path of :mod:`kanplatform.nn.functional`); outside the grid each continues along
its tangent at the nearest end (Horner gives value and slope at the clamped ``sigma`` at once),
so the spline continues linearly exactly as the other paths do. Memory kept for backward: ``x``
only; everything per point is recomputed.

Three kernels, each reading ``x`` and the grid and recomputing interval and bases:

* ``_forward`` - one program per (block of samples, block of outputs), a loop over inputs;
  per (sample, input) ``k + 1`` rows of ``W`` (contiguous along the outputs) are gathered and
  multiply-added: ``B * I * (k + 1) * O`` FMAs, independent of ``G``.
* ``_backward_x`` - one program per (block of samples, chunk of inputs): the same rows dotted
  with ``grad y`` over all outputs, with the bases' derivatives. Deterministic (no atomics).
* ``_backward_w`` - ``grad W[i] = A_i^T @ grad y`` where ``A_i (B, G + k)`` holds each point's
  ``k + 1`` basis values. A scatter of ``B * I * (k + 1) * O`` values into a table hit by
  ``B / G`` samples per row is the GPU's worst case (atomics on contended addresses), and a
  sort of the ``B * I`` (sample, input) pairs plus a gather of one ``grad y`` row per pair
  moves ``B * I * O`` values through memory (the batch's ``grad y`` does not stay in L2).
  Instead each program owns a tile of ``grad W`` (``C`` inputs x their ``G + k`` rows, padded to
  a power of two, x a block of outputs), builds the band of ``A`` for a block of samples in
  registers and multiplies it by the block's ``grad y`` on the tensor cores, looping over the
  batch: no atomics, deterministic, ``grad y`` read once per tile and ``C`` inputs. Its work
  grows with ``G`` (a dense band), at tensor-core rate; float32 uses three TF32 passes
  (``tf32x3``, float32-accurate), bfloat16/float16 inputs one TF32 pass (exact for their
  ``grad y``, bases rounded to 10 bits, finer than the inputs), float64 the FP64 units. When
  the tiles alone cannot fill the GPU the batch is split and the partial tables are summed
  afterwards (in a fixed order: still deterministic).

Inputs may be float32, bfloat16, float16 or float64; products accumulate in float32 (float64
when any of ``x``, ``coef``, ``scale_sp`` is float64). Import this module only where Triton
runs: it imports ``triton``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import triton
import triton.language as tl

__all__ = [
    "SUPPORTED_DTYPES",
    "backward_w_config",
    "backward_x_config",
    "forward_config",
    "interpreted",
    "kan_linear_triton",
    "spline_backward_w",
    "spline_backward_x",
    "spline_forward",
    "unavailable_reason",
]

SUPPORTED_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


# ---- device code ----------------------------------------------------------------------------

@triton.jit
def _locate(xv, i, lo_ptr, sc_ptr, kn_ptr, sih_ptr, G, UNIFORM: tl.constexpr,
            LOG_G: tl.constexpr):
    """Interval ``j`` (int32, clamped to ``[0, G)``), centred coordinate ``sigma`` (beyond
    ``[-1, 1]`` outside the grid) and ``d sigma / dx`` of ``xv`` on input(s) ``i``."""
    if UNIFORM:  # the interval is a floor
        jf = tl.floor((xv - tl.load(lo_ptr + i)) * tl.load(sc_ptr + i))
        jf = tl.where(jf > 0, jf, 0.0)  # also NaN -> 0: never an out-of-range row
        j = tl.minimum(jf, G - 1.0).to(tl.int32)
    else:  # searchsorted(interior knots, x, right=True) by binary lifting: LOG_G gathers
        j = tl.zeros(xv.shape, tl.int32)
        for step in tl.static_range(LOG_G):
            cand = j + (1 << (LOG_G - 1 - step))
            ok = cand <= G - 1
            kv = tl.load(kn_ptr + i * (G - 1) + cand - 1, mask=ok, other=float("inf"))
            j = tl.where(ok & (kv <= xv), cand, j)
    row = (i * G + j) * 2
    ih = tl.load(sih_ptr + row + 1)  # 2 / interval width
    return j, (xv - tl.load(sih_ptr + row)) * ih - 1, ih


@triton.jit
def _basis(p_row, s, d, K: tl.constexpr):
    """Value and ``d / d sigma`` of one basis at clamped ``s`` plus ``d = sigma - s`` along
    its tangent: Horner on the monomial coefficients ``p_row[0..K-1]``."""
    val = tl.load(p_row + (K - 1))
    der = tl.zeros_like(s)
    for q in tl.static_range(K - 1):
        der = der * s + val
        val = val * s + tl.load(p_row + (K - 2 - q))
    return val + der * d, der


@triton.jit
def _p_row(p_ptr, i, j, r, G, K: tl.constexpr, UNIFORM: tl.constexpr):
    """Where basis ``r``'s coefficients on the interval ``j`` of input ``i`` start (on uniform
    grids every interval has the same ones: interval 0's, one scalar load per input)."""
    if UNIFORM:
        row = p_ptr + (i * G * K + r) * K
    else:
        row = p_ptr + ((i * G + j) * K + r) * K
    return row


@triton.jit
def _forward(x_ptr, sxb, sxi, w_ptr, p_ptr, lo_ptr, sc_ptr, kn_ptr, sih_ptr, init_ptr, y_ptr,
             B, I, O, G, K: tl.constexpr, UNIFORM: tl.constexpr, LOG_G: tl.constexpr,
             HAS_INIT: tl.constexpr, BB: tl.constexpr, BO: tl.constexpr):
    acc_t = w_ptr.dtype.element_ty
    offs_b = tl.program_id(0) * BB + tl.arange(0, BB)
    offs_o = tl.program_id(1) * BO + tl.arange(0, BO)
    mb, mo = offs_b < B, offs_o < O
    m2 = mb[:, None] & mo[None, :]
    xb = offs_b.to(tl.int64) * sxb
    nb = G + K - 1
    acc = tl.zeros((BB, BO), acc_t)
    for i in range(I):
        xv = tl.load(x_ptr + xb + i * sxi, mask=mb, other=0.0).to(acc_t)  # (BB,)
        j, sigma, _ = _locate(xv, i, lo_ptr, sc_ptr, kn_ptr, sih_ptr, G, UNIFORM, LOG_G)
        s = tl.minimum(tl.maximum(sigma, -1.0), 1.0)
        d = sigma - s
        row0 = (tl.cast(i, tl.int64) * nb + j) * O  # (BB,) first of the k + 1 rows of W
        for r in tl.static_range(K):
            br, _ = _basis(_p_row(p_ptr, i, j, r, G, K, UNIFORM), s, d, K)
            w = tl.load(w_ptr + (row0 + r * O)[:, None] + offs_o[None, :], mask=m2, other=0.0)
            acc += br[:, None] * w
    out = offs_b.to(tl.int64)[:, None] * O + offs_o[None, :]
    if HAS_INIT:
        acc += tl.load(init_ptr + out, mask=m2, other=0.0).to(acc_t)
    tl.store(y_ptr + out, acc.to(y_ptr.dtype.element_ty), mask=m2)


@triton.jit
def _backward_x(x_ptr, sxb, sxi, w_ptr, p_ptr, lo_ptr, sc_ptr, kn_ptr, sih_ptr, g_ptr, gx_ptr,
                B, I, O, G, K: tl.constexpr, KP: tl.constexpr, UNIFORM: tl.constexpr,
                LOG_G: tl.constexpr, BB: tl.constexpr, BO: tl.constexpr, IC: tl.constexpr):
    acc_t = w_ptr.dtype.element_ty
    offs_b = tl.program_id(0) * BB + tl.arange(0, BB)
    mb = offs_b < B
    xb = offs_b.to(tl.int64) * sxb
    gb = offs_b.to(tl.int64) * O
    kk = tl.arange(0, KP)[None, :]  # (1, KP): which of the k + 1 rows
    nb = G + K - 1
    i0 = tl.program_id(1) * IC
    for i in range(i0, tl.minimum(i0 + IC, I)):
        xv = tl.load(x_ptr + xb + i * sxi, mask=mb, other=0.0).to(acc_t)
        j, sigma, dsig = _locate(xv, i, lo_ptr, sc_ptr, kn_ptr, sih_ptr, G, UNIFORM, LOG_G)
        row0 = (tl.cast(i, tl.int64) * nb + j) * O
        dots = tl.zeros((BB, KP), acc_t)  # dots[b, r] = <grad y[b], W[i, j_b + r]>
        for o0 in range(0, O, BO):
            offs_o = o0 + tl.arange(0, BO)
            m2 = mb[:, None] & (offs_o < O)[None, :]
            gy = tl.load(g_ptr + gb[:, None] + offs_o[None, :], mask=m2, other=0.0).to(acc_t)
            for r in tl.static_range(K):
                w = tl.load(w_ptr + (row0 + r * O)[:, None] + offs_o[None, :], mask=m2,
                            other=0.0)
                dots += tl.where(kk == r, tl.sum(w * gy, axis=1)[:, None], 0.0)
        s = tl.minimum(tl.maximum(sigma, -1.0), 1.0)
        d = sigma - s
        t = tl.zeros((BB,), acc_t)
        for r in tl.static_range(K):  # the bases' slopes, after the loop: fewer live values
            _, dbr = _basis(_p_row(p_ptr, i, j, r, G, K, UNIFORM), s, d, K)
            t += dbr * tl.sum(tl.where(kk == r, dots, 0.0), axis=1)
        tl.store(gx_ptr + offs_b.to(tl.int64) * I + i, t * dsig, mask=mb)


@triton.jit
def _backward_w(xt_ptr, g_ptr, p_ptr, lo_ptr, sc_ptr, kn_ptr, sih_ptr, out_ptr,
                B, I, O, G, per_split, K: tl.constexpr, UNIFORM: tl.constexpr,
                LOG_G: tl.constexpr, C: tl.constexpr, RP: tl.constexpr, BK: tl.constexpr,
                BO: tl.constexpr, PREC: tl.constexpr):
    acc_t = p_ptr.dtype.element_ty
    cols = tl.program_id(0) * C + tl.arange(0, C)
    ci = tl.minimum(cols, I - 1)[:, None]  # (C, 1): tail columns read column I - 1, not stored
    offs_o = tl.program_id(1) * BO + tl.arange(0, BO)
    mo = offs_o < O
    rr = tl.arange(0, RP)[None, :, None]  # (1, RP, 1): row of the tile within its input
    b_lo = tl.program_id(2) * per_split
    b_hi = tl.minimum(b_lo + per_split, B)
    acc = tl.zeros((C * RP, BO), acc_t)
    for b0 in range(b_lo, b_hi, BK):
        offs_k = b0 + tl.arange(0, BK)
        mk = offs_k < b_hi
        xv = tl.load(xt_ptr + tl.cast(ci, tl.int64) * B + offs_k[None, :], mask=mk[None, :],
                     other=0.0).to(acc_t)  # (C, BK)
        j, sigma, _ = _locate(xv, ci, lo_ptr, sc_ptr, kn_ptr, sih_ptr, G, UNIFORM, LOG_G)
        s = tl.minimum(tl.maximum(sigma, -1.0), 1.0)
        d = sigma - s
        band = tl.zeros((C, RP, BK), acc_t)  # A^T: the k + 1 non-zeros of each sample
        for r in tl.static_range(K):
            br, _ = _basis(_p_row(p_ptr, ci, j, r, G, K, UNIFORM), s, d, K)
            br = tl.where(mk[None, :], br, 0.0)
            band += tl.where(rr == (j + r)[:, None, :], br[:, None, :], 0.0)
        gy = tl.load(g_ptr + offs_k.to(tl.int64)[:, None] * O + offs_o[None, :],
                     mask=mk[:, None] & mo[None, :], other=0.0).to(acc_t)  # (BK, BO)
        acc = tl.dot(tl.reshape(band, (C * RP, BK)), gy, acc, input_precision=PREC,
                     out_dtype=acc_t)
    nb = G + K - 1
    rows = tl.arange(0, C * RP)
    col, rp = tl.program_id(0) * C + rows // RP, rows % RP
    dst = (tl.cast(tl.program_id(2), tl.int64) * I * nb + col.to(tl.int64) * nb + rp) * O
    tl.store(out_ptr + dst[:, None] + offs_o[None, :], acc,
             mask=((rp < nb) & (col < I))[:, None] & mo[None, :])


# ---- launchers -------------------------------------------------------------------------------

def interpreted() -> bool:
    """Whether these kernels run in Triton's CPU interpreter (``TRITON_INTERPRET=1`` was set
    when this module was first imported): then they take CPU tensors, else CUDA ones."""
    return type(_forward).__name__ == "InterpretedFunction"


def _np2(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


def _grid_args(plan: Any, acc: torch.dtype) -> tuple[list[Any], bool, int]:
    """Kernel arguments of ``plan`` (polys, lo, scale, knots, start_inv_h), uniform flag, G."""
    uniform = plan.knots is None
    g = plan.polys.shape[1]
    for name in ("polys", "lo", "scale", "start_inv_h") + (() if uniform else ("knots",)):
        t = getattr(plan, name)
        if t.dtype != acc or not t.is_contiguous():
            raise ValueError(f"plan.{name} must be a contiguous {acc} tensor, got {t.dtype}")
    knots = plan.lo if uniform else plan.knots  # any valid pointer when unused
    return [plan.polys, plan.lo, plan.scale, knots, plan.start_inv_h], uniform, g


def _log2(g: int) -> int:
    return max(0, math.ceil(math.log2(g))) if g > 1 else 0


# Block sizes: chosen so that ptxas (sm_90, Triton 3.9) allocates every variant for k <= 5
# without spilling registers (tests/kernels checks the compiled kernels); not yet tuned on a GPU.
def _out_blocks(n_out: int) -> tuple[int, int]:
    """(samples, outputs) per program of the forward and input-gradient kernels: 1024-value
    tiles, ``k + 1`` of them gathered per input."""
    bo = min(32, _np2(n_out))
    return min(256, 1024 // bo), bo


def forward_config(n_out: int, k: int, g: int, uniform: bool, has_init: bool) -> dict[str, Any]:
    """The constexpr arguments and ``num_warps`` of one :func:`spline_forward` launch."""
    bb, bo = _out_blocks(n_out)
    return {"K": k + 1, "UNIFORM": uniform, "LOG_G": _log2(g), "HAS_INIT": has_init,
            "BB": bb, "BO": bo, "num_warps": 4}


def backward_x_config(n_b: int, n_in: int, n_out: int, k: int, g: int, uniform: bool,
                      inputs_per_program: int | None = None) -> dict[str, Any]:
    """The constexpr arguments and ``num_warps`` of one :func:`spline_backward_x` launch."""
    bb, bo = _out_blocks(n_out)
    n_blocks = triton.cdiv(max(n_b, 1), bb)
    ic = inputs_per_program or max(1, min(16, (n_blocks * n_in) // 2048))  # >= ~2k programs
    return {"K": k + 1, "KP": _np2(k + 1), "UNIFORM": uniform, "LOG_G": _log2(g), "BB": bb,
            "BO": bo, "IC": ic, "num_warps": 4}


def backward_w_config(n_in: int, n_out: int, k: int, g: int, uniform: bool,
                      grad_dtype: torch.dtype) -> dict[str, Any]:
    """The constexpr arguments and ``num_warps`` of one :func:`spline_backward_w` launch: tiles
    of ``C`` inputs x ``RP >= G + k`` rows (~64, at least the 16 ``tl.dot`` needs)."""
    rp = _np2(g + k)
    c = max(1, min(64 // rp, _np2(n_in)))
    rp = max(rp, 16 // c)
    wide = c * rp <= 128 and grad_dtype != torch.float64
    bo = min(64 if wide else 32, max(16, _np2(n_out)))
    # float32 grad y: three TF32 passes (float32-accurate); 16-bit grad y is exact in TF32
    prec = "ieee" if grad_dtype == torch.float64 else (
        "tf32x3" if grad_dtype == torch.float32 else "tf32")
    return {"K": k + 1, "UNIFORM": uniform, "LOG_G": _log2(g), "C": c, "RP": rp,
            "BK": 32 if wide else 16, "BO": bo, "PREC": prec,
            "num_warps": 8 if c * rp * bo >= 2048 else 4}


def spline_forward(x: torch.Tensor, w: torch.Tensor, plan: Any, k: int,
                   init: torch.Tensor | None = None,
                   out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """``init + spline term``: ``(B, O)`` in ``out_dtype`` (default ``x``'s).

    Args:
        x: ``(B, I)``, any strides.
        w: scaled coefficient table ``(I, G + k, O)``, contiguous, in the accumulation dtype.
        plan: the grid's ``polys (I, G, k+1, k+1)``, ``lo (I,)``, ``scale (I,)``, ``knots
            (I, G-1)`` or ``None`` (uniform), ``start_inv_h (I*G, 2)``, all in ``w``'s dtype
            (e.g. :class:`kanplatform.nn.functional.GridPlan`).
        k: spline order.
        init: ``(B, O)`` contiguous, added (e.g. the base term and bias), or ``None``.
        out_dtype: the result's dtype.
    """
    args, uniform, g = _grid_args(plan, w.dtype)
    n_b, n_in = x.shape
    n_out = w.shape[2]
    y = torch.empty(n_b, n_out, dtype=out_dtype or x.dtype, device=x.device)
    if n_b == 0:
        return y if init is None else y.copy_(init)
    cfg = forward_config(n_out, k, g, uniform, init is not None)
    _forward[(triton.cdiv(n_b, cfg["BB"]), triton.cdiv(n_out, cfg["BO"]))](
        x, x.stride(0), x.stride(1), w, *args, init if init is not None else y, y,
        n_b, n_in, n_out, g, **cfg)
    return y


def spline_backward_x(x: torch.Tensor, w: torch.Tensor, plan: Any, grad_y: torch.Tensor,
                      k: int, inputs_per_program: int | None = None) -> torch.Tensor:
    """The spline term's gradient w.r.t. ``x``: ``(B, I)`` in ``w``'s dtype (``grad_y (B, O)``
    contiguous; other arguments as in :func:`spline_forward`; ``inputs_per_program``
    overrides the launch heuristic, for tests and tuning)."""
    args, uniform, g = _grid_args(plan, w.dtype)
    n_b, n_in = x.shape
    n_out = w.shape[2]
    gx = torch.empty(n_b, n_in, dtype=w.dtype, device=x.device)
    if n_b == 0:
        return gx
    cfg = backward_x_config(n_b, n_in, n_out, k, g, uniform, inputs_per_program)
    _backward_x[(triton.cdiv(n_b, cfg["BB"]), triton.cdiv(n_in, cfg["IC"]))](
        x, x.stride(0), x.stride(1), w, *args, grad_y, gx, n_b, n_in, n_out, g, **cfg)
    return gx


_SPLIT_BYTES = 1 << 28  # cap on the partial tables of a split batch


def _programs_wanted(device: torch.device) -> int:
    if device.type == "cuda":
        return 4 * torch.cuda.get_device_properties(device).multi_processor_count
    return 1  # the interpreter runs programs one after another: never split


def spline_backward_w(x: torch.Tensor, plan: Any, grad_y: torch.Tensor, k: int,
                      split: int | None = None) -> torch.Tensor:
    """``grad W``: the gradient w.r.t. the scaled table ``W``, ``(I, G + k, O)`` in the plan's
    dtype (``grad_y (B, O)`` contiguous; other arguments as in :func:`spline_forward`;
    ``split`` overrides how many parts the batch is cut into, for tests and tuning)."""
    acc = plan.polys.dtype
    args, uniform, g = _grid_args(plan, acc)
    n_b, n_in = x.shape
    n_out = grad_y.shape[1]
    nb = g + k
    cfg = backward_w_config(n_in, n_out, k, g, uniform,
                            torch.float64 if acc == torch.float64 else grad_y.dtype)
    tiles = triton.cdiv(n_in, cfg["C"]) * triton.cdiv(n_out, cfg["BO"])
    bk = cfg["BK"]
    table_bytes = n_in * nb * n_out * torch.finfo(acc).bits // 8
    split = split or max(1, min(-(-_programs_wanted(x.device) // tiles),
                                triton.cdiv(n_b, 8 * bk), _SPLIT_BYTES // max(1, table_bytes)))
    per_split = triton.cdiv(triton.cdiv(max(n_b, 1), split), bk) * bk
    split = triton.cdiv(max(n_b, 1), per_split)
    out = torch.empty(split, n_in, nb, n_out, dtype=acc, device=x.device)
    if n_b == 0:
        return out.zero_()[0]
    xt = x.t().contiguous()  # (I, B): a program streams its inputs' columns
    _backward_w[(triton.cdiv(n_in, cfg["C"]), triton.cdiv(n_out, cfg["BO"]), split)](
        xt, grad_y, *args, out, n_b, n_in, n_out, g, per_split, **cfg)
    return out[0] if split == 1 else out.sum(0)


# ---- the layer's map, differentiable -------------------------------------------------------

def unavailable_reason(device: torch.device) -> str | None:
    """Why the kernels cannot take tensors on ``device`` here, or ``None`` when they can."""
    if device.type == "cuda":
        if interpreted():
            return ("TRITON_INTERPRET=1 was set when the Triton KAN kernel was loaded: it runs "
                    "in Triton's CPU interpreter and takes CPU tensors only; unset it to run "
                    "on the GPU")
        return None
    if device.type == "cpu":
        if interpreted():
            return None
        return ("the Triton KAN kernel needs CUDA tensors; to run it on the CPU in Triton's "
                "(slow) interpreter set TRITON_INTERPRET=1 before the first KAN layer runs")
    return f"the Triton KAN kernel runs on CUDA devices, not {device.type}"


def _acc_dtype(*tensors: torch.Tensor) -> torch.dtype:
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def _table(coef: torch.Tensor, scale_sp: torch.Tensor, acc: torch.dtype) -> torch.Tensor:
    """``W = coef * scale_sp``: ``(I, G + k, O)`` contiguous in ``acc``."""
    return (coef.to(acc) * scale_sp.t().to(acc).unsqueeze(1)).contiguous()


class _SplineLinear(torch.autograd.Function):
    """Spline term (Triton) + base term and bias (cuBLAS); saves only ``x`` and parameters."""

    @staticmethod
    def forward(ctx, x, coef, scale_sp, scale_base, bias, k, act, plan):  # noqa: D102
        acc = _acc_dtype(x, coef, scale_sp)
        out_dtype = torch.promote_types(x.dtype, coef.dtype)
        init = None
        if act is not None and scale_base is not None:
            a, sb = act(x.to(out_dtype)), scale_base.to(out_dtype).t()
            init = a @ sb if bias is None else torch.addmm(bias.to(out_dtype), a, sb)
        elif bias is not None:
            init = bias.to(out_dtype).expand(x.shape[0], coef.shape[2])
        if init is not None:
            init = init.contiguous()
        y = spline_forward(x, _table(coef, scale_sp, acc), plan, k, init, out_dtype)
        ctx.save_for_backward(x, coef, scale_sp, scale_base)
        ctx.k, ctx.act, ctx.plan, ctx.acc = k, act, plan, acc
        ctx.bias_dtype = None if bias is None else bias.dtype
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y):  # noqa: D102
        x, coef, scale_sp, scale_base = ctx.saved_tensors
        k, act, plan, acc = ctx.k, ctx.act, ctx.plan, ctx.acc
        need_x, need_coef, need_sp, need_base, need_bias = ctx.needs_input_grad[:5]
        g = grad_y.contiguous()
        gx = gcoef = gsp = gbase = gbias = None
        if need_x:
            gx = spline_backward_x(x, _table(coef, scale_sp, acc), plan, g, k)
        if need_coef or need_sp:
            gw = spline_backward_w(x, plan, g, k)  # (I, G + k, O)
            if need_coef:
                gcoef = (gw * scale_sp.t().to(acc).unsqueeze(1)).to(coef.dtype)
            if need_sp:
                gsp = (gw * coef.to(acc)).sum(1).t().to(scale_sp.dtype)
        if act is not None and scale_base is not None and (need_x or need_base):
            with torch.enable_grad():  # recomputed: only x is kept
                xd = x.detach().to(g.dtype).requires_grad_(need_x)
                a = act(xd)
            if need_x:
                (ga,) = torch.autograd.grad(a, xd, g @ scale_base.to(g.dtype))
                gx = gx + ga if gx is not None else ga
            if need_base:
                gbase = (g.t() @ a.detach()).to(scale_base.dtype)
        if need_bias:
            gbias = g.sum(0).to(ctx.bias_dtype)
        if gx is not None:
            gx = gx.to(x.dtype)
        return gx, gcoef, gsp, gbase, gbias, None, None, None


def kan_linear_triton(
    x: torch.Tensor,
    coef: torch.Tensor,
    scale_sp: torch.Tensor,
    scale_base: torch.Tensor | None,
    spline_order: int,
    act: Callable[[torch.Tensor], torch.Tensor] | None,
    plan: Any,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """The KAN layer's map ``act(x) @ scale_base.T + spline term + bias`` on the Triton kernels.

    Args:
        x: ``(batch, in)``.
        coef: ``(in, G + k, out)``.
        scale_sp: masked spline scales ``(out, in)``.
        scale_base: masked base scales ``(out, in)``, or ``None`` for no base term.
        spline_order: ``k``.
        act: the base activation, or ``None``.
        plan: the grid's per-interval quantities in the accumulation dtype (float64 when any
            of ``x``, ``coef``, ``scale_sp`` is, else float32), as :func:`spline_forward` says.
        bias: ``(out,)`` or ``None``.

    Returns:
        ``(batch, out)`` in the promoted dtype of ``x`` and ``coef``. Differentiable once
        w.r.t. ``x``, ``coef``, ``scale_sp``, ``scale_base`` and ``bias``.

    Raises:
        RuntimeError: where the kernels cannot run on these tensors (see
            :func:`unavailable_reason`), or for an unsupported dtype.
    """
    reason = unavailable_reason(x.device)
    if reason is not None:
        raise RuntimeError(reason)
    for name, t in (("x", x), ("coef", coef), ("scale_sp", scale_sp)):
        if t.dtype not in SUPPORTED_DTYPES:
            raise RuntimeError(f"the Triton KAN kernel takes float32, float64, bfloat16 or "
                               f"float16 tensors; {name} is {t.dtype}")
        if t.device != x.device:
            raise RuntimeError(f"{name} is on {t.device} but x is on {x.device}")
    return _SplineLinear.apply(x, coef, scale_sp, scale_base, bias, spline_order, act, plan)
