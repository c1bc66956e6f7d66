"""Optimisers by name: ``lbfgs`` (full batch, strong Wolfe;
:class:`~kanplatform.train.lbfgs.FlatLBFGS`), ``adam``, ``adamw``.

Adam and AdamW run torch's fused kernel (``fused=True``) wherever the parameters allow it
(floating-point tensors on CPU or CUDA): one C++ call for every parameter tensor instead of a
dozen tensor ops each. A small KAN has 4 tensors a layer, and at batch 256 the default
per-tensor loop cost a third of its step (``benchmarks/README.md``). The fused update is
torch's Adam to rounding (a different operation order, ~1 ulp), the same for every way of
grouping the parameters into tensors.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


def make_optimizer(params: Iterable[torch.nn.Parameter], optim: Any) -> torch.optim.Optimizer:
    """Build the optimiser an ``optim`` config section names.

    Args:
        params: the parameters to optimise.
        optim: the ``optim`` section (``name``, ``lr``, ``weight_decay``; LBFGS:
            ``history_size``, ``max_iter``, ``line_search``, ``tolerance_grad``,
            ``tolerance_change``).

    Raises:
        ValueError: an unknown optimiser name.
    """
    name = optim.name
    params = list(params)
    if name == "lbfgs":
        from kanplatform.train.lbfgs import FlatLBFGS

        # torch.optim.LBFGS's iterates exactly, with one flat parameter vector
        return FlatLBFGS(
            params,
            lr=optim.lr,
            max_iter=optim.max_iter,
            history_size=optim.history_size,
            line_search_fn=optim.line_search,
            tolerance_grad=optim.tolerance_grad,
            tolerance_change=optim.tolerance_change,
        )
    if name in ("adam", "adamw"):
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        fused = True if _fusable(params) else None  # None: torch's default (foreach on CUDA)
        return cls(params, lr=optim.lr, weight_decay=optim.weight_decay, fused=fused)
    raise ValueError(f"optim.name: {name!r} is not valid; valid: lbfgs, adam, adamw")


_FUSED_DEVICES = ("cpu", "cuda")


def _fusable(params: list) -> bool:
    """Whether torch's fused Adam takes these parameters: floating-point tensors on a CPU or
    CUDA device (parameter groups given as dicts keep the unfused default)."""
    return bool(params) and all(
        isinstance(p, torch.Tensor) and p.dtype.is_floating_point
        and p.device.type in _FUSED_DEVICES for p in params)
