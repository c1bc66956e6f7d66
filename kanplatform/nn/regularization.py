"""Sparsity regularisation of KAN edge activations (L1 + entropy), two variants.

* ``"paper"`` (Liu et al. 2024, eq. 2.17-2.20): per layer, ``|phi|_1 = mean_b |phi(x_b)|`` per
  edge, ``|Phi|_1 = sum |phi|_1``, ``S = -sum p log p`` with ``p = |phi|_1 / |Phi|_1``;
  ``lamb * sum_layers (lamb_l1 * |Phi|_1 + lamb_entropy * S)``.
* ``"pykan"`` (pykan 0.2.8, ``reg_metric="edge_forward_spline_n"``): per edge
  ``a = std_b(phi) / (std_b(x_i) + 0.1)``; per layer ``lamb_l1 * sum a`` plus
  ``lamb_entropy * (H_row + H_col)`` with ``p_row = a / (sum_in a + 1)``,
  ``p_col = a / (sum_out a + 1)``, ``H = -mean(sum p log2(p + 1e-4))``.
"""

from __future__ import annotations

import torch
from torch import nn

from kanplatform.nn.kan import KAN

__all__ = ["regularization"]

_TINY = 1e-12


def _paper_layer(phi: torch.Tensor, lamb_l1: float, lamb_entropy: float) -> torch.Tensor:
    l1 = phi.abs().mean(0)  # (out, in)
    total = l1.sum()
    p = l1 / (total + _TINY)
    entropy = -(p * torch.log(p + _TINY)).sum()
    return lamb_l1 * total + lamb_entropy * entropy


def _pykan_layer(
    phi: torch.Tensor, x: torch.Tensor, lamb_l1: float, lamb_entropy: float
) -> torch.Tensor:
    a = phi.std(0) / (x.std(0) + 0.1)  # (out, in) / (in,)
    p_row = a / (a.sum(1, keepdim=True) + 1)
    p_col = a / (a.sum(0, keepdim=True) + 1)
    h_row = -(p_row * torch.log2(p_row + 1e-4)).sum(1).mean()
    h_col = -(p_col * torch.log2(p_col + 1e-4)).sum(0).mean()
    return lamb_l1 * a.sum() + lamb_entropy * (h_row + h_col)


def regularization(
    model: nn.Module,
    x: torch.Tensor,
    lamb: float = 1.0,
    lamb_l1: float = 1.0,
    lamb_entropy: float = 2.0,
    variant: str = "paper",
) -> torch.Tensor:
    """Sparsity penalty of a KAN's edge activations on the batch ``x`` (a scalar).

    Differentiable w.r.t. every parameter. For models without edge activations (an MLP) the
    result is a zero that is still connected to the parameters.

    Args:
        model: a :class:`KAN` (or any model; non-KANs give 0).
        x: batch ``(batch, width[0])``; ``batch >= 2`` for ``"pykan"`` (standard deviations).
        lamb: overall weight ``lambda``.
        lamb_l1, lamb_entropy: ``mu_1`` and ``mu_2``.
        variant: ``"paper"`` or ``"pykan"`` (see the module docstring).

    Raises:
        ValueError: for an unknown ``variant``.

    Example:
        >>> kan = KAN(width=[2, 3, 1])
        >>> regularization(kan, torch.rand(16, 2), lamb=1e-3).shape
        torch.Size([])
    """
    if variant not in ("paper", "pykan"):
        raise ValueError(f"variant must be 'paper' or 'pykan', got {variant!r}")
    if not isinstance(model, KAN):
        params = [p for p in model.parameters() if p.requires_grad]
        return sum((p.sum() * 0 for p in params), x.new_zeros(()))
    reg = x.new_zeros(())
    h = x
    for layer in model.layers:
        phi = layer.edge_activations(h)  # (B, out, in)
        if variant == "paper":
            reg = reg + _paper_layer(phi, lamb_l1, lamb_entropy)
        else:
            reg = reg + _pykan_layer(phi, h, lamb_l1, lamb_entropy)
        h = phi.sum(-1) if layer.bias is None else phi.sum(-1) + layer.bias
    return lamb * reg
