"""Kernels of the KAN layer's spline term: the backend choice and the compiled kernels.

``ckernel`` builds and calls the C/OpenMP CPU kernels in ``csrc/``; the pure-PyTorch
formulations live in :mod:`kanplatform.nn.functional`. Imports with torch alone.
"""
