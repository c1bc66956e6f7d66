"""The backend choice: compiled kernels where they run, else compact for small layers and the
PyTorch sparse path for large ones; every choice computes the layer's function."""

import pytest
import torch

from kanplatform.kernels import COMPACT_MAX_ELEMENTS, ckernel, spline_backend
from kanplatform.nn import KANLayer


def _params(layer: KANLayer) -> tuple:
    return (layer.grid, layer.coef, layer.scale_sp, layer.scale_base)


@pytest.mark.parametrize(("batch", "n_out", "want"), [(100, 3, "compact"), (4000, 64, "torch")])
def test_without_compiled_kernels_the_size_decides(monkeypatch, batch, n_out, want):
    monkeypatch.setenv(ckernel.KERNEL_ENV, "torch")
    layer = KANLayer(2, n_out, grid_size=5).double()
    x = torch.randn(batch, 2, dtype=torch.float64)
    assert (batch * 2 * n_out * 4 <= COMPACT_MAX_ELEMENTS) == (want == "compact")
    assert spline_backend(x, _params(layer), n_out, 3) == want
    y = layer(x)
    assert torch.allclose(y, layer.forward_dense(x), atol=1e-12)


def test_compiled_kernels_take_every_size_of_cpu_float_tensors():
    if ckernel.library() is None:
        pytest.skip(f"no compiled kernels here: {ckernel.library_error()}")
    layer = KANLayer(2, 3, grid_size=5).double()
    x = torch.randn(50, 2, dtype=torch.float64)
    assert spline_backend(x, _params(layer), 3, 3) == "c"
    # tensors of two dtypes are not for the kernels
    assert spline_backend(x.float(), _params(layer), 3, 3) == "compact"


def test_kernel_setting_checked_for_where_the_layers_run(monkeypatch):
    """kernel_env_problem: one line for a setting that cannot run on the device, None else."""
    from kanplatform.kernels import kernel_env_problem

    monkeypatch.setenv(ckernel.KERNEL_ENV, "auto")
    assert kernel_env_problem("cpu") is None and kernel_env_problem("cuda") is None
    monkeypatch.setenv(ckernel.KERNEL_ENV, "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert kernel_env_problem("cpu") is None  # Triton's CPU interpreter takes CPU tensors
    assert "unset TRITON_INTERPRET" in kernel_env_problem("cuda")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert kernel_env_problem("cuda") is None
    assert "need CUDA tensors" in kernel_env_problem("cpu")
    monkeypatch.setenv(ckernel.KERNEL_ENV, "gpu")
    assert "is not one of auto, c, triton, torch" in kernel_env_problem("cpu")
