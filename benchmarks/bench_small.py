"""Small KANs, where per-call overhead dominates: the compiled kernels against the compact
PyTorch path, per LBFGS-style closure (zero_grad, forward, MSE, backward) on 1000 float64
points, and the one-call fused loss (:class:`kanplatform.nn.fused.FusedMSE`, what full-batch
LBFGS runs evaluate), one thread, CPU-time medians with the three interleaved.

    .venv/bin/python benchmarks/bench_small.py
    .venv/bin/python benchmarks/bench_small.py --step   # issue 19's KAN/MLP Adam step, by part

``--step``: KAN [8, 32, 32, 1] (G = 5, k = 3, float32) and an MLP [8, 109, 109, 1] of about
the same parameter count (13,185 vs 13,081), batch 256, one thread: the bare Adam step
(zero_grad, forward, MSE, backward, step) with the platform's Adam (``make_optimizer``:
torch's fused Adam) for both, its forward + backward alone, Adam's step alone, and for the
KAN the C kernels alone (the whole network's one-call forward and backward that
``KAN.forward`` runs, on tensors prepared once). CPU-time minima of 15 rounds of 100, all
interleaved.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from types import SimpleNamespace

import torch

from kanplatform.kernels import ckernel
from kanplatform.nn import KAN
from kanplatform.nn.fused import FusedMSE
from kanplatform.train.optim import make_optimizer

CASES = [([2, 1, 1], 5), ([2, 1, 1], 50), ([2, 5, 1], 5), ([2, 5, 1], 50), ([4, 8, 1], 5),
         ([4, 8, 1], 50)]
MODES = {"compact": "torch", "kernels": "auto", "fused": "auto"}  # KANPLATFORM_KERNEL


def closure(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    model.zero_grad()
    loss = ((model(x) - y) ** 2).mean()
    loss.backward()
    return loss


def step_parts() -> int:
    """``--step``: see the module docstring."""
    torch.set_num_threads(1)
    if ckernel.library() is None:
        print(f"compiled kernels unavailable: {ckernel.library_error()}")
        return 2
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(256, 8, generator=gen) * 2 - 1
    y = x[:, :4].sum(1, keepdim=True).sin()
    kan = KAN(width=[8, 32, 32, 1], grid_size=5, seed=0)
    h = 109
    mlp = torch.nn.Sequential(torch.nn.Linear(8, h), torch.nn.SiLU(), torch.nn.Linear(h, h),
                              torch.nn.SiLU(), torch.nn.Linear(h, 1))
    parts: dict[str, object] = {}
    adam = SimpleNamespace(name="adam", lr=1e-3, weight_decay=0.0)
    for name, model in (("kan", kan), ("mlp", mlp)):
        opt = make_optimizer(model.parameters(), adam)  # the platform's Adam, both models

        def fb(m=model, o=opt) -> None:  # noqa: ANN001
            o.zero_grad()
            torch.mean((m(x) - y) ** 2).backward()

        def step(f=fb, o=opt) -> None:  # noqa: ANN001
            f()
            o.step()

        parts[f"{name} step"], parts[f"{name} fwd+bwd"], parts[f"{name} adam"] = step, fb, opt.step
    # the KAN's kernels alone: the whole network's one-call forward and backward (what
    # KAN.forward runs here) on tensors prepared once
    plan = kan._network_plan(x)
    _, ws = plan.forward(x)
    gy = torch.randn(x.shape[0], 1, generator=gen)
    needs = (False, False) + (True,) * len(plan.params())
    parts["kan kernels"] = lambda: (plan.forward(x), plan.backward(x, ws, gy, needs))
    for f in parts.values():
        for _ in range(20):
            f()
    times: dict[str, list[float]] = {k: [] for k in parts}
    for _ in range(15):
        for k, f in parts.items():
            t0 = time.process_time()
            for _ in range(100):
                f()
            times[k].append((time.process_time() - t0) * 10)
    best = {k: min(v) for k, v in times.items()}
    for k, v in best.items():
        print(f"{k:>12}: {v:7.3f} ms")
    print(f"KAN/MLP step {best['kan step'] / best['mlp step']:.2f}, fwd+bwd "
          f"{best['kan fwd+bwd'] / best['mlp fwd+bwd']:.2f}, adam "
          f"{best['kan adam'] / best['mlp adam']:.2f}; load average {os.getloadavg()[0]:.1f}")
    return 0


def main() -> int:
    if "--step" in sys.argv[1:]:
        return step_parts()
    torch.set_num_threads(1)
    if ckernel.library() is None:
        print(f"compiled kernels unavailable: {ckernel.library_error()}")
        return 2
    print(f"{'width':>10} {'G':>3} | {'compact ms':>10} {'kernels ms':>10} {'fused ms':>9} "
          f"{'compact/kernels':>15} {'kernels/fused':>13}")
    for width, g in CASES:
        x = torch.rand(1000, width[0], dtype=torch.float64) * 2 - 1
        y = x.sum(1, keepdim=True).sin()
        model = KAN(width=width, grid_size=g, seed=0).double()
        fused = FusedMSE(model, x, y)

        times: dict[str, list[float]] = {m: [] for m in MODES}
        for rep in range(14):
            for mode, env in MODES.items():
                os.environ[ckernel.KERNEL_ENV] = env
                run = fused if mode == "fused" else (lambda m=model, a=x, b=y: closure(m, a, b))
                for _ in range(5):
                    run()
                t0 = time.process_time()
                for _ in range(40):
                    run()
                if rep >= 2:
                    times[mode].append((time.process_time() - t0) / 40 * 1e3)
        os.environ.pop(ckernel.KERNEL_ENV, None)
        c, k, f = (statistics.median(times[m]) for m in MODES)
        print(f"{str(width):>10} {g:>3} | {c:10.3f} {k:10.3f} {f:9.3f} {c / k:15.2f} "
              f"{k / f:13.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
