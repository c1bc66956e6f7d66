"""The Kolmogorov-Arnold Network: a stack of :class:`KANLayer`."""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.modules import module as _module

from kanplatform.kernels import ckernel, clayer
from kanplatform.nn.functional import get_activation
from kanplatform.nn.layer import KANLayer, check_kan_args
from kanplatform.nn.registry import register_model

__all__ = ["KAN", "check_width"]


def check_width(width: Sequence[int]) -> list[int]:
    """Validate a layer-width list (at least two positive integers) and return it as a list."""
    if isinstance(width, (str, bytes)) or not isinstance(width, Sequence):
        raise ValueError(f"width must be a list of layer sizes, got {width!r}")
    width = list(width)
    if len(width) < 2:
        raise ValueError(f"width needs at least two entries (inputs, outputs), got {width!r}")
    if any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in width):
        raise ValueError(f"width entries must be integers >= 1, got {width!r}")
    return width


@register_model("kan")
class KAN(nn.Module):
    """A KAN of widths ``width = [in, hidden..., out]`` (pykan's formulation, fast layers).

    Args:
        width: layer sizes, at least ``[in, out]``.
        grid_size: grid intervals ``G >= 1`` of every layer.
        spline_order: B-spline order ``k >= 1``.
        grid_range: initial inner grid range ``(lo, hi)``.
        base_activation: base function name or ``None``.
        grid_eps: uniform share of adaptive grids (:meth:`update_grid`).
        noise_scale: spline initialisation scale (see :class:`KANLayer`).
        bias: per-node output biases.
        seed: seed for a private generator used for the initialisation (``None``: draw from
            ``generator``, else from the global generator; the global state is never reset).
        generator: random generator for the initialisation.

    Raises:
        ValueError: naming the bad argument.

    Example:
        >>> kan = KAN(width=[2, 1, 1], grid_size=5, spline_order=3)
        >>> kan(torch.rand(8, 2)).shape
        torch.Size([8, 1])
        >>> fine = kan.extend_grid(10)  # a new model, same function
    """

    def __init__(
        self,
        width: Sequence[int] = (2, 1, 1),
        grid_size: int = 5,
        spline_order: int = 3,
        grid_range: tuple[float, float] = (-1.0, 1.0),
        base_activation: str | None = "silu",
        grid_eps: float = 0.02,
        noise_scale: float = 0.3,
        bias: bool = True,
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.width = check_width(width)
        check_kan_args(grid_size, spline_order, grid_range, grid_eps)
        get_activation(base_activation)
        if seed is not None:
            generator = torch.Generator().manual_seed(int(seed))
        self._init = {
            "grid_range": (float(grid_range[0]), float(grid_range[1])),
            "base_activation": base_activation,
            "grid_eps": float(grid_eps),
            "noise_scale": float(noise_scale),
            "bias": bool(bias),
        }
        self.seed = seed
        self.layers = nn.ModuleList(
            KANLayer(a, b, grid_size, spline_order, generator=generator, **self._init)
            for a, b in zip(self.width[:-1], self.width[1:])
        )

    @property
    def grid_size(self) -> int:
        """Current number of grid intervals (the same in every layer)."""
        return self.layers[0].grid_size

    @property
    def spline_order(self) -> int:
        return self.layers[0].spline_order

    def config(self) -> dict[str, Any]:
        """Plain dict that :func:`kanplatform.nn.build_model` turns into this architecture.

        Includes the current grid size; adapted knots live in the ``state_dict`` (buffers).
        """
        return {
            "kind": "kan",
            "width": list(self.width),
            "grid_size": self.grid_size,
            "spline_order": self.spline_order,
            "grid_range": list(self._init["grid_range"]),
            "base_activation": self._init["base_activation"],
            "grid_eps": self._init["grid_eps"],
            "noise_scale": self._init["noise_scale"],
            "bias": self._init["bias"],
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: (batch, width[0])`` -> ``(batch, width[-1])``.

        A small KAN on the compiled CPU kernels (every layer on the whole-layer kernels of
        :mod:`kanplatform.kernels.clayer`, unpruned, no hooks on its layers, no autocast)
        runs as one autograd node, one C call per direction
        (:class:`~kanplatform.kernels.clayer.NetworkFunction`): the same numbers as layer by
        layer, without a node and its Python per layer; any other runs its layers."""
        plan = self._network_plan(x)
        if plan is not None:
            x = x if x.is_contiguous() else x.contiguous()
            return clayer.NetworkFunction.apply(x, plan, *plan.params())
        for layer in self.layers:
            x = layer(x)
        return x

    def _network_plan(self, x: torch.Tensor) -> clayer.NetworkPlan | None:
        """The one-call plan for this input, or ``None`` where the layers must run one by
        one; kept while every tensor it binds is the same object at the same address and
        the grids and masks are unchanged (their version counters)."""
        layers = self.layers
        if (x.dim() != 2 or x.shape[1] != layers[0].in_features
                or torch.is_autocast_enabled(x.device.type)
                or _module._global_forward_hooks or _module._global_forward_pre_hooks
                or _module._global_backward_hooks or _module._global_backward_pre_hooks):
            return None
        key: list[Any] = [os.environ.get(ckernel.KERNEL_ENV), x.dtype, x.device, x.shape[1]]
        for layer in layers:
            if (type(layer) is not KANLayer or layer._forward_hooks
                    or layer._forward_pre_hooks or layer._backward_hooks
                    or layer._backward_pre_hooks):
                return None
            params, buffers = layer._parameters, layer._buffers
            for t in (params["coef"], params["scale_sp"], params.get("scale_base"),
                      params.get("bias"), buffers["grid"], buffers["mask"]):
                key += (None, 0) if t is None else (id(t), t.data_ptr())
            key += (buffers["grid"]._version, buffers["mask"]._version, layer.spline_order,
                    layer.base_activation)
        hit = self.__dict__.get("_network_cache")
        if hit is None or hit[0] != key:
            hit = (key, self._build_network_plan(x), list(self.parameters()),
                   list(self.buffers()))  # alive while their ids are in the key
            self.__dict__["_network_cache"] = hit
        return hit[1]

    def _build_network_plan(self, x: torch.Tensor) -> clayer.NetworkPlan | None:
        layers = list(self.layers)
        k = layers[0].spline_order
        specs = []
        for layer in layers:
            sp, sb = layer._scales()
            if sb is not None and layer.base_activation is None:
                sb = None
            params = [layer.grid, layer.coef, sp, *[t for t in (sb, layer.bias) if t is not None]]
            if (layer.spline_order != k or not layer._mask_is_ones()
                    or layer._backend(x, tuple(params)) != "c"
                    or not ckernel.supports(x, *params)
                    or not all(t.is_contiguous() for t in params)
                    or not clayer.fits(layer.in_features, layer.out_features, layer.grid_size,
                                       k, x.dtype, layer.base_activation)):
                return None
            specs.append({"plan": layer._grid_plan(), "coef": layer.coef, "sp": sp, "sb": sb,
                          "bias": layer.bias})
        return clayer.NetworkPlan(specs, k)

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_network_cache"}

    def layer_inputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Inputs of every layer (``x`` first), ``[(batch, width[l])]``, by the fast path."""
        inputs = [x]
        for layer in self.layers[:-1]:
            inputs.append(layer(inputs[-1]))
        return inputs

    def edge_activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per-edge outputs of every layer: ``[(batch, width[l+1], width[l])]``.

        Differentiable; used by regularisation, plots and pruning (never by ``forward``).
        """
        acts = []
        for layer in self.layers:
            phi = layer.edge_activations(x)
            acts.append(phi)
            x = phi.sum(-1) if layer.bias is None else phi.sum(-1) + layer.bias
        return acts

    @torch.no_grad()
    def update_grid(self, x: torch.Tensor) -> None:
        """Adapt every layer's grid to the samples, in place (see :meth:`KANLayer.update_grid`).

        Args:
            x: samples ``(n, width[0])``.
        """
        for layer in self.layers:
            layer.update_grid(x)
            x = layer(x)

    @torch.no_grad()
    def extend_grid(self, new_grid_size: int, x: torch.Tensor | None = None) -> KAN:
        """A new KAN on ``new_grid_size`` intervals computing the same function.

        Knots are refined from the current ones (adaptive density kept; every old knot kept
        when refining), coefficients fitted by least squares on points spread over every new
        interval plus the samples ``x`` (optional). Refining is exact up to rounding.

        Args:
            new_grid_size: the new ``G``.
            x: optional samples ``(n, width[0])`` added to the fit.

        Returns:
            The new model (``self`` is unchanged), on ``self``'s device and dtype.
        """
        new = copy.deepcopy(self)
        inputs = self.layer_inputs(x) if x is not None else [None] * len(self.layers)
        for layer, xi in zip(new.layers, inputs):
            layer.set_grid_size(new_grid_size, xi)
        return new
