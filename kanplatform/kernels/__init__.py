"""Kernels of the KAN layer's spline term: the backend choice and the compiled kernels.

:func:`spline_backend` picks the implementation for a call; :mod:`.ckernel` builds and calls
the C/OpenMP CPU kernels in ``csrc/``; :mod:`.triton_spline` holds the Triton kernels that
CUDA tensors use (importing it imports ``triton``, the ``kanplatform[gpu]`` extra: the
backend choice imports it only where it runs); the pure-PyTorch formulations live in
:mod:`kanplatform.nn.functional`. Imports with torch alone.
"""

from kanplatform.kernels import ckernel
from kanplatform.kernels.backend import (
    COMPACT_MAX_ELEMENTS,
    SPLINE_BACKENDS,
    compiled_supports,
    kernel_env_problem,
    spline_backend,
    use_triton,
)

__all__ = [
    "COMPACT_MAX_ELEMENTS",
    "SPLINE_BACKENDS",
    "ckernel",
    "compiled_supports",
    "kernel_env_problem",
    "spline_backend",
    "use_triton",
]
