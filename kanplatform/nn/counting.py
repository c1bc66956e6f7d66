"""Parameter and FLOP counts, and MLP widths matched to a KAN's budget.

Conventions (``convention=`` argument; per layer ``in -> out``, grid ``G``, order ``k``):

**Parameters**

* ``"trainable"`` (default): the trainable scalars the model really holds. KAN layer:
  ``in*out*(G+k)`` spline coefficients + ``in*out`` spline scales ``w_s`` + ``in*out`` base
  scales ``w_b`` (only with a base activation) + ``out`` biases (only with ``bias``), i.e.
  ``in*out*(G+k+2) + out`` by default. MLP layer: ``in*out + out``. The grid knots and the
  edge mask are buffers, not parameters.
* ``"fairer"``: Yu et al., "KAN or MLP: A Fairer Comparison" (their released code):
  ``in*out*(G+k+2) + out``, plus ``in*out`` with a base function. MLP as above.
* ``"paper"``: Liu et al. count ``G`` per edge: ``in*out*G`` (no scales, no biases).

**FLOPs** (forward pass, per sample; a multiply-add is 2 FLOPs)

* ``"fairer"`` (default), Yu et al.'s formula: KAN layer
  ``in*out*(9k(G + 1.5k) + 2G - 2.5k + 1)`` for the per-edge B-spline evaluation and
  combination, plus, with a base function, ``F(act)*in + 2*in*out``. MLP layer
  ``2*in*out + F(act)*out`` (no activation term on the output layer, which has none).
  ``F`` = FLOPs of one activation: relu 1, sigmoid 4, silu 5, tanh 6, gelu 14, identity 0.
* ``"implementation"``: what our fast path does. Per input the ``k+1`` non-zero bases by
  de Boor (``5*k(k+1)/2`` FLOPs, clamp and interval search not counted); per edge ``2(k+1)``
  for the spline sum and ``2`` for the base term; ``F(act)*in``; ``out`` for the bias.
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from kanplatform.nn.kan import KAN
from kanplatform.nn.layer import KANLayer
from kanplatform.nn.mlp import MLP

__all__ = [
    "ACTIVATION_FLOPS",
    "count_flops",
    "count_params",
    "match_mlp",
    "mlp_flops",
    "mlp_params",
]

ACTIVATION_FLOPS = {"identity": 0, "relu": 1, "sigmoid": 4, "silu": 5, "tanh": 6, "gelu": 14}
_PARAM_CONVENTIONS = ("trainable", "fairer", "paper")
_FLOP_CONVENTIONS = ("fairer", "implementation")


def _act_flops(name: str | None) -> int:
    return 0 if name is None else ACTIVATION_FLOPS[name]


def mlp_params(width: list[int]) -> int:
    """Parameters of ``MLP(width)`` with biases: ``sum (in + 1) * out``."""
    return sum((a + 1) * b for a, b in zip(width[:-1], width[1:]))


def mlp_flops(width: list[int], activation: str = "silu") -> int:
    """Forward FLOPs per sample of ``MLP(width, activation)``: ``sum 2*in*out + F(act)*out``
    over layers, without the activation term on the output layer."""
    pairs = list(zip(width[:-1], width[1:]))
    total = sum(2 * a * b for a, b in pairs)
    return total + sum(_act_flops(activation) * b for _, b in pairs[:-1])


def count_params(model: nn.Module, convention: str = "trainable") -> int:
    """Number of parameters of ``model`` under ``convention`` (see the module docstring).

    Example:
        >>> count_params(KAN(width=[2, 1], grid_size=5, spline_order=3))  # 2*(5+3+2) + 1
        21
    """
    if convention not in _PARAM_CONVENTIONS:
        raise ValueError(f"convention must be one of {_PARAM_CONVENTIONS}, got {convention!r}")
    if convention == "trainable" or not isinstance(model, KAN):
        return sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = 0
    for layer in model.layers:
        edges = layer.in_features * layer.out_features
        g, k = layer.grid_size, layer.spline_order
        if convention == "paper":
            total += edges * g
        else:
            total += edges * (g + k + 2) + layer.out_features
            total += edges if layer.base_activation is not None else 0
    return total


def _kan_layer_flops(layer: KANLayer, convention: str) -> int:
    n_in, n_out = layer.in_features, layer.out_features
    g, k, act = layer.grid_size, layer.spline_order, layer.base_activation
    edges = n_in * n_out
    base = _act_flops(act) * n_in + 2 * edges if act is not None else 0
    if convention == "fairer":
        return round(edges * (9 * k * (g + 1.5 * k) + 2 * g - 2.5 * k + 1)) + base
    bias = n_out if layer.bias is not None else 0
    return n_in * (5 * k * (k + 1) // 2) + edges * 2 * (k + 1) + base + bias


def count_flops(model: nn.Module, convention: str = "fairer") -> int:
    """Forward FLOPs per sample of a :class:`KAN` or :class:`MLP` (see the module docstring).

    Other modules are counted from their :class:`KANLayer` and ``nn.Linear`` submodules
    (``2 * in * out`` each; activations not counted).

    Raises:
        ValueError: for an unknown ``convention``.
        TypeError: for a model with neither KAN layers nor linear layers.

    Example:
        >>> count_flops(MLP(width=[2, 3, 1]))  # 2*2*3 + 5*3 + 2*3*1
        33
    """
    if convention not in _FLOP_CONVENTIONS:
        raise ValueError(f"convention must be one of {_FLOP_CONVENTIONS}, got {convention!r}")
    if isinstance(model, MLP):
        return mlp_flops(model.width, model.activation)
    total, found = 0, False
    for module in model.modules():
        if isinstance(module, KANLayer):
            total, found = total + _kan_layer_flops(module, convention), True
        elif isinstance(module, nn.Linear):
            total, found = total + 2 * module.in_features * module.out_features, True
    if not found:
        raise TypeError(f"count_flops found no KAN or linear layers in {type(model).__name__}")
    return total


def match_mlp(
    kan_or_budget: KAN | int | float,
    depth: int | None = None,
    by: str = "params",
    in_features: int | None = None,
    out_features: int | None = None,
    activation: str = "silu",
    convention: str | None = None,
) -> list[int]:
    """Width list of the MLP with ``depth`` equal hidden layers closest to a budget.

    Args:
        kan_or_budget: a :class:`KAN` (its parameter or FLOP count is the budget; its input
            and output sizes and hidden-layer count are the defaults) or a number.
        depth: hidden layers (default: the KAN's, at least 1; 1 for a bare budget).
        by: ``"params"`` (:func:`count_params`) or ``"flops"`` (:func:`count_flops`).
        in_features, out_features: MLP input/output sizes (required for a bare budget).
        activation: MLP activation (enters the FLOP count).
        convention: counting convention for the KAN (default ``"trainable"`` for params,
            ``"fairer"`` for FLOPs); the MLP count is the same under all of them.

    Returns:
        ``[in_features, h, ..., h, out_features]`` with ``h >= 1`` minimising
        ``|budget(MLP) - budget|`` (ties: the smaller ``h``).

    Raises:
        ValueError: for a bad ``by``, ``depth`` or missing sizes.

    Example:
        >>> match_mlp(100, depth=1, in_features=2, out_features=1)  # 4h + 1 ~ 100
        [2, 25, 1]
    """
    if by not in ("params", "flops"):
        raise ValueError(f"by must be 'params' or 'flops', got {by!r}")
    if isinstance(kan_or_budget, nn.Module):
        model = kan_or_budget
        width = getattr(model, "width", None)
        if width is None:
            raise ValueError("kan_or_budget must be a KAN/MLP (with .width) or a number")
        in_features = width[0] if in_features is None else in_features
        out_features = width[-1] if out_features is None else out_features
        depth = max(1, len(width) - 2) if depth is None else depth
        if by == "params":
            budget = count_params(model, convention or "trainable")
        else:
            budget = count_flops(model, convention or "fairer")
    else:
        budget = float(kan_or_budget)
        depth = 1 if depth is None else depth
    if in_features is None or out_features is None:
        raise ValueError("in_features and out_features are required with a bare budget")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be an integer >= 1, got {depth!r}")

    def cost(h: int) -> int:
        w = [in_features] + [h] * depth + [out_features]
        return mlp_params(w) if by == "params" else mlp_flops(w, activation)

    # cost(h) is increasing in h: bracket the budget, then bisect
    hi = 1
    while cost(hi) < budget:
        hi *= 2
    lo = max(1, hi // 2)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if cost(mid) < budget else (lo, mid)
    best = min((lo, hi), key=lambda h: (abs(cost(h) - budget), h))
    return [in_features] + [best] * depth + [out_features]


def budget_report(model: nn.Module) -> dict[str, Any]:
    """``{"model/params": ..., "model/flops": ...}`` under the default conventions."""
    flops = count_flops(model) if isinstance(model, (KAN, MLP)) else math.nan
    return {"model/params": count_params(model), "model/flops": flops}
