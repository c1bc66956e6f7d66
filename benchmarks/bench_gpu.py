"""Speed and memory of one KAN layer on a CUDA GPU: the Triton kernels vs the layer's PyTorch
path, nn.Linear+SiLU, an MLP of equal parameters and the dense basis@W reference.

For every dtype (float32, bfloat16), shape ``in -> out``, grid size ``G`` (cubic splines) and
batch ``B`` it times forward+backward (gradients to the input too, as inside a deep network)
with CUDA events: warm-up iterations, then the median of repetitions in which the models run
interleaved, so that clock and thermal drift hit all of them alike. Memory: the peak CUDA
memory a forward+backward allocates above what was allocated before it, and the bytes autograd
saves for backward (unique storages, parameters excluded). Ratio tables follow, then the
targets of issue 18 and whether they are met.

    python benchmarks/bench_gpu.py                    # full grid (~10 min on an H200)
    python benchmarks/bench_gpu.py --quick            # 64->64 and 256->256, fewer batches
    python benchmarks/bench_gpu.py --quick --json out.json

Needs only torch, triton and this checkout (``PYTHONPATH=.`` if kanplatform is not
installed). The dense reference is ``bench_layers.dense_reference`` (written there,
independently of ``kanplatform.nn``: full Cox-de Boor basis ``(B, in*(G+k))`` @ the weight
table, with the layer's linear continuation outside the grid); skipped above
``DENSE_ELEMENTS`` basis entries (it needs several times that in memory).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from bench_layers import dense_reference, saved_bytes
from torch import nn

from kanplatform.nn import MLP, KANLayer, count_params, match_mlp

DENSE_ELEMENTS = 1.5e9  # largest dense basis B * in * (G + k) timed (6 GB in float32)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def _elapsed_ms(step: Callable[[], None], cuda: bool) -> float:
    if not cuda:  # --device cpu: a check of this script (in Triton's interpreter), not a figure
        t0 = time.perf_counter()
        step()
        return 1e3 * (time.perf_counter() - t0)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    step()
    end.record()
    end.synchronize()
    return start.elapsed_time(end)


def time_models(models: dict[str, Callable[[], None]], warmup: int, reps: int,
                cuda: bool = True) -> dict:
    """Median milliseconds of each model's step, the models interleaved in every repetition."""
    times: dict[str, list[float]] = {name: [] for name in models}
    for rep in range(warmup + reps):
        for name, step in models.items():
            ms = _elapsed_ms(step, cuda)
            if rep >= warmup:
                times[name].append(ms)
    return {name: statistics.median(v) for name, v in times.items()}


def peak_bytes(step: Callable[[], None]) -> int | None:
    """Peak CUDA memory one step allocates above what was allocated before it."""
    if not torch.cuda.is_available():
        return None
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


def bench_case(dtype: torch.dtype, n_in: int, n_out: int, g: int, batch: int, warmup: int,
               reps: int, dev: torch.device) -> dict:
    """Times, memory and the Triton-vs-PyTorch difference of the models for one case."""
    gen = torch.Generator().manual_seed(0)
    kan = KANLayer(n_in, n_out, grid_size=g, generator=gen).to(dev, dtype)
    linear = nn.Linear(n_in, n_out).to(dev, dtype)
    width = match_mlp(count_params(kan), depth=1, in_features=n_in, out_features=n_out)
    mlp = MLP(width=width, seed=0).to(dev, dtype)
    x = (torch.rand(batch, n_in, generator=gen) * 2.4 - 1.2).to(dev, dtype).requires_grad_()
    grad = torch.randn(batch, n_out, generator=gen).to(dev, dtype)
    forwards: dict[str, tuple[Callable[[], torch.Tensor], nn.Module]] = {
        "triton": (lambda: kan.forward_fast(x, backend="triton"), kan),
        "torch": (lambda: kan.forward_fast(x, backend="torch"), kan),
        "linear+silu": (lambda: F.silu(linear(x)), linear),
        "mlp": (lambda: mlp(x), mlp),
    }
    if batch * n_in * (g + kan.spline_order) <= DENSE_ELEMENTS:
        forwards["dense"] = (lambda: dense_reference(kan, x), kan)

    def stepper(fwd: Callable[[], torch.Tensor], module: nn.Module) -> Callable[[], None]:
        def step() -> None:
            fwd().backward(grad)
            x.grad = None
            for p in module.parameters():
                p.grad = None
        return step

    out: dict = {"dtype": str(dtype).removeprefix("torch."), "shape": f"{n_in}->{n_out}",
                 "G": g, "batch": batch, "mlp_width": width, "models": {}}
    steps = {}
    for name, (fwd, module) in forwards.items():
        try:  # e.g. the PyTorch path or the dense reference out of memory: reported, not fatal
            step = stepper(fwd, module)
            step()
            steps[name] = step
            out["models"][name] = {"peak_bytes": peak_bytes(step),
                                   "saved_bytes": saved_bytes(fwd, list(module.parameters()))}
        except (torch.cuda.OutOfMemoryError, RuntimeError) as err:
            out["models"][name] = {"error": f"{type(err).__name__}: {str(err)[:120]}"}
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    for name, ms in time_models(steps, warmup, reps, dev.type == "cuda").items():
        out["models"][name]["ms"] = ms
    if "torch" in steps:  # the kernels against the reference path, at this size
        with torch.no_grad():
            a, b = kan.forward_fast(x, backend="triton"), kan.forward_fast(x, backend="torch")
        out["max_rel_diff"] = float((a.float() - b.float()).abs().max() / b.float().abs().max())
    return out


def _ratio(res: dict, a: str, b: str) -> float | None:
    ma, mb = res["models"].get(a, {}), res["models"].get(b, {})
    return ma["ms"] / mb["ms"] if "ms" in ma and "ms" in mb else None


def _fmt(v: float | None, width: int, digits: int = 1) -> str:
    return f"{v:{width}.{digits}f}" if v is not None else f"{'-':>{width}}"


def print_table(rows: list[dict]) -> None:
    head = (f"{'dtype':>8} {'shape':>11} {'G':>3} {'batch':>6} | {'triton ms':>9} {'lin ms':>7} "
            f"| {'tri/lin':>7} {'tri/mlp':>7} {'torch/tri':>9} {'dense/tri':>9} | "
            f"{'peak MB tri':>11} {'torch':>7} {'lin':>7} {'dense':>7} {'saved MB tri':>12} "
            f"| {'diff':>7}")
    print(head)
    print("-" * len(head))
    for r in rows:
        m = r["models"]
        mb = {name: {key: v / 2**20 for key, v in m[name].items()
                     if key.endswith("bytes") and v is not None}
              for name in m}
        print(f"{r['dtype']:>8} {r['shape']:>11} {r['G']:>3} {r['batch']:>6} | "
              f"{_fmt(m['triton'].get('ms'), 9, 3)} {_fmt(m['linear+silu'].get('ms'), 7, 3)} | "
              f"{_fmt(_ratio(r, 'triton', 'linear+silu'), 7)} "
              f"{_fmt(_ratio(r, 'triton', 'mlp'), 7)} "
              f"{_fmt(_ratio(r, 'torch', 'triton'), 9)} {_fmt(_ratio(r, 'dense', 'triton'), 9)} | "
              f"{_fmt(mb['triton'].get('peak_bytes'), 11)} "
              f"{_fmt(mb['torch'].get('peak_bytes'), 7)} "
              f"{_fmt(mb['linear+silu'].get('peak_bytes'), 7)} "
              f"{_fmt(mb.get('dense', {}).get('peak_bytes'), 7)} "
              f"{_fmt(mb['triton'].get('saved_bytes'), 12)} | "
              f"{r.get('max_rel_diff', float('nan')):7.1e}")
    print()
    print("tri/lin: fwd+bwd time of the KAN layer on the Triton kernels over nn.Linear+SiLU of the")
    print("same shape; tri/mlp: over an MLP [in, h, out] of the layer's parameter count; torch/tri")
    print("and dense/tri: speed-up over the layer's PyTorch path and the dense reference ('-':")
    print("skipped or failed, see the JSON); peak: CUDA memory one step allocates; saved: bytes")
    print("kept for backward; diff: max |y_triton - y_torch| / max |y_torch|.")


def check_targets(rows: list[dict]) -> list[str]:
    """Issue 18's targets, each ``PASS``/``FAIL``/``n/a`` with the figure."""
    def find(dtype: str, shape: str, g: int, batch: int) -> dict | None:
        return next((r for r in rows if (r["dtype"], r["shape"], r["G"], r["batch"])
                     == (dtype, shape, g, batch)), None)

    lines = []
    r = find("float32", "256->256", 20, 65536)
    v = _ratio(r, "triton", "linear+silu") if r else None
    lines.append(f"{'n/a' if v is None else 'PASS' if v <= 4 else 'FAIL'}: 256->256 G=20 "
                 f"B=65536 fp32 fwd+bwd <= 4x Linear+SiLU: {_fmt(v, 0)}x")
    r = find("float32", "256->256", 100, 16384) or find("float32", "256->256", 100, 4096)
    v = _ratio(r, "dense", "triton") if r else None
    lines.append(f"{'n/a' if v is None else 'PASS' if v >= 20 else 'FAIL'}: G=100 >= 20x faster "
                 f"than the dense reference (256->256 fp32, B={r['batch'] if r else '-'}): "
                 f"{_fmt(v, 0)}x")
    saved = [s for s in (find("float32", "256->256", g, 65536) for g in (5, 20, 100)) if s]
    if len(saved) == 3:
        b = [s["models"]["triton"]["saved_bytes"] for s in saved]
        lines.append(f"{'PASS' if max(b) == min(b) else 'FAIL'}: saved memory flat in G "
                     f"(256->256 B=65536 fp32, G=5/20/100): "
                     f"{' / '.join(f'{v / 2**20:.1f}' for v in b)} MB")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="64->64 and 256->256, batches 4096 and 65536, 5 repetitions")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 10, 5)")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up iterations (default 3)")
    parser.add_argument("--json", default=None, help="also write every figure to this file")
    parser.add_argument("--shapes", default=None, help="e.g. 64x64,256x256 (default: all)")
    parser.add_argument("--grids", default="5,20,100", help="grid sizes (default 5,20,100)")
    parser.add_argument("--batches", default=None, help="e.g. 4096,65536")
    parser.add_argument("--dtypes", default="fp32,bf16", help="fp32 and/or bf16")
    parser.add_argument("--device", default="cuda",
                        help="cuda; 'cpu' only checks this script (Triton's interpreter, "
                             "TRITON_INTERPRET=1): its times are not figures")
    args = parser.parse_args(argv)
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("error: bench_gpu.py needs a CUDA GPU (torch.cuda.is_available() is False); "
              "benchmarks/bench_layers.py measures the CPU", file=sys.stderr)
        return 2
    shapes = [(64, 64), (256, 256)] if args.quick else [(64, 64), (256, 256), (1024, 1024)]
    if args.shapes:
        shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    batches = [4096, 65536] if args.quick else [4096, 16384, 65536]
    if args.batches:
        batches = [int(v) for v in args.batches.split(",")]
    reps = args.reps or (5 if args.quick else 10)
    import triton

    name = torch.cuda.get_device_name() if dev.type == "cuda" else "CPU (interpreter check)"
    meta = {"device": name, "torch": torch.__version__, "triton": triton.__version__,
            "reps": reps, "warmup": args.warmup}
    t0 = time.perf_counter()
    rows = []
    for dname in args.dtypes.split(","):
        for n_in, n_out in shapes:
            for g in (int(v) for v in args.grids.split(",")):
                for batch in batches:
                    rows.append(bench_case(DTYPES[dname], n_in, n_out, g, batch, args.warmup,
                                           reps, dev))
                    print(f"  {dname} {n_in}->{n_out} G={g} B={batch}: "
                          f"{time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
                    if args.json:  # rewritten after every case: a cut-off run keeps its figures
                        _write_json(args.json, {**meta, "complete": False, "rows": rows})
    print(f"{name}, torch {torch.__version__}, triton "
          f"{triton.__version__}; medians of {reps} reps after {args.warmup} "
          f"warm-up; {time.perf_counter() - t0:.0f} s")
    print()
    print_table(rows)
    print()
    targets = check_targets(rows)
    for line in targets:
        print(line)
    if args.json:
        _write_json(args.json, {**meta, "complete": True, "rows": rows, "targets": targets})
    return 0


def _write_json(path: str, data: dict) -> None:
    tmp = f"{path}.part"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


if __name__ == "__main__":
    raise SystemExit(main())
