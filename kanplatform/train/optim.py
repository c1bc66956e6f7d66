"""Optimisers by name: ``lbfgs`` (full batch, strong Wolfe;
:class:`~kanplatform.train.lbfgs.FlatLBFGS`), ``adam``, ``adamw``."""

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
    if name == "adam":
        return torch.optim.Adam(params, lr=optim.lr, weight_decay=optim.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=optim.lr, weight_decay=optim.weight_decay)
    raise ValueError(f"optim.name: {name!r} is not valid; valid: lbfgs, adam, adamw")
