"""Which implementation computes a KAN layer's spline term, for the tensors at hand.

:func:`spline_backend` answers one of :data:`SPLINE_BACKENDS`; ``KANLayer.forward`` runs it:

* ``"c"``: the compiled CPU kernels (:mod:`kanplatform.kernels.ckernel`), wherever they build
  and the tensors are CPU tensors of one float dtype; they are the fastest at every size;
* ``"compact"``: plain autograd ops on ``(k + 1, batch, in, out)`` gathers, the cheapest
  PyTorch map while that gather stays below :data:`COMPACT_MAX_ELEMENTS` elements;
* ``"torch"``: the PyTorch sparse path (``embedding_bag`` gathers, any device, least memory).

All compute the same function to rounding. A GPU backend joins the list as one more name,
checked before the PyTorch ones. ``benchmarks/README.md`` has the measurements behind the order
and the threshold.
"""

from __future__ import annotations

import torch

from kanplatform.kernels import ckernel

SPLINE_BACKENDS = ("c", "compact", "torch")
COMPACT_MAX_ELEMENTS = 2**18  # batch * in * out * (k + 1) gathered table entries


def compiled_supports(*tensors: torch.Tensor) -> bool:
    """Whether the compiled CPU kernels run these tensors here (and the library builds)."""
    return ckernel.supports(*tensors) and ckernel.library() is not None


def spline_backend(x: torch.Tensor, params: tuple[torch.Tensor, ...], out_features: int,
                   spline_order: int) -> str:
    """The backend for a layer map of ``x: (batch, in)`` with its parameter tensors.

    Args:
        x: the layer input.
        params: the tensors the map reads (grid, coefficients, scales), all of which the
            backend must accept.
        out_features: the layer's outputs.
        spline_order: ``k``.

    Returns:
        ``"c"``, ``"compact"`` or ``"torch"``.
    """
    if compiled_supports(x, *params):
        return "c"
    if x.shape[0] * x.shape[1] * out_features * (spline_order + 1) <= COMPACT_MAX_ELEMENTS:
        return "compact"
    return "torch"
