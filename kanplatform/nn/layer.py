"""The KAN layer: one learnable 1-D function on every edge, summed at every output node."""

from __future__ import annotations

import math
import os

import torch
from torch import nn

from kanplatform.kernels import ckernel, spline_backend
from kanplatform.nn.basis import bspline_basis, grid_size_of, uniform_grid
from kanplatform.nn.functional import (
    CompactLocal,
    GridPlan,
    _KANLinearC,
    compact_local,
    get_activation,
    grid_plan,
    kan_linear,
    kan_linear_compact,
    kan_linear_dense,
)
from kanplatform.nn.grid import adaptive_grid, interval_points, refine_grid, refit_coef

__all__ = ["KANLayer", "check_kan_args"]

def check_kan_args(
    grid_size: int, spline_order: int, grid_range: tuple[float, float], grid_eps: float
) -> None:
    """Raise ``ValueError`` naming the first bad grid argument."""
    if isinstance(grid_size, bool) or not isinstance(grid_size, int) or grid_size < 1:
        raise ValueError(f"grid_size must be an integer >= 1, got {grid_size!r}")
    if isinstance(spline_order, bool) or not isinstance(spline_order, int) or spline_order < 1:
        raise ValueError(f"spline_order must be an integer >= 1, got {spline_order!r}")
    try:
        lo, hi = (float(v) for v in grid_range)
    except (TypeError, ValueError):
        raise ValueError(f"grid_range must be two numbers (lo, hi), got {grid_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"grid_range must be finite and increasing (lo < hi), got {grid_range!r}")
    if not 0.0 <= float(grid_eps) <= 1.0:
        raise ValueError(f"grid_eps must lie in [0, 1], got {grid_eps!r}")


class KANLayer(nn.Module):
    """A KAN layer ``y_o = sum_i phi_oi(x_i) + bias_o`` with B-spline edge functions.

    Each edge is ``phi_oi(x) = mask_oi * (scale_base_oi * base(x) + scale_sp_oi * spline_oi(x))``
    with ``spline_oi(x) = sum_m coef[i, m, o] * B_m(x)``, ``G + k`` B-splines of order ``k`` on
    input ``i``'s knots (pykan's formulation).

    **Outside the grid** (the inner range ``[t_k, t_{G+k}]``) each spline continues linearly
    along its tangent at the nearest end (value and slope kept): it neither vanishes, as pykan's
    does beyond the extension knots, nor grows like a cubic; the base term ``base(x)`` continues
    as usual. ``update_grid`` moves the range to the data.

    **Initialisation** (pykan-like, all draws from ``generator`` if given, never reseeding):
    ``coef ~ U(-1/2, 1/2) * noise_scale / G``, ``scale_base ~ U(-1, 1) / sqrt(in)``,
    ``scale_sp = 1 / sqrt(in)``, ``bias = 0``, ``mask = 1``.

    Parameters: ``coef (in, G + k, out)``, ``scale_base (out, in)`` (absent when
    ``base_activation is None``), ``scale_sp (out, in)``, ``bias (out,)`` (if ``bias``).
    Buffers: ``grid (in, G + 2k + 1)`` knots, ``mask (out, in)`` (pruning zeroes entries).

    Args:
        in_features, out_features: layer sizes.
        grid_size: number of grid intervals ``G >= 1``.
        spline_order: ``k >= 1`` (3 = cubic).
        grid_range: inner grid range ``(lo, hi)``, ``lo < hi``.
        base_activation: ``"silu"`` (default), another name from
            :data:`kanplatform.nn.functional.ACTIVATIONS`, or ``None`` for no base term.
        grid_eps: uniform share of the adaptive grid in :meth:`update_grid`.
        noise_scale: spline initialisation scale.
        bias: learn a per-output bias.
        generator: random generator for the initialisation.

    Raises:
        ValueError: naming the bad argument.

    Example:
        >>> layer = KANLayer(2, 3, grid_size=5)
        >>> layer(torch.zeros(4, 2)).shape
        torch.Size([4, 3])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        grid_size: int = 5,
        spline_order: int = 3,
        grid_range: tuple[float, float] = (-1.0, 1.0),
        base_activation: str | None = "silu",
        grid_eps: float = 0.02,
        noise_scale: float = 0.3,
        bias: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        check_kan_args(grid_size, spline_order, grid_range, grid_eps)
        get_activation(base_activation)  # validates the name
        self.in_features, self.out_features = in_features, out_features
        self.spline_order = spline_order
        self.grid_range = (float(grid_range[0]), float(grid_range[1]))
        self.base_activation = base_activation
        self.grid_eps = float(grid_eps)
        self.noise_scale = float(noise_scale)
        g, k = grid_size, spline_order
        self.register_buffer("grid", uniform_grid(in_features, g, k, self.grid_range))
        self.register_buffer("mask", torch.ones(out_features, in_features))
        gen = {"generator": generator}
        coef = (torch.rand(in_features, g + k, out_features, **gen) - 0.5) * noise_scale / g
        self.coef = nn.Parameter(coef)
        self.scale_sp = nn.Parameter(torch.full((out_features, in_features), in_features**-0.5))
        if base_activation is not None:
            sb = (torch.rand(out_features, in_features, **gen) * 2 - 1) * in_features**-0.5
            self.scale_base = nn.Parameter(sb)
        else:
            self.register_parameter("scale_base", None)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    @property
    def grid_size(self) -> int:
        """Current number of grid intervals ``G``."""
        return grid_size_of(self.grid, self.spline_order)

    def _scales(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self._mask_is_ones():  # unpruned: skip two products (and their backward)
            return self.scale_sp, self.scale_base
        sp = self.scale_sp * self.mask
        sb = None if self.scale_base is None else self.scale_base * self.mask
        return sp, sb

    def _cached(self, name: str, key: tuple, make):  # noqa: ANN001, ANN202
        """``make()``, kept in ``name`` while every entry of ``key`` is the same object (tensors
        paired with their version counter). Caches are dropped from pickles and copies."""
        cache = self.__dict__.get(name)
        if cache is None or len(cache[0]) != len(key) or any(
            a is not b for a, b in zip(cache[0], key)
        ) or cache[1] != [t._version for t in key if isinstance(t, torch.Tensor)]:
            cache = (key, [t._version for t in key if isinstance(t, torch.Tensor)], make())
            self.__dict__[name] = cache
        return cache[2]

    def _mask_is_ones(self) -> bool:
        mask = self.mask
        return self._cached("_mask_cache", (mask,), lambda: bool((mask == 1).all()))

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if not k.endswith("_cache")}

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(
                f"expected x of shape (batch, {self.in_features}), got {tuple(x.shape)}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: (batch, in)`` -> ``(batch, out)`` by the backend
        :func:`kanplatform.kernels.spline_backend` picks for these tensors (the Triton kernels
        on CUDA, the compiled kernels on CPU where they build, else the compact path for small
        layers and the PyTorch sparse path for the rest: all the same function).

        Under autocast (``bf16-mixed`` training) the layer computes in its own dtype: the
        kernels take float32/float64 tensors, and a spline's local polynomial loses its
        digits in bfloat16; the layers around it still autocast."""
        if torch.is_autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                return self.forward(x.to(self.grid.dtype))
        self._check(x)
        sp, sb = self._scales()
        k = self.spline_order
        params = (self.grid, self.coef, sp) if sb is None else (self.grid, self.coef, sp, sb)
        backend = self._backend(x, params)
        if backend == "c":  # spline_backend checked what kan_linear would check again
            return _KANLinearC.apply(x, self.coef, sp, sb, self.bias, k, self.base_activation,
                                     self._grid_plan())
        if backend == "compact":
            plan = self._grid_plan()
            local = None
            if torch.is_grad_enabled() and not x.requires_grad:  # e.g. a first layer in training:
                local = self._local(x, plan)  # the same x in every LBFGS closure
            return kan_linear_compact(x, self.grid, self.coef, sp, sb, k, self.base_activation,
                                      plan=plan, local=local, bias=self.bias)
        return kan_linear(x, self.grid, self.coef, sp, sb, k, self.base_activation,
                          plan=self._grid_plan(), bias=self.bias, backend=backend)

    def _backend(self, x: torch.Tensor, params: tuple[torch.Tensor, ...]) -> str:
        """:func:`~kanplatform.kernels.spline_backend` for these tensors, kept while all it
        reads is the same (the kernel setting, the library, devices, dtypes, batch size): asked
        afresh, it and ``kan_linear``'s own checks cost as much as a small layer's kernels."""
        key = (os.environ.get(ckernel.KERNEL_ENV), ckernel._state.get("lib"), x.shape[0],
               x.device, x.dtype, *[(p.device, p.dtype) for p in params])
        hit = self.__dict__.get("_backend_cache")
        if hit is None or hit[0] != key:
            hit = self.__dict__["_backend_cache"] = (key, spline_backend(
                x, params, self.out_features, self.spline_order))
        return hit[1]

    def forward_fast(self, x: torch.Tensor, backend: str = "auto") -> torch.Tensor:
        """Same map by the fast sparse path whatever the size (``backend`` as in
        :func:`~kanplatform.nn.functional.kan_linear`: ``"auto"``, ``"c"``, ``"torch"`` or
        ``"triton"``)."""
        self._check(x)
        sp, sb = self._scales()
        return kan_linear(x, self.grid, self.coef, sp, sb, self.spline_order,
                          self.base_activation, plan=self._grid_plan(), bias=self.bias,
                          backend=backend)

    def _grid_plan(self) -> GridPlan:
        """The compact path's per-grid quantities, cached until the grid tensor is replaced or
        changed in place (its version counter moves)."""
        grid = self.grid
        return self._cached("_plan_cache", (grid,), lambda: grid_plan(grid, self.spline_order))

    def _local(self, x: torch.Tensor, plan: GridPlan) -> CompactLocal:
        """The compact path's per-point quantities of ``x``, cached while ``x`` and the grid
        hold."""
        return self._cached("_local_cache", (x, plan), lambda: compact_local(
            x, plan, self.spline_order, self.base_activation))

    def forward_dense(self, x: torch.Tensor) -> torch.Tensor:
        """Same map by the dense reference formulation (full basis @ weight table)."""
        self._check(x)
        sp, sb = self._scales()
        y = kan_linear_dense(
            x, self.grid, self.coef, sp, sb, self.spline_order, self.base_activation
        )
        return y if self.bias is None else y + self.bias

    def spline(self, x: torch.Tensor) -> torch.Tensor:
        """Unscaled edge splines ``spline_oi(x_i)``: ``(batch, out, in)``."""
        self._check(x)
        basis = bspline_basis(x, self.grid, self.spline_order)  # (B, I, G+k)
        return torch.einsum("bim,imo->boi", basis, self.coef)

    def edge_activations(self, x: torch.Tensor) -> torch.Tensor:
        """Per-edge outputs ``phi_oi(x_i)`` (mask and scales included): ``(batch, out, in)``.

        Summing over ``in`` and adding ``bias`` gives ``forward(x)``. On demand only: it
        builds the ``(batch, out, in)`` tensor the forward pass avoids.
        """
        sp, sb = self._scales()
        phi = sp * self.spline(x)  # (B, O, I)
        act = get_activation(self.base_activation)
        if act is not None:
            phi = phi + sb * act(x).unsqueeze(1)
        return phi

    def input_range(self) -> torch.Tensor:
        """The grid's inner range per input, ``(in, 2)``: where the splines are not clamped."""
        k, g = self.spline_order, self.grid_size
        return self.grid[:, [k, g + k]].detach().clone()

    @torch.no_grad()
    def update_grid(self, x: torch.Tensor) -> None:
        """Adapt the grid to samples ``x: (n, in)`` in place, refitting the coefficients.

        New knots mix sample quantiles with a uniform grid on ``[min x, max x]``
        (``grid_eps``); the coefficients are the least-squares fit, on the samples, of the
        current splines. Exact whenever the current splines are representable on the new knots;
        otherwise the least-squares projection. Grid size is unchanged.
        """
        self._check(x)
        x = x.to(self.grid.dtype)
        new_grid = adaptive_grid(x, self.grid_size, self.spline_order, self.grid_eps)
        self.coef.copy_(refit_coef(x, self.grid, self.coef, new_grid, self.spline_order))
        self.grid.copy_(new_grid)

    @torch.no_grad()
    def set_grid_size(self, new_grid_size: int, x: torch.Tensor | None = None) -> None:
        """Change to ``new_grid_size`` intervals in place, keeping the function.

        Knots come from :func:`~kanplatform.nn.grid.refine_grid`; coefficients are fitted to
        the current splines on ``k + 1`` points in every new interval plus the samples ``x``
        (optional). For ``new_grid_size >= grid_size`` the result is exact up to rounding
        everywhere; coarsening is a least-squares approximation.
        """
        check_kan_args(new_grid_size, self.spline_order, self.grid_range, self.grid_eps)
        new_grid = refine_grid(self.grid, self.spline_order, new_grid_size)
        pts = interval_points(new_grid, self.spline_order, self.spline_order + 1)
        if x is not None:
            self._check(x)
            pts = torch.cat([pts, x.detach().to(pts.dtype)])
        coef = refit_coef(pts, self.grid, self.coef, new_grid, self.spline_order)
        self.grid = new_grid
        self.coef = nn.Parameter(coef, requires_grad=self.coef.requires_grad)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"grid_size={self.grid_size}, spline_order={self.spline_order}, "
            f"base_activation={self.base_activation!r}"
        )
