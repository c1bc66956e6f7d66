"""A small KAN's mean-squared-error loss and gradient in one compiled call.

Full-batch training of the paper's tiny KANs (LBFGS on ~1000 points) evaluates the loss ~15
times a step; each evaluation's arithmetic takes microseconds, while the Python and autograd
around a layer-by-layer forward and backward took most of a millisecond. :class:`FusedMSE`
prepares, once per (model, data) configuration, the arguments of
:func:`kanplatform.kernels.clayer.network_mse`, which runs every layer's forward, the loss
gradient and every layer's backward in C, writing the gradients into the parameters'
``.grad`` tensors. It runs exactly the per-layer kernels the plain path runs, so loss and
gradients equal ``torch.mean((kan(x) - y) ** 2).backward()``'s bit for bit (tested).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from kanplatform.kernels import clayer, compiled_supports

__all__ = ["FusedMSE"]


def _layers(model: nn.Module) -> list[Any] | None:
    """The model's KAN layers if it is a plain stack of them, else ``None``."""
    from kanplatform.nn.kan import KAN

    return list(model.layers) if type(model) is KAN else None


def _grad_buffer(p: torch.Tensor) -> torch.Tensor:
    """``p.grad``, created (zeros) or replaced by a contiguous tensor where it is not one."""
    g = p.grad
    if g is None or g.shape != p.shape or g.dtype != p.dtype or not g.is_contiguous():
        p.grad = torch.zeros_like(p, memory_format=torch.contiguous_format)
    return p.grad


class FusedMSE:
    """``torch.mean((model(x) - y) ** 2)`` and its gradient, for a KAN on fixed data.

    Calling the object evaluates the loss at the model's current parameters and writes their
    gradients into ``p.grad`` (overwriting, not accumulating), like ``zero_grad`` + forward +
    ``backward`` would. Parameters may change in place between calls (an optimiser step, a
    grid update); replacing a tensor (a new model, a grid extension) is noticed and the call
    re-prepared.

    Args:
        model: a :class:`~kanplatform.nn.KAN` (see :meth:`supported`).
        x: inputs ``(batch, width[0])``.
        y: targets ``(batch, width[-1])``.

    Example:
        >>> loss_fn = FusedMSE(kan, x, y)  # doctest: +SKIP
        >>> loss = loss_fn()               # doctest: +SKIP
    """

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        if not self.supported(model, x, y):
            raise ValueError("FusedMSE needs a KAN of compiled-kernel size on CPU tensors of "
                             "its dtype, silu or no base, unpruned; use the plain loss")
        self.model = model
        self.x, self.y = x.contiguous(), y.contiguous()
        self._key: tuple | None = None
        self._evaluate: Any = None

    @staticmethod
    def supported(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> bool:
        """Whether :class:`FusedMSE` computes this model's loss: a :class:`KAN` (not a
        subclass) whose every layer runs the whole-layer kernels (silu or no base term,
        tables small enough, no pruned edges), one spline order, CPU tensors of one float
        dtype, ``y`` of the output's shape."""
        layers = _layers(model)
        if not layers or x.dim() != 2 or y.shape != (x.shape[0], layers[-1].out_features):
            return False
        k = layers[0].spline_order
        for layer in layers:
            if layer.spline_order != k or not layer._mask_is_ones():
                return False
            params = [layer.grid, layer.coef, layer.scale_sp]
            params += [t for t in (layer.scale_base, layer.bias) if t is not None]
            if not compiled_supports(x, y, *params):
                return False
            if not clayer.fits(layer.in_features, layer.out_features, layer.grid_size, k,
                               x.dtype, layer.base_activation):
                return False
        return True

    def prepare(self, as_float: bool = False) -> Any:
        """The evaluation bound to the model's current tensors: a function returning the loss
        (a 0-d tensor, no graph) with the gradients written into the parameters' ``.grad``.
        Valid while no tensor is replaced and no grid changes (in-place parameter updates,
        as an optimiser step makes, are fine): one ``prepare`` per optimiser step serves all
        its evaluations.

        Args:
            as_float: return the loss as a Python float, reduced by numpy (``r . r / n``):
                equal to the tensor's to rounding (a different summation order), without
                two tensor ops per call -- what an optimiser that reads ``float(loss)``
                (LBFGS) needs. The gradients are the same either way."""
        layers = _layers(self.model)
        plans = [layer._grid_plan() for layer in layers]
        params = [t for layer in layers for t in
                  (layer.coef, layer.scale_sp, layer.scale_base, layer.bias)]
        grads = [None if p is None else _grad_buffer(p) for p in params]
        key = tuple(id(t) for t in plans) + tuple(
            0 if t is None else t.data_ptr() for t in (*params, *grads))
        if key != self._key:
            k = layers[0].spline_order
            specs = []
            for layer, plan in zip(layers, plans):
                base = layer.base_activation is not None and layer.scale_base is not None
                specs.append({
                    "plan": plan, "coef": layer.coef.detach(), "sp": layer.scale_sp.detach(),
                    "sb": layer.scale_base.detach() if base else None,
                    "bias": None if layer.bias is None else layer.bias.detach(),
                    "gcoef": layer.coef.grad, "gsp": layer.scale_sp.grad,
                    "gsb": layer.scale_base.grad if base else None,
                    "gbias": None if layer.bias is None else layer.bias.grad,
                })
            call = clayer.network_mse(self.x, self.y, specs, k)

            def evaluate() -> torch.Tensor:
                return torch.mean(call() ** 2)  # as the plain path reduces it: the same bits

            residual = call.diff.detach().numpy().reshape(-1)  # the buffer every call fills
            size = residual.size

            def evaluate_float() -> float:
                call()
                return float(residual @ residual) / size

            self._evaluate, self._evaluate_float, self._key = evaluate, evaluate_float, key
            self._plans = plans  # alive while their ids are the key
        return self._evaluate_float if as_float else self._evaluate

    def __call__(self) -> torch.Tensor:
        """The loss (a 0-d tensor, no graph); the gradients are in the parameters' ``.grad``."""
        return self.prepare()()
