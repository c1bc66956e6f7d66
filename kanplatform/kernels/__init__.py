"""Kernels of the KAN layer's spline term: the backend choice and the compiled kernels.

:func:`spline_backend` picks the implementation for a call; :mod:`.ckernel` builds and calls
the C/OpenMP CPU kernels in ``csrc/``; the pure-PyTorch formulations live in
:mod:`kanplatform.nn.functional`. Imports with torch alone.
"""

from kanplatform.kernels import ckernel
from kanplatform.kernels.backend import (
    COMPACT_MAX_ELEMENTS,
    SPLINE_BACKENDS,
    compiled_supports,
    spline_backend,
)

__all__ = [
    "COMPACT_MAX_ELEMENTS",
    "SPLINE_BACKENDS",
    "ckernel",
    "compiled_supports",
    "spline_backend",
]
