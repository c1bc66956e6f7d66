"""A small plain-PyTorch LBFGS trainer with the KAN paper's regularisation, for tests only."""

from __future__ import annotations

import math

import torch


def exp_sin_sq(x: torch.Tensor) -> torch.Tensor:
    """f(x, y) = exp(sin(πx) + y²), ``(n, 2) -> (n, 1)``."""
    return torch.exp(torch.sin(math.pi * x[:, :1]) + x[:, 1:] ** 2)


def _penalty(x: torch.Tensor, acts, entropy: float) -> torch.Tensor:
    """pykan 0.2.8's penalty (kanplatform.nn.regularization, variant "pykan"), from ``acts``."""
    reg = acts[0].new_zeros(())
    h = x
    for phi in acts:
        a = phi.std(0) / (h.std(0) + 0.1)  # (out, in)
        p_row = a / (a.sum(1, keepdim=True) + 1)
        p_col = a / (a.sum(0, keepdim=True) + 1)
        h_row = -(p_row * torch.log2(p_row + 1e-4)).sum(1).mean()
        h_col = -(p_col * torch.log2(p_col + 1e-4)).sum(0).mean()
        reg = reg + a.sum() + entropy * (h_row + h_col)
        h = phi.sum(-1)
    return reg


def train_lbfgs(model, x, y, steps: int = 50, lamb: float = 0.0, update_grid: bool = True,
                entropy: float = 2.0):
    """Full-batch LBFGS (paper recipe: lr 1, strong Wolfe, history 10, grid updates early)."""
    opt = torch.optim.LBFGS(model.parameters(), lr=1.0, history_size=10,
                            line_search_fn="strong_wolfe", max_iter=20,
                            tolerance_grad=1e-32, tolerance_change=1e-32)

    def closure():
        opt.zero_grad()
        acts = model.edge_activations(x)  # one pass gives the output and the penalty
        out = acts[-1].sum(-1)
        if model.layers[-1].bias is not None:
            out = out + model.layers[-1].bias
        loss = torch.mean((out - y) ** 2)
        if lamb:
            loss = loss + lamb * _penalty(x, acts, entropy)
        loss.backward()
        return loss

    for step in range(steps):
        if update_grid and step % 5 == 0 and step < steps // 2:
            model.update_grid(x)
        opt.step(closure)
    with torch.no_grad():
        return float(torch.sqrt(torch.mean((model(x) - y) ** 2)))
