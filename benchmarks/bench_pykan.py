"""Our KAN against pykan (the reference implementation of the KAN papers), side by side.

Forward + backward of a whole network (MSE against a random target) per training step, CPU
time, one thread, median of repetitions with the two models interleaved in every repetition,
float32. pykan runs in its fastest mode (``model.speed()``: no symbolic branch, no saved
activations). pykan is not a dependency of kanplatform; install it beside the project, e.g.

    .venv/bin/pip install --target /tmp/pykan pykan==0.2.8 scikit-learn pandas tqdm
    PYTHONPATH=/tmp/pykan .venv/bin/python benchmarks/bench_pykan.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import torch

from kanplatform.kernels import ckernel
from kanplatform.nn import KAN

CASES = [  # width, grid, batch
    ([2, 5, 1], 5, 1000),
    ([2, 5, 1], 50, 1000),
    ([4, 16, 16, 1], 5, 4096),
    ([4, 16, 16, 1], 50, 4096),
    ([64, 64], 5, 4096),
    ([64, 64], 50, 4096),
]


def step_time(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    t0 = time.process_time()
    loss = torch.mean((model(x) - y) ** 2)
    loss.backward()
    return time.process_time() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)
    try:
        from kan import KAN as PyKAN
    except ImportError:
        print("pykan is not installed; see this script's docstring", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    kernels = "compiled kernels" if ckernel.library() is not None else "PyTorch path"
    print(f"torch {torch.__version__}, 1 thread, {args.reps} reps, CPU-time medians; ours on "
          f"its {kernels}")
    print()
    head = (f"{'width':>16} {'G':>3} {'batch':>5} | {'pykan ms':>9} {'ours ms':>8} "
            f"{'speed-up':>8} | {'pykan params':>12} {'our params':>10}")
    print(head)
    print("-" * len(head))
    ckpt = tempfile.mkdtemp(prefix="pykan-")
    for width, g, batch in CASES:
        gen = torch.Generator().manual_seed(0)
        x = torch.rand(batch, width[0], generator=gen) * 2 - 1
        y = torch.randn(batch, width[-1], generator=gen)
        # (pykan rewrites the width list it is given: pass a copy)
        theirs = PyKAN(width=list(width), grid=g, k=3, seed=0, auto_save=False, ckpt_path=ckpt)
        theirs.speed()
        ours = KAN(width=width, grid_size=g, spline_order=3, seed=0)
        times: dict[str, list[float]] = {"pykan": [], "ours": []}
        for rep in range(args.reps + 1):  # the first round warms up
            for name, model in (("pykan", theirs), ("ours", ours)):
                model.zero_grad(set_to_none=True)
                dt = step_time(model, x, y)
                if rep:
                    times[name].append(dt)
        t_p, t_o = (1e3 * statistics.median(times[n]) for n in ("pykan", "ours"))
        n_p = sum(p.numel() for p in theirs.parameters() if p.requires_grad)
        n_o = sum(p.numel() for p in ours.parameters() if p.requires_grad)
        print(f"{str(width):>16} {g:>3} {batch:>5} | {t_p:9.2f} {t_o:8.2f} {t_p / t_o:8.1f} | "
              f"{n_p:>12} {n_o:>10}")
    print()
    print("ms: forward + backward + MSE per training step; speed-up: pykan's time over ours.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
