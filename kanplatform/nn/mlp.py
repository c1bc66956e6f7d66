"""The MLP baseline: fixed activations on nodes, learned linear maps on edges."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from kanplatform.nn.functional import get_activation
from kanplatform.nn.kan import check_width
from kanplatform.nn.registry import register_model

__all__ = ["MLP"]


@register_model("mlp")
class MLP(nn.Module):
    """``Linear -> act -> ... -> Linear`` with widths ``width = [in, hidden..., out]``.

    Initialisation is PyTorch's ``nn.Linear`` default (weights and biases
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``), drawn from ``generator``/``seed`` when given.

    Args:
        width: layer sizes, at least ``[in, out]``.
        activation: hidden activation name (``"silu"``, ``"relu"``, ``"gelu"``, ``"tanh"``...).
        bias: biases on every linear layer.
        seed: seed for a private initialisation generator (the global state is never reset).
        generator: random generator for the initialisation.

    Raises:
        ValueError: naming the bad argument.

    Example:
        >>> MLP(width=[2, 64, 64, 1])(torch.zeros(3, 2)).shape
        torch.Size([3, 1])
    """

    def __init__(
        self,
        width: Sequence[int] = (2, 64, 64, 1),
        activation: str = "silu",
        bias: bool = True,
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.width = check_width(width)
        if activation is None:
            raise ValueError("activation must name an activation, got None")
        self.act = get_activation(activation)
        self.activation = activation
        self.seed = seed
        if seed is not None:
            generator = torch.Generator().manual_seed(int(seed))
        self.layers = nn.ModuleList(
            # skip_init: no draw from the global generator when a seed/generator is given
            nn.utils.skip_init(nn.Linear, a, b, bias=bias)
            for a, b in zip(self.width[:-1], self.width[1:])
        )
        with torch.no_grad():
            for lin in self.layers:
                bound = 1 / math.sqrt(lin.in_features)
                lin.weight.uniform_(-bound, bound, generator=generator)
                if lin.bias is not None:
                    lin.bias.uniform_(-bound, bound, generator=generator)

    def config(self) -> dict[str, Any]:
        """Plain dict that :func:`kanplatform.nn.build_model` turns into this architecture."""
        return {
            "kind": "mlp",
            "width": list(self.width),
            "activation": self.activation,
            "bias": self.layers[0].bias is not None,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: (batch, width[0])`` -> ``(batch, width[-1])``."""
        for i, lin in enumerate(self.layers):
            x = lin(x)
            if i < len(self.layers) - 1:
                x = self.act(x)
        return x
