"""The Triton kernels of the KAN layer (kanplatform/kernels/triton_spline.py) against the PyTorch
path: outputs and every gradient, orders 1-5, grids 3-100, uniform and adaptive grids, points
beyond the grid, block tails, 16-bit and float64 inputs, a few training steps; how the backend
is chosen and the errors where it cannot run. Without CUDA they run in Triton's interpreter
(tests/conftest.py sets TRITON_INTERPRET=1), on a GPU on the GPU."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from kanplatform.kernels import spline_backend, triton_spline, use_triton
from kanplatform.nn import KANLayer
from kanplatform.nn.functional import grid_plan
from tests.kernels import triton_cases as tc

ROOT = Path(__file__).resolve().parents[2]


def test_runs_where_it_should() -> None:
    assert triton_spline.interpreted() == (tc.DEVICE.type == "cpu")
    assert triton_spline.unavailable_reason(tc.DEVICE) is None


@pytest.mark.parametrize(("k", "g", "adaptive"), tc.CASES)
def test_matches_torch_path(k, g, adaptive) -> None:
    tc.check_against_torch(k, g, adaptive)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
@pytest.mark.parametrize(("k", "g", "adaptive"), [(3, 5, False), (2, 20, True)])
def test_other_dtypes(dtype, k, g, adaptive) -> None:
    """float64 to 1e-12; bfloat16 (stored and returned as bfloat16, accumulated in float32)
    to the rounding of its outputs."""
    tc.check_against_torch(k, g, adaptive, dtype=dtype)


def test_bfloat16_input_to_a_float32_layer() -> None:
    """An autocast-style bfloat16 ``x`` into float32 parameters: a float32 result."""
    layer = KANLayer(4, 6, grid_size=7).to(tc.DEVICE)
    x = torch.randn(50, 4, device=tc.DEVICE).to(torch.bfloat16)
    with tc.kernel_env("triton"):
        y = layer(x)
    assert y.dtype == torch.float32
    with tc.kernel_env("torch"):
        torch.testing.assert_close(y, layer(x.float()), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("shape", tc.SHAPES[1:])
def test_matches_torch_path_other_shapes(shape) -> None:
    """One sample / input / output, and several blocks along every axis."""
    tc.check_against_torch(3, 20, True, shape)


def test_launch_variants_agree() -> None:
    """The batch split of the coefficient gradient (partial tables summed) and several inputs
    per program of the input gradient (with a tail) give the default launches' numbers."""
    t = tc.make_case(3, 6, True, (80, 5, 20))
    k = 3
    plan = grid_plan(t["grid"], k)
    g = t["w"].contiguous()
    w = triton_spline._table(t["coef"], t["scale_sp"], torch.float32)
    gw = triton_spline.spline_backward_w(t["x"], plan, g, k)
    torch.testing.assert_close(triton_spline.spline_backward_w(t["x"], plan, g, k, split=2),
                               gw, rtol=1e-6, atol=1e-6)
    gx = triton_spline.spline_backward_x(t["x"], w, plan, g, k)
    torch.testing.assert_close(triton_spline.spline_backward_x(t["x"], w, plan, g, k, 3), gx,
                               rtol=0, atol=0)
    # strided x (a transposed view) reads the same points
    xs = t["x"].t().contiguous().t()
    torch.testing.assert_close(triton_spline.spline_forward(xs, w, plan, k),
                               triton_spline.spline_forward(t["x"], w, plan, k), rtol=0, atol=0)


def test_nan_input_gives_nan_not_a_bad_read() -> None:
    t = tc.make_case(3, 5, True, (40, 3, 4))
    t["x"][3, 1] = float("nan")
    y = tc.run_layer(t, 3, "triton")[0]
    assert y[3].isnan().all() and not y[torch.arange(40) != 3].isnan().any()


def test_training_agrees() -> None:
    tc.check_training_agrees()


def test_backend_choice(monkeypatch) -> None:
    """auto takes Triton for CUDA tensors only; KANPLATFORM_KERNEL=triton for every tensor."""
    cpu = torch.zeros(2, 2)
    monkeypatch.delenv("KANPLATFORM_KERNEL", raising=False)
    assert not use_triton(cpu)
    if torch.cuda.is_available():
        assert use_triton(cpu.cuda())
    monkeypatch.setenv("KANPLATFORM_KERNEL", "torch")
    assert not use_triton(cpu) and not use_triton(cpu.to(tc.DEVICE))
    monkeypatch.setenv("KANPLATFORM_KERNEL", "triton")
    assert use_triton(cpu)
    layer = KANLayer(2, 3, grid_size=5)  # the layer's choice goes the same way
    params = (layer.grid, layer.coef, layer.scale_sp, layer.scale_base)
    assert spline_backend(cpu, params, 3, 3) == "triton"


@pytest.mark.slow
def test_kernels_compile_for_sm90_without_spills(tmp_path) -> None:
    """The heaviest launch configurations compile for an H100/H200 (Triton ahead of time, no GPU
    needed): ptxas allocates them without spilling registers, and the coefficient gradient
    runs on the tensor cores."""
    quick = [0, 3, 5, 9]  # forward / grad x at k=5 adaptive, grad W float32 and float64
    res = _python(f"from tests.kernels.triton_cases import aot_main; aot_main({quick})",
                  TRITON_DUMP_PTXAS_LOG="1", TRITON_CACHE_DIR=str(tmp_path))
    assert res.returncode == 0, res.stderr[-3000:]
    parts = res.stdout.split("VARIANT")[1:]
    assert len(parts) == len(quick), res.stdout
    for part in parts:
        assert "0 bytes spill stores" in part and "Used" in part, part
        if part.split()[0] == "backward_w":
            assert int(part.split("MMA")[1].split()[0]) > 0, part


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET",
                                                             "KANPLATFORM_KERNEL")}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env={**full, **env},
                          capture_output=True, text=True, timeout=300)


FORCED = """
    import sys, torch
    from kanplatform.nn import KANLayer
    layer, x = KANLayer(3, 4), torch.randn(5, 3)

    def attempt():
        try:
            layer(x)
            print("RAN")
        except RuntimeError as err:
            print("ERROR", err)

    sys.modules["triton"] = None  # as if triton were not installed
    attempt()
    del sys.modules["triton"]  # installed
    attempt()
"""


def test_forced_triton_without_cuda_or_interpreter_says_why() -> None:
    """KANPLATFORM_KERNEL=triton on CPU tensors: without triton installed an error naming the
    extra to install; without TRITON_INTERPRET one saying it needs CUDA tensors or the
    interpreter. Never a silent fallback."""
    res = _python(FORCED, KANPLATFORM_KERNEL="triton")
    lines = res.stdout.splitlines()
    assert res.returncode == 0 and len(lines) == 2, res.stdout + res.stderr
    assert lines[0].startswith("ERROR") and "needs triton" in lines[0]
    assert "pip install 'kanplatform[gpu]'" in lines[0]
    assert lines[1].startswith("ERROR") and "needs CUDA tensors" in lines[1]
    assert "TRITON_INTERPRET=1" in lines[1]


def test_nn_imports_and_runs_without_importing_triton() -> None:
    """kanplatform.nn imports and runs a layer (CPU, auto) without ever importing triton."""
    res = _python("""
        import sys, torch
        from kanplatform.nn import KAN
        KAN(width=[3, 2, 1])(torch.randn(5, 3)).sum().backward()
        print("triton imported:", "triton" in sys.modules)
    """)
    assert res.returncode == 0 and "triton imported: False" in res.stdout, res.stderr


def test_gpu_benchmark_runs(tmp_path) -> None:
    """benchmarks/bench_gpu.py end to end on a tiny case (on CPU in the interpreter: a check of
    the script, not figures): every model timed, the kernels agree with the PyTorch path,
    only x saved for backward, the JSON written."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_gpu
    finally:
        sys.path.pop(0)
    out = tmp_path / "bench.json"
    assert bench_gpu.main(["--device", tc.DEVICE.type, "--shapes", "4x3", "--grids", "5",
                           "--batches", "40", "--reps", "1", "--warmup", "0", "--dtypes",
                           "fp32", "--json", str(out)]) == 0
    import json

    data = json.loads(out.read_text())
    assert data["complete"] and len(data["targets"]) >= 2
    (row,) = data["rows"]
    assert set(row["models"]) == {"triton", "torch", "linear+silu", "mlp", "dense"}
    assert all("ms" in m for m in row["models"].values()), row
    assert row["max_rel_diff"] < 1e-5
    assert row["models"]["triton"]["saved_bytes"] == 40 * 4 * 4  # x only
