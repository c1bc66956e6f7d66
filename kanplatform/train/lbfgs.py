"""LBFGS on one flat parameter vector: torch's algorithm, without its per-evaluation copies.

``torch.optim.LBFGS`` keeps the parameters as separate tensors and, in every line-search
evaluation, adds the step to each, gathers the gradients into a new flat vector and copies
the parameters back, each a loop of small tensor ops (~8 tensors for a KAN [2, 1, 1]; ~15
evaluations per step). :class:`FlatLBFGS` is ``torch.optim.LBFGS`` itself (its ``step``,
line search, state and checkpoints) with the parameters and their gradients moved into one
contiguous buffer each, the parameters becoming views of it: gathering the gradients and
restoring the parameters are then single ops on the whole vector, and a loss function that
writes the gradients in place (:class:`kanplatform.nn.fused.FusedMSE`) fills the flat
gradient directly. The step itself is torch's, so the iterates are those of
``torch.optim.LBFGS`` on the same closure, bit for bit (tested).

The flat layout is re-made if a parameter's storage is replaced behind the optimiser (e.g.
``module.to(...)``); under ``torch.distributed`` (DDP keeps its own view of the
parameters) the parameters are left as they are and the plain helpers run.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

__all__ = ["FlatLBFGS"]


class FlatLBFGS(torch.optim.LBFGS):
    """``torch.optim.LBFGS`` (same arguments, state and results) over flat parameters.

    Example:
        >>> opt = FlatLBFGS(model.parameters(), line_search_fn="strong_wolfe")  # doctest: +SKIP
        >>> opt.step(closure)                                                   # doctest: +SKIP
    """

    def __init__(self, params: Iterable[torch.Tensor], **kwargs) -> None:  # noqa: ANN003
        super().__init__(params, **kwargs)
        self._flat: torch.Tensor | None = None
        self._flat_grad: torch.Tensor | None = None
        self._grad_views: list[torch.Tensor] = []
        self._flatten()

    def _flatten(self) -> None:
        """Move the parameters (and gradient buffers) into one contiguous vector each."""
        params = self._params
        if (torch.distributed.is_available() and torch.distributed.is_initialized()) or \
                len({(p.dtype, p.device) for p in params}) != 1 or \
                any(torch.is_complex(p) or p.is_sparse for p in params):
            self._flat = None
            return
        with torch.no_grad():
            flat = torch.cat([p.detach().reshape(-1) for p in params])
            flat_grad = torch.zeros_like(flat)
            views, offset = [], 0
            for p in params:
                n = p.numel()
                p.data = flat[offset:offset + n].view_as(p)
                g = flat_grad[offset:offset + n].view_as(p)
                if p.grad is not None:
                    g.copy_(p.grad)
                p.grad = g
                views.append(g)
                offset += n
        self._flat, self._flat_grad, self._grad_views = flat, flat_grad, views
        self._ptrs = [p.data_ptr() for p in params]

    def ensure_flat(self) -> bool:
        """Check the layout (every step does at its start): rebuilt if a parameter's storage
        was replaced (e.g. ``.to()``, as a trainer's precision set-up does after the optimiser
        is made); gradient views re-attached where someone set ``.grad`` (e.g.
        ``module.zero_grad()`` sets ``None``; a step starts by re-evaluating them anyway).
        Call it before binding tensors for a step (:meth:`FusedMSE.prepare`): a rebuild
        moves the parameters. Returns whether the parameters are flat."""
        if self._flat is None:
            return False
        if any(p.data_ptr() != q for p, q in zip(self._params, self._ptrs)):
            self._flatten()
        for p, g in zip(self._params, self._grad_views):
            if p.grad is not g:
                p.grad = g
        return self._flat is not None

    @torch.no_grad()
    def step(self, closure, evaluate=None):  # type: ignore[override]  # noqa: ANN001, ANN201
        """One LBFGS step (see ``torch.optim.LBFGS.step``).

        Args:
            closure: re-evaluates the loss and its gradients, returns the loss.
            evaluate: the same function without a trainer's per-call hooks: when given,
                ``closure`` runs for the step's first evaluation and ``evaluate`` for the
                line search's (Lightning's precision plugin wraps ``closure`` in hooks that
                cost more than a small KAN's whole evaluation; they then run once per
                step, as for any optimiser).
        """
        self.ensure_flat()
        if evaluate is not None:
            first = [True]
            inner = closure

            def closure():  # noqa: ANN202
                if first[0]:
                    first[0] = False
                    return inner()
                return evaluate()

        # torch's own step: a re-implementation with Python floats would not give its bits
        # (e.g. ``float / tensor`` is a reciprocal and a product there, one division here)
        return super().step(closure)

    def _gather_flat_grad(self) -> torch.Tensor:
        if self._flat is not None and all(
                p.grad is g for p, g in zip(self._params, self._grad_views)):
            return self._flat_grad.clone()  # a new tensor, as torch.cat returns
        return super()._gather_flat_grad()

    def _add_grad(self, step_size, update) -> None:  # noqa: ANN001
        # per parameter, as torch does: one add over the whole vector would round some
        # elements differently (a vectorised fused multiply-add against a scalar loop's
        # multiply-then-add, at other positions), and the iterates would not be torch's
        super()._add_grad(step_size, update)

    def _clone_param(self) -> list[torch.Tensor]:
        if self._flat is None:
            return super()._clone_param()
        return [self._flat.clone()]

    def _set_param(self, params_data) -> None:  # noqa: ANN001
        if self._flat is None:
            return super()._set_param(params_data)
        self._flat.copy_(params_data[0])

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero the gradients; they stay in the flat buffer (``set_to_none`` is honoured only
        where the parameters are not flat)."""
        if self._flat is None:
            return super().zero_grad(set_to_none)
        for p, g in zip(self._params, self._grad_views):
            p.grad = g
        self._flat_grad.zero_()
