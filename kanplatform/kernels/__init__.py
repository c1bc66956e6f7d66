"""kanplatform.kernels: compute kernels of the KAN layer's spline term (torch only, and
Triton for the GPU kernel, imported only where it runs).

* :mod:`kanplatform.kernels.triton_spline` - the Triton kernel (forward and backward) that
  CUDA tensors use; importing it imports ``triton`` (the ``kanplatform[gpu]`` extra).
"""
