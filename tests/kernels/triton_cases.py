"""The Triton kernels against the PyTorch path: cases and checks as plain functions.

``test_triton_spline.py`` runs them under pytest (on CPU in Triton's interpreter, or on a GPU);
``benchmarks/device_check.sh`` runs ``python -m tests.kernels.triton_cases`` on a GPU machine
that may have only torch and triton (no pytest). Every check raises ``AssertionError`` with
the case and the error found.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import torch

from kanplatform.nn import KAN
from kanplatform.nn.basis import uniform_grid
from kanplatform.nn.functional import kan_linear
from kanplatform.nn.grid import adaptive_grid

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")

# (spline order, grid size, adaptive grid): orders 1-5, grids 3-100, both grid kinds
CASES = [(1, 3, False), (2, 7, True), (3, 5, False), (3, 20, True), (4, 11, False),
         (5, 100, True), (1, 100, False), (5, 3, True)]
# (batch, in, out): every kernel's block tails (samples, outputs, inputs per tile) and, in the
# larger ones, several blocks along each
SHAPES = [(70, 5, 19), (1, 1, 1), (70, 9, 40)]


@contextlib.contextmanager
def kernel_env(mode: str) -> Iterator[None]:
    """``KANPLATFORM_KERNEL=mode`` inside the block."""
    old = os.environ.get("KANPLATFORM_KERNEL")
    os.environ["KANPLATFORM_KERNEL"] = mode
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("KANPLATFORM_KERNEL", None)
        else:
            os.environ["KANPLATFORM_KERNEL"] = old


def make_case(k: int, g: int, adaptive: bool, shape: tuple[int, int, int] = (70, 5, 19),
              dtype: torch.dtype = torch.float32, seed: int = 0) -> dict[str, torch.Tensor]:
    """Layer tensors on a grid over (-1, 1) and points inside it, beyond it (far too) and on
    its ends; ``w`` weighs the outputs into a scalar loss."""
    gen = torch.Generator().manual_seed(seed)
    n, n_in, n_out = shape
    grid = uniform_grid(n_in, g, k, (-1.0, 1.0), dtype=torch.float64)
    if adaptive:
        grid = adaptive_grid(torch.randn(400, n_in, generator=gen, dtype=torch.float64) ** 3,
                             g, k)
    x = 1.3 * torch.randn(n, n_in, generator=gen, dtype=torch.float64)
    ends = torch.tensor([-6.0, 6.0, -1.0, 1.0], dtype=torch.float64)[:n]
    x[: len(ends), 0] = ends if not adaptive else grid[0, [0, -1, k, g + k]][:n]
    t = {
        "x": x,
        "grid": grid,
        "coef": torch.randn(n_in, g + k, n_out, generator=gen, dtype=torch.float64),
        "scale_sp": torch.randn(n_out, n_in, generator=gen, dtype=torch.float64),
        "scale_base": torch.randn(n_out, n_in, generator=gen, dtype=torch.float64),
        "bias": torch.randn(n_out, generator=gen, dtype=torch.float64),
        "w": torch.randn(n, n_out, generator=gen, dtype=torch.float64),
    }
    return {name: v.to(DEVICE, dtype) for name, v in t.items()}


PARAMS = ("x", "coef", "scale_sp", "scale_base", "bias")


def run_layer(t: dict[str, torch.Tensor], k: int, backend: str) -> list[torch.Tensor]:
    """Output and the gradients of ``PARAMS`` of ``sum(w * y)`` on one backend."""
    ins = {name: t[name].detach().clone().requires_grad_() for name in PARAMS}
    y = kan_linear(ins["x"], t["grid"], ins["coef"], ins["scale_sp"], ins["scale_base"], k,
                   "silu", bias=ins["bias"], backend=backend)
    grads = torch.autograd.grad((y * t["w"].to(y.dtype)).sum(), [ins[n] for n in PARAMS])
    return [y.detach(), *grads]


def max_errors(got: list[torch.Tensor], ref: list[torch.Tensor]) -> dict[str, float]:
    """Largest error of each result relative to the reference's largest entry (at least 1)."""
    names = ("y", *PARAMS)
    return {n: float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1))
            for n, a, b in zip(names, got, ref)}


def check_against_torch(k: int, g: int, adaptive: bool, shape: tuple[int, int, int] = (70, 5, 19),
                        dtype: torch.dtype = torch.float32, tol: float | None = None) -> None:
    """Triton and the PyTorch path agree: output and every gradient, to ``tol`` (1e-5 in
    float32, 1e-12 in float64; 16-bit inputs against float32 on the same rounded values)."""
    t = make_case(k, g, adaptive, shape, dtype)
    got = run_layer(t, k, "triton")
    for name, v in zip(("y", *PARAMS), got):
        want = torch.promote_types(t["x"].dtype, t["coef"].dtype) if name == "y" else t[name].dtype
        assert v.dtype == want, f"{name} is {v.dtype}, not {want}"
    ref_dtype = torch.float32 if dtype in (torch.bfloat16, torch.float16) else dtype
    ref = run_layer({n: v.to(ref_dtype) for n, v in t.items()}, k, "torch")
    tol = tol or {torch.float32: 1e-5, torch.float64: 1e-12}.get(dtype, 2e-2)
    errs = max_errors(got, ref)
    bad = {n: e for n, e in errs.items() if not e <= tol}
    assert not bad, f"k={k} G={g} adaptive={adaptive} {shape} {dtype}: errors {bad} > {tol}"


def train(mode: str, steps: int = 4, seed: int = 0) -> tuple[list[float], dict]:
    """A KAN [3, 3, 2] trained ``steps`` Adam steps under ``KANPLATFORM_KERNEL=mode`` with an
    adaptive grid update after the second: its losses and final parameters."""
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(64, 3, generator=gen) * 3 - 1.5).to(DEVICE)  # partly beyond the grid
    y = torch.stack([torch.sin(2 * x[:, 0]) * x[:, 1], x[:, 2] ** 2 - x[:, 0]], 1)
    model = KAN(width=[3, 3, 2], grid_size=5, spline_order=3, generator=gen).to(DEVICE)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    with kernel_env(mode):
        for step in range(steps):
            if step == 2:
                model.update_grid(x)
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    return losses, {n: p.detach().clone() for n, p in model.state_dict().items()}


def check_training_agrees() -> None:
    """A few training steps on the Triton kernels match the PyTorch path's: losses and every
    parameter and grid."""
    (l_tr, p_tr), (l_pt, p_pt) = train("triton"), train("torch")
    for a, b in zip(l_tr, l_pt):
        assert abs(a - b) <= 1e-5 * max(1.0, abs(b)), f"losses {l_tr} vs {l_pt}"
    for name, v in p_pt.items():
        err = float((p_tr[name] - v).abs().max())
        assert err <= 1e-5 * max(1.0, float(v.abs().max())), f"{name} differs by {err}"


def main() -> int:
    """Run every case; print one line each; exit status 1 if any failed."""
    failed = 0
    checks = [(f"k={k} G={g} adaptive={a} {s}", check_against_torch, (k, g, a, s))
              for k, g, a in CASES for s in SHAPES[:1]]
    checks += [(f"k=3 G=20 adaptive=True {s}", check_against_torch, (3, 20, True, s))
               for s in SHAPES[1:]]
    checks += [(f"{d} k={k} G={g} adaptive={a}", check_against_torch, (k, g, a, SHAPES[0], d))
               for d in (torch.float64, torch.bfloat16, torch.float16)
               for k, g, a in ((3, 5, False), (2, 20, True))]
    checks += [("training agrees", check_training_agrees, ())]
    for name, fn, args in checks:
        t0 = time.perf_counter()
        try:
            fn(*args)
            status = "ok"
        except Exception as err:  # noqa: BLE001 - reported, then counted
            failed += 1
            status = f"FAILED {type(err).__name__}: {err}"
        print(f"{name:<48} {time.perf_counter() - t0:7.2f} s  {status}", flush=True)
    print(f"{len(checks) - failed} passed, {failed} failed on {DEVICE}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())


# ---- compiled for a GPU, without one: Triton compiles ahead of time for an sm_90 target ------

# (kernel, x/grad y dtype, accumulation dtype, k, G, uniform, in, out): the heaviest launch
# configurations of each kernel and dtype (largest k, adaptive grids, G + k past 64 rows)
AOT_VARIANTS = [
    ("forward", "fp32", "fp32", 5, 20, False, 256, 256),
    ("forward", "bf16", "fp32", 3, 20, True, 256, 256),
    ("forward", "fp64", "fp64", 5, 20, False, 256, 256),
    ("backward_x", "fp32", "fp32", 5, 20, False, 256, 256),
    ("backward_x", "fp64", "fp64", 3, 20, False, 256, 256),
    ("backward_w", "fp32", "fp32", 3, 20, False, 256, 256),
    ("backward_w", "fp32", "fp32", 5, 100, True, 256, 256),
    ("backward_w", "fp32", "fp32", 3, 200, True, 256, 256),
    ("backward_w", "bf16", "fp32", 3, 5, True, 256, 256),
    ("backward_w", "fp64", "fp64", 3, 20, False, 256, 256),
]

_TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp64": torch.float64}


def compile_for_sm90(variant: tuple) -> Any:
    """Compile one of :data:`AOT_VARIANTS` with the launch configuration its launcher picks,
    for an H100/H200 (sm_90), without a GPU. Needs TRITON_INTERPRET unset."""
    import triton
    from triton.backends.compiler import GPUTarget

    from kanplatform.kernels import triton_spline as ts

    name, io, acc, k, g, uniform, n_in, n_out = variant
    if name == "forward":
        cfg = ts.forward_config(n_out, k, g, uniform, True)
    elif name == "backward_x":
        cfg = ts.backward_x_config(65536, n_in, n_out, k, g, uniform)
    else:
        cfg = ts.backward_w_config(n_in, n_out, k, g, uniform, _TORCH_DTYPES[io])
    num_warps = cfg.pop("num_warps")
    fn = getattr(ts, f"_{name}")
    io_ptrs = ("x_ptr", "xt_ptr", "init_ptr", "y_ptr", "g_ptr")
    sig = {a: "constexpr" if a in cfg else f"*{io}" if a in io_ptrs
           else f"*{acc}" if a.endswith("_ptr") else "i32" for a in fn.arg_names}
    src = triton.compiler.ASTSource(fn=fn, signature=sig, constexprs=cfg)
    return triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": num_warps})


def aot_main(indices: list[int] | None = None) -> None:
    """Compile :data:`AOT_VARIANTS` (those at ``indices``, default all), printing a marker line
    before each (run with TRITON_DUMP_PTXAS_LOG=1 and an empty TRITON_CACHE_DIR, ptxas's
    register report follows it) and after it the count of tensor-core instructions."""
    for i in range(len(AOT_VARIANTS)) if indices is None else indices:
        print("VARIANT", *AOT_VARIANTS[i], flush=True)
        kernel = compile_for_sm90(AOT_VARIANTS[i])
        print("MMA", sum("mma" in line for line in kernel.asm["ptx"].splitlines()), flush=True)
