"""Speed and memory of one KAN layer: our fast path vs a dense reference, nn.Linear+SiLU and an
MLP of equal parameters.

For every shape ``in -> out``, grid size ``G`` and batch ``B`` it measures, on one CPU thread,
forward+backward CPU time per sample (``time.process_time``, so that other processes on a
shared machine do not inflate it; median over repetitions, the models interleaved in every
repetition) and the bytes autograd saves for backward
(unique storages seen by ``saved_tensors_hooks``, parameters excluded), then prints ratio tables.

    .venv/bin/python benchmarks/bench_layers.py            # full run (a few minutes)
    .venv/bin/python benchmarks/bench_layers.py --quick    # 64 -> 64 only, 3 repetitions

Our layer runs on the compiled CPU kernels (``kanplatform.kernels.ckernel``) where they build; the
``torch`` column times the same layer on its pure-PyTorch path (``backend="torch"``), the one
CUDA and machines without a C compiler use.

The dense reference is written here, independently of ``kanplatform.nn``: the full
Cox-de Boor basis ``(B, in*(G+k))`` times the weight table ``(in*(G+k), out)`` (efficient-kan's
formulation, with the same linear continuation outside the grid as our layer, so both compute
the same function).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from kanplatform.kernels import ckernel
from kanplatform.nn import MLP, KANLayer, count_params, match_mlp

DENSE_LIMIT = 2e9  # skip the dense reference above B * in * (G + k) * out multiply-adds


def dense_basis(x: torch.Tensor, grid: torch.Tensor, k: int) -> torch.Tensor:
    """All ``G + k`` bases (Cox-de Boor) at ``x``, continued linearly outside the inner grid
    (as :class:`KANLayer` does): ``(B, in, G+k)``."""
    g = grid.shape[1] - 2 * k - 1
    xc = torch.minimum(torch.maximum(x, grid[:, k]), grid[:, g + k]).unsqueeze(-1)
    t = grid.unsqueeze(0)
    upper = torch.cat(
        [xc < t[..., 1 : g + k], xc <= t[..., g + k : g + k + 1], t[..., g + k + 1 :] < xc], -1
    )
    b = ((xc >= t[..., :-1]) & upper).to(x.dtype)
    prev = b
    for d in range(1, k + 1):
        prev = b
        b = (xc - t[..., : -(d + 1)]) / (t[..., d:-1] - t[..., : -(d + 1)]) * b[..., :-1] + (
            t[..., d + 1 :] - xc
        ) / (t[..., d + 1 :] - t[..., 1:-d]) * b[..., 1:]
    slope = k * (
        prev[..., :-1] / (t[..., k:-1] - t[..., : -(k + 1)])
        - prev[..., 1:] / (t[..., k + 1 :] - t[..., 1:-k])
    )
    return b + slope * (x.unsqueeze(-1) - xc)


def dense_reference(layer: KANLayer, x: torch.Tensor) -> torch.Tensor:
    """The layer's map as basis ``(B, in*(G+k))`` @ table ``(in*(G+k), out)`` + base + bias."""
    n_in, n_basis, n_out = layer.coef.shape
    basis = dense_basis(x, layer.grid, layer.spline_order).reshape(x.shape[0], -1)
    table = (layer.coef * (layer.scale_sp * layer.mask).t().unsqueeze(1)).reshape(-1, n_out)
    y = basis @ table + F.silu(x) @ (layer.scale_base * layer.mask).t()
    return y + layer.bias


def saved_bytes(fn: Callable[[], torch.Tensor], params: list[torch.Tensor]) -> int:
    """Bytes of the unique non-parameter storages autograd saves while running ``fn``."""
    param_ptrs = {p.untyped_storage().data_ptr() for p in params}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        if st.data_ptr() not in param_ptrs:
            seen[st.data_ptr()] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = fn()
    del y
    return sum(seen.values())


def bench_case(n_in: int, n_out: int, g: int, batch: int, reps: int) -> dict[str, dict]:
    """Time and memory of the four models for one shape / grid / batch."""
    gen = torch.Generator().manual_seed(0)
    kan = KANLayer(n_in, n_out, grid_size=g, generator=gen)
    linear = nn.Linear(n_in, n_out)
    width = match_mlp(count_params(kan), depth=1, in_features=n_in, out_features=n_out)
    mlp = MLP(width=width, seed=0)
    x = (torch.rand(batch, n_in, generator=gen) * 2 - 1).requires_grad_()
    grad = torch.randn(batch, n_out, generator=gen)
    models: dict[str, tuple[Callable[[], torch.Tensor], list[torch.Tensor]]] = {
        "kan": (lambda: kan(x), list(kan.parameters())),
        "kan-torch": (lambda: kan.forward_fast(x, backend="torch"), list(kan.parameters())),
        "linear+silu": (lambda: F.silu(linear(x)), list(linear.parameters())),
        f"mlp{width[1:-1]}": (lambda: mlp(x), list(mlp.parameters())),
    }
    if batch * n_in * (g + 3) * n_out <= DENSE_LIMIT:
        models["dense"] = (lambda: dense_reference(kan, x), list(kan.parameters()))
    times: dict[str, list[float]] = {name: [] for name in models}
    for rep in range(reps + 1):  # the first round warms up
        for name, (fn, _) in models.items():
            t0 = time.process_time()
            fn().backward(grad)
            dt = time.process_time() - t0
            if rep:
                times[name].append(dt)
            x.grad = None
    out = {}
    for name, (fn, params) in models.items():
        out[name] = {
            "us_per_sample": 1e6 * statistics.median(times[name]) / batch,
            "saved_bytes": saved_bytes(fn, params),
            "params": sum(p.numel() for p in params),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64->64 only, 3 repetitions")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 5)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if ckernel.library() is None:
        print(f"compiled kernels unavailable ({ckernel.library_error() or 'disabled'}): "
              "'kan' below is the PyTorch path")
    shapes = [(64, 64)] if args.quick else [(2, 5), (64, 64), (256, 256)]
    reps = args.reps or (3 if args.quick else 5)
    rows = []
    t_start = time.perf_counter()
    for n_in, n_out in shapes:
        for g in (5, 50):
            for batch in (1024, 8192):
                res = bench_case(n_in, n_out, g, batch, reps)
                rows.append((f"{n_in}->{n_out}", g, batch, res))
    took = time.perf_counter() - t_start
    print(f"torch {torch.__version__}, 1 thread, {reps} reps, CPU-time medians; {took:.0f} s")
    print()
    head = (
        f"{'shape':>9} {'G':>3} {'batch':>5} | {'kan us/s':>8} {'lin us/s':>8} {'kan/lin':>7} "
        f"{'kan/mlp':>7} {'dense/kan':>9} {'torch/kan':>9} | {'mem kan/lin':>11} "
        f"{'mem dense/lin':>13}"
    )
    print(head)
    print("-" * len(head))
    for shape, g, batch, res in rows:
        kan, lin, kan_torch = res["kan"], res["linear+silu"], res["kan-torch"]
        mlp = next(v for k, v in res.items() if k.startswith("mlp"))
        dense = res.get("dense")
        lin_mem = max(lin["saved_bytes"], 1)
        d_speed = f"{dense['us_per_sample'] / kan['us_per_sample']:9.1f}" if dense else f"{'-':>9}"
        d_mem = f"{dense['saved_bytes'] / lin_mem:13.1f}" if dense else f"{'-':>13}"
        print(
            f"{shape:>9} {g:>3} {batch:>5} | {kan['us_per_sample']:8.3f} "
            f"{lin['us_per_sample']:8.3f} {kan['us_per_sample'] / lin['us_per_sample']:7.1f} "
            f"{kan['us_per_sample'] / mlp['us_per_sample']:7.1f} {d_speed} "
            f"{kan_torch['us_per_sample'] / kan['us_per_sample']:9.1f} | "
            f"{kan['saved_bytes'] / lin_mem:11.2f} {d_mem}"
        )
    print()
    print("kan/lin: time of our KANLayer over nn.Linear+SiLU of the same shape; kan/mlp: over an")
    print("MLP [in, h, out] with the KAN layer's parameter count; dense/kan: speed-up over the")
    print("dense reference ('-': skipped, too large); torch/kan: the layer's PyTorch path over")
    print("its compiled kernels; mem: bytes saved for backward, over Linear's.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
