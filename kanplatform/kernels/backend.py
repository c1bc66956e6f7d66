"""Which implementation computes a KAN layer's spline term, for the tensors at hand.

:func:`spline_backend` answers one of :data:`SPLINE_BACKENDS`; ``KANLayer.forward`` runs it:

* ``"triton"``: the Triton kernels (:mod:`kanplatform.kernels.triton_spline`) for CUDA
  tensors where ``triton`` is installed, and for every tensor under
  ``KANPLATFORM_KERNEL=triton`` (which then raises where they cannot run: never a silent
  fallback); see :func:`use_triton`;
* ``"c"``: the compiled CPU kernels (:mod:`kanplatform.kernels.ckernel`), wherever they build
  and the tensors are CPU tensors of one float dtype; they are the fastest at every size;
* ``"compact"``: plain autograd ops on ``(k + 1, batch, in, out)`` gathers, the cheapest
  PyTorch map while that gather stays below :data:`COMPACT_MAX_ELEMENTS` elements;
* ``"torch"``: the PyTorch sparse path (``embedding_bag`` gathers, any device, least memory).

All compute the same function to rounding. ``benchmarks/README.md`` has the measurements
behind the order and the threshold.
"""

from __future__ import annotations

import importlib.util
import os
import warnings

import torch

from kanplatform.kernels import ckernel

SPLINE_BACKENDS = ("triton", "c", "compact", "torch")
COMPACT_MAX_ELEMENTS = 2**18  # batch * in * out * (k + 1) gathered table entries


def compiled_supports(*tensors: torch.Tensor) -> bool:
    """Whether the compiled CPU kernels run these tensors here (and the library builds)."""
    return ckernel.supports(*tensors) and ckernel.library() is not None


_warned: set[str] = set()


def use_triton(x: torch.Tensor) -> bool:
    """Whether ``x`` runs on the Triton kernels: always under ``KANPLATFORM_KERNEL=triton``
    (where they cannot run, the call then says why), and under ``auto`` for CUDA tensors where
    ``triton`` is installed (without it the PyTorch path runs, after one warning). Does not
    import ``triton``."""
    mode = ckernel.kernel_mode()
    if mode == "triton":
        return True
    if mode != "auto" or x.device.type != "cuda":
        return False
    if importlib.util.find_spec("triton") is None:
        if "triton" not in _warned:
            _warned.add("triton")
            warnings.warn(
                "kanplatform: triton is not installed, so KAN layers on CUDA take the (slower) "
                "PyTorch path; pip install 'kanplatform[gpu]', or set "
                f"{ckernel.KERNEL_ENV}=torch to silence this", RuntimeWarning, stacklevel=3)
        return False
    return True


def kernel_env_problem(device_type: str) -> str | None:
    """Why the ``KANPLATFORM_KERNEL`` setting cannot run KAN layers on ``device_type``
    (``"cpu"`` or ``"cuda"``), in one line for a command to print before any work starts;
    ``None`` when it can. Does not import ``triton``."""
    try:
        mode = ckernel.kernel_mode()
    except ValueError as err:
        return str(err)
    if mode != "triton":
        return None
    env = ckernel.KERNEL_ENV
    if importlib.util.find_spec("triton") is None:
        return (f"{env}=triton but triton is not installed: pip install 'kanplatform[gpu]', or "
                f"set {env}=auto")
    interpreted = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
    if device_type == "cuda" and interpreted:
        return (f"{env}=triton with TRITON_INTERPRET set: the kernels would run in Triton's "
                "CPU interpreter, which takes CPU tensors only; unset TRITON_INTERPRET to run "
                "them on the GPU")
    if device_type != "cuda" and not interpreted:
        return (f"{env}=triton but the layers run on the {device_type}: the Triton kernels "
                "need CUDA tensors (or TRITON_INTERPRET=1 for Triton's slow CPU interpreter); "
                f"set {env}=auto to use the CPU kernels")
    return None


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
        ``"triton"``, ``"c"``, ``"compact"`` or ``"torch"``.
    """
    if use_triton(x):
        return "triton"
    if compiled_supports(x, *params):
        return "c"
    if x.shape[0] * x.shape[1] * out_features * (spline_order + 1) <= COMPACT_MAX_ELEMENTS:
        return "compact"
    return "torch"
