"""Without CUDA the Triton kernels run in Triton's CPU interpreter: ``TRITON_INTERPRET`` must be
set before ``kanplatform.kernels.triton_spline`` is first imported (Triton decides when it
decorates a kernel), so it is set here, at collection, before any test imports it."""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
