"""Seeds as one stack: S separate ``fit`` runs against one ``fit_stacked`` of the same S runs,
side by side in one process, one thread.

Cases: Adam on mini-batches of ``exp_sin_sq`` (1000 training points) for a KAN [2, 5, 1]
(grid 10, grid updates on) and MLPs [2, 20, 1] and [2, 64, 64, 1], batch 64 and 256, S = 3
seeds; tracking disabled, no periodic checkpoints, validation every 100 steps. Both sides
train exactly the same runs (``tests/train/test_stacked.py`` checks they are equal bit for
bit; here the final test RMSEs are compared too). Times: the training loops' own
``wall_time_s`` summed over the S separate runs against the stack's (its runs share one
loop: the first run's), and the whole calls (set-up, evaluation, files) as ``total``. The
two sides alternate in every repetition (the machine is shared: ratios are the figures);
medians.

    .venv/bin/python benchmarks/bench_stacked_fit.py            # ~2-3 min on 2 quiet cores
    .venv/bin/python benchmarks/bench_stacked_fit.py --quick    # fewer steps, one repetition
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "KAN [2,5,1] G=10": ["model.width=[2,5,1]", "grid.schedule=[10]"],
    "MLP [2,20,1]": ["model=mlp", "model.width=[2,20,1]", "grid.schedule=[]"],
    "MLP [2,64,64,1]": ["model=mlp", "model.width=[2,64,64,1]", "grid.schedule=[]"],
}


def _cfgs(out: Path, case: list[str], batch: int, steps: int, seeds: int) -> list:
    from kanplatform.train.resolve import load_run_config

    base = [f"output_dir={out}", "optim.name=adam", "optim.lr=0.01", f"data.batch_size={batch}",
            f"trainer.max_steps={steps}", f"grid.steps_per_stage={steps}",
            "trainer.val_every_n_steps=100", "trainer.checkpoint_every_n_steps=0",
            "trainer.num_threads=1", "tracking.mode=disabled", *case]
    return [load_run_config(ROOT / "configs" / "default.yaml", [*base, f"seed={s}"])
            for s in range(seeds)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    from kanplatform.train import fit, fit_stacked

    steps, reps = (300, 1) if args.quick else (1000, 3)
    print(f"S = {args.seeds} seeds, Adam, {steps} steps, 1 thread; medians of {reps}")
    print(f"{'case':<20} {'batch':>5} {'loop sep s':>10} {'loop stack s':>12} {'ratio':>6} "
          f"{'total sep s':>11} {'total stack s':>13} {'ratio':>6}  same")
    with tempfile.TemporaryDirectory() as tmp:
        for name, case in CASES.items():
            for batch in (64, 256):
                loops: dict[str, list[float]] = {"sep": [], "stack": []}
                totals: dict[str, list[float]] = {"sep": [], "stack": []}
                same = True
                for _ in range(reps):
                    out = Path(tmp) / f"{len(os.listdir(tmp))}"
                    started = time.perf_counter()
                    alone = [fit(c, verbose=False)
                             for c in _cfgs(out / "sep", case, batch, steps, args.seeds)]
                    totals["sep"].append(time.perf_counter() - started)
                    loops["sep"].append(sum(r.metrics["wall_time_s"] for r in alone))
                    started = time.perf_counter()
                    stack = fit_stacked(_cfgs(out / "stack", case, batch, steps, args.seeds),
                                        verbose=False)
                    totals["stack"].append(time.perf_counter() - started)
                    loops["stack"].append(stack[0].metrics["wall_time_s"])
                    same &= all(a.metrics["final"] == b.metrics["final"]
                                for a, b in zip(alone, stack))
                ls, lk = statistics.median(loops["sep"]), statistics.median(loops["stack"])
                ts, tk = statistics.median(totals["sep"]), statistics.median(totals["stack"])
                print(f"{name:<20} {batch:>5} {ls:>10.2f} {lk:>12.2f} {ls / lk:>6.2f} "
                      f"{ts:>11.2f} {tk:>13.2f} {ts / tk:>6.2f}  {same}", flush=True)


if __name__ == "__main__":
    main()
