"""Our KAN against pykan (the reference implementation of the KAN papers), side by side.

Forward + backward of a whole network (MSE against a random target) per training step, CPU
time, one thread, median of repetitions with the two models interleaved in every repetition,
float32. pykan runs in its fastest mode (``model.speed()``: no symbolic branch, no saved
activations). pykan is not a dependency of kanplatform; install it beside the project, e.g.

    .venv/bin/pip install --target /tmp/pykan pykan==0.2.8 scikit-learn pandas tqdm
    PYTHONPATH=/tmp/pykan .venv/bin/python benchmarks/bench_pykan.py
    PYTHONPATH=/tmp/pykan .venv/bin/python benchmarks/bench_pykan.py --grid-extension

``--grid-extension``: end to end, the KAN paper's grid-extension run in both, alternated in
one process: pykan's tutorial recipe (``KAN([2, 1, 1])``, ``fit(opt="LBFGS", steps=200)``
per grid, ``refine`` to the next of 3, 5, 10, 20, 50; float64, 1000 train / 1000 test points)
against ``kanplatform train configs/experiment/grid_extension.yaml`` (the same task, steps,
grids and grid updates; tracking off). Wall and CPU time of each training, and the test
RMSE at every grid.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

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


GRIDS = [3, 5, 10, 20, 50]
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "experiment" / "grid_extension.yaml"


def pykan_grid_extension(ckpt: str, steps: int = 200) -> dict[int, float]:
    """pykan's grid-extension tutorial; test RMSE per grid."""
    from kan import KAN as PyKAN
    from kan.utils import create_dataset

    torch.set_default_dtype(torch.float64)
    try:
        def f(x: torch.Tensor) -> torch.Tensor:
            return torch.exp(torch.sin(torch.pi * x[:, [0]]) + x[:, [1]] ** 2)

        data = create_dataset(f, n_var=2, train_num=1000, test_num=1000, seed=0)
        rmse = {}
        model = None
        for g in GRIDS:
            model = PyKAN(width=[2, 1, 1], grid=g, k=3, seed=0, auto_save=False,
                          ckpt_path=ckpt) if model is None else model.refine(g)
            with contextlib.redirect_stderr(io.StringIO()):  # its progress bar
                results = model.fit(data, opt="LBFGS", steps=steps, log=steps)
            rmse[g] = float(results["test_loss"][-1])
        return rmse
    finally:
        torch.set_default_dtype(torch.float32)


def ours_grid_extension(out: str, steps: int = 200) -> tuple[dict[int, float], float]:
    """``kanplatform train configs/experiment/grid_extension.yaml``: test RMSE per grid and
    the run's ``wall_time_s``."""
    from kanplatform.config import load_config
    from kanplatform.train import fit

    cfg = load_config(CONFIG, [f"output_dir={out}", "tracking.mode=disabled",
                               "trainer.enable_progress_bar=false",
                               f"grid.steps_per_stage={steps}",
                               f"trainer.val_every_n_steps={min(100, steps)}"])
    metrics = fit(cfg, verbose=False).metrics
    return ({s["grid_size"]: s["test/rmse"] for s in metrics["stages"]},
            float(metrics["wall_time_s"]))


def grid_extension(reps: int, steps: int = 200) -> int:
    """Both grid-extension trainings, alternated ``reps`` times; prints times and RMSEs."""
    import pytorch_lightning  # noqa: F401  (imported before the clocks start, as pykan is)

    torch.set_num_threads(1)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, 1 thread, {steps} LBFGS steps per grid, load average "
          f"{load:.2f} at the start")
    head = (f"{'run':>5} {'rep':>3} | {'wall s':>7} {'cpu s':>6} | "
            + " ".join(f"{'G=' + str(g):>8}" for g in GRIDS))
    print(head)
    print("-" * len(head))
    times: dict[str, list[tuple[float, float]]] = {"pykan": [], "ours": []}
    tmp = tempfile.mkdtemp(prefix="grid-ext-")
    for rep in range(reps):
        for name in ("pykan", "ours"):
            w0, c0 = time.perf_counter(), time.process_time()
            if name == "pykan":
                rmse = pykan_grid_extension(tmp, steps)
            else:
                rmse, wall_time_s = ours_grid_extension(tmp, steps)
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            times[name].append((wall, cpu))
            extra = f"  (wall_time_s {wall_time_s:.2f})" if name == "ours" else ""
            print(f"{name:>5} {rep:>3} | {wall:7.2f} {cpu:6.2f} | "
                  + " ".join(f"{rmse[g]:8.2e}" for g in GRIDS) + extra)
    (wp, cp), (wo, co) = ([statistics.median(v) for v in zip(*times[n])]
                          for n in ("pykan", "ours"))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nmedians: pykan {wp:.2f} s wall / {cp:.2f} s CPU, ours {wo:.2f} s wall / "
          f"{co:.2f} s CPU; pykan/ours {wp / wo:.2f}x wall, {cp / co:.2f}x CPU "
          f"(load average {load:.2f} at the end)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--grid-extension", action="store_true",
                        help="end to end: the grid-extension run in both (reps default 1)")
    parser.add_argument("--steps", type=int, default=200,
                        help="--grid-extension: LBFGS steps per grid in both (the paper: 200)")
    args = parser.parse_args(argv)
    try:
        from kan import KAN as PyKAN
    except ImportError:
        print("pykan is not installed; see this script's docstring", file=sys.stderr)
        return 2
    if args.grid_extension:
        return grid_extension(args.reps if "--reps" in (argv or sys.argv) else 1, args.steps)
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
