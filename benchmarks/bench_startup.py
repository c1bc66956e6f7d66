"""What a run spends outside its training loop: start-up, teardown and spline snapshots.

Three measurements, one thread (``OMP_NUM_THREADS=1``), on the shipped quick run
(``configs/experiment/quick.yaml``: KAN [2, 1, 1], 2 grids x 10 LBFGS steps, tracking off):

1. ``kanplatform train`` in fresh processes: the command's wall and CPU time, the run's
   ``wall_time_s`` (its training loop) and ``total_time_s - wall_time_s`` (the rest of ``fit``,
   Lightning's import included: a fresh process pays it once).
2. ``fit`` twice in one process: the second call's ``total_time_s - wall_time_s`` is the
   platform's own set-up and teardown (imports done).
3. One spline snapshot (figures + ``.npz``, no W&B) of KAN [8, 32, 32, 1] and of the quick
   run's KAN [2, 1, 1], CPU seconds per part.
4. Importing the training modules in a fresh process, CPU seconds and the cyclic garbage
   collector's share: as the package does it (Lightning imported with the collector paused,
   then frozen: ``kanplatform/_util/lightning.py``) against Lightning imported first by plain
   ``import pytorch_lightning``, alternating.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_startup.py [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "configs" / "experiment" / "quick.yaml"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def fresh_runs(tmp: Path, reps: int) -> None:
    rows = []
    for rep in range(reps):
        out = tmp / f"fresh{rep}"
        cpu0, t0 = _children_cpu(), time.perf_counter()
        subprocess.run([sys.executable, "-m", "kanplatform", "train", str(QUICK), "--quiet",
                        f"output_dir={out}", "trainer.num_threads=1"], check=True,
                       capture_output=True)
        wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
        metrics = json.loads(next(out.glob("*/metrics.json")).read_text())
        rows.append((wall, cpu, metrics["wall_time_s"], metrics["total_time_s"]))
    print("1. `kanplatform train configs/experiment/quick.yaml` in a fresh process "
          f"(median of {reps}):")
    wall, cpu, loop, total = (statistics.median(c) for c in zip(*rows))
    print(f"   command {wall:.2f} s wall, {cpu:.2f} s CPU; run wall_time_s {loop:.2f}, "
          f"total_time_s {total:.2f}: total - wall {total - loop:.2f} s")


def in_process(tmp: Path) -> None:
    from kanplatform.config import load_config
    from kanplatform.train import fit

    cfg = load_config(QUICK, [f"output_dir={tmp / 'inproc'}", "trainer.num_threads=1"])
    rows = []
    for _ in range(3):
        m = fit(cfg, verbose=False).metrics
        rows.append(m["total_time_s"] - m["wall_time_s"])
    print(f"2. fit() three times in one process: total - wall {rows[0]:.2f} s (first: "
          f"Lightning's import), then {rows[1]:.3f} s, {rows[2]:.3f} s")


def snapshots(tmp: Path, reps: int) -> None:
    from kanplatform.nn import KAN
    from kanplatform.tracking import figures, snapshot

    print(f"3. one spline snapshot, CPU s (median of {reps}; figures drawn: at most "
          f"{figures.MAX_EDGES_PLOTTED} edges a layer):")
    for width in ([2, 1, 1], [8, 32, 32, 1]):
        model = KAN(width, grid_size=5)
        snapshot(model, tmp / "snap", "warm")  # matplotlib's import and fonts
        parts: dict[str, list[float]] = {"curves": [], "figures": [], "png": [], "npz": [],
                                          "snapshot()": []}
        for rep in range(reps):
            t = time.process_time()
            curves = figures.spline_curves(model)
            parts["curves"].append(time.process_time() - t)
            t = time.process_time()
            figs = [figures.spline_figure(c, title="t") for c in curves]
            parts["figures"].append(time.process_time() - t)
            t = time.process_time()
            for i, fig in enumerate(figs):
                figures.save_figure(fig, tmp / "snap" / f"p{rep}_{i}.png")
            parts["png"].append(time.process_time() - t)
            t = time.process_time()
            figures.save_curves(curves, tmp / "snap" / f"c{rep}.npz")
            parts["npz"].append(time.process_time() - t)
            t = time.process_time()
            snapshot(model, tmp / "snap", f"s{rep}")
            parts["snapshot()"].append(time.process_time() - t)
        edges = sum(a * b for a, b in zip(width[:-1], width[1:]))
        print(f"   KAN {width} ({edges} edges): " + ", ".join(
            f"{k} {statistics.median(v):.3f}" for k, v in parts.items()))


IMPORT_CODE = """
import gc, sys, time
spent = [0.0, 0.0]
def timer(phase, info):
    if phase == "start":
        spent[1] = time.process_time()
    else:
        spent[0] += time.process_time() - spent[1]
gc.callbacks.append(timer)
cpu = time.process_time()
import torch
if sys.argv[1] == "plain":
    import pytorch_lightning
import kanplatform.train.fitting, kanplatform.train.module, kanplatform.tracking.callbacks
print(time.process_time() - cpu, spent[0])
"""


def imports(reps: int) -> None:
    rows: dict[str, list[tuple[float, float]]] = {"kanplatform": [], "plain": []}
    for _ in range(reps):
        for mode in rows:
            out = subprocess.run([sys.executable, "-c", IMPORT_CODE, mode], check=True,
                                 capture_output=True, text=True).stdout.split()
            rows[mode].append((float(out[0]), float(out[1])))
    print(f"4. importing the training modules in a fresh process (median of {reps}):")
    for mode, values in rows.items():
        cpu, gc_s = (statistics.median(v) for v in zip(*values))
        print(f"   {mode:>11}: {cpu:.2f} s CPU, of which the garbage collector {gc_s:.2f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    print(f"load average {os.getloadavg()[0]:.1f}, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS')}")
    fresh_runs(tmp, args.reps)
    in_process(tmp)
    snapshots(tmp, args.reps)
    imports(args.reps)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
