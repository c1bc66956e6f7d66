"""Without CUDA the Triton kernels run in Triton's CPU interpreter. ``TRITON_INTERPRET`` must be
set before anything imports ``triton`` at all: Triton decides at decoration time whether a
``@triton.jit`` function (its own ``tl.zeros`` included) is interpreted, so an earlier import
of triton (Lightning, torch's inductor, a CLI test) left the library half-compiled and every
interpreted kernel failed with "Cannot call @triton.jit'd outside of the scope of a kernel".
This root conftest is loaded before any test module is collected."""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
