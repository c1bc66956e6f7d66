"""Small KANs, where per-call overhead dominates: the compiled kernels against the compact
PyTorch path, per LBFGS-style closure (zero_grad, forward, MSE, backward) on 1000 float64
points, and the one-call fused loss (:class:`kanplatform.nn.fused.FusedMSE`, what full-batch
LBFGS runs evaluate), one thread, CPU-time medians with the three interleaved.

    .venv/bin/python benchmarks/bench_small.py
"""

from __future__ import annotations

import os
import statistics
import time

import torch

from kanplatform.kernels import ckernel
from kanplatform.nn import KAN
from kanplatform.nn.fused import FusedMSE

CASES = [([2, 1, 1], 5), ([2, 1, 1], 50), ([2, 5, 1], 5), ([2, 5, 1], 50), ([4, 8, 1], 5),
         ([4, 8, 1], 50)]
MODES = {"compact": "torch", "kernels": "auto", "fused": "auto"}  # KANPLATFORM_KERNEL


def closure(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    model.zero_grad()
    loss = ((model(x) - y) ** 2).mean()
    loss.backward()
    return loss


def main() -> int:
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
