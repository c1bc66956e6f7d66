"""Training throughput: ``kanplatform train`` (through ``fit``) against a bare PyTorch loop
over the same model and data, side by side in one run, one thread.

Mini-batch cases: KAN [8, 32, 32, 1] and its parameter-matched MLP (``model=mlp``), Adam,
batch 64 / 256 / 1024, on an 8-input CSV (``data.dataset=file``), validation once, tracking
disabled, no periodic checkpoints. Full-batch case: the KAN [2, 5, 1] of the paper's regime
with LBFGS (strong Wolfe, float64) on ``exp_sin_sq``. The platform's time is the run's own
``wall_time_s``: its training loop (``LoopClock``: from the first ``on_train_start`` to the
first ``on_train_end`` hook; Lightning's set-up, the final spline snapshot and evaluation and
the files are in ``total_time_s`` beside it). The bare loop is what a user would write: index
batches over the training tensors, ``zero_grad``/forward/MSE/``backward``/``step`` with the
platform's Adam (``make_optimizer``: torch's fused Adam), or ``torch.optim.LBFGS`` with an
autograd closure.

Equal work on both sides: grid updates are off in these configs (``grid.update_every=0``:
the default, every 5th step below step 50, costs the same refits on both sides and would
only dilute the ratio), and the bare loop makes the evaluations the platform's loop makes
(one validation, ``val_every_n_steps`` = the budget, and the end-of-stage row: train, val
and test RMSE). The two alternate in every repetition (the machine is shared: ratios, not
absolute times, are the figures); medians. ``CPU p/b``: the same ratio of CPU seconds
(the run's ``cpu_time_s`` against the bare loop's ``process_time``), steadier than wall
time on a loaded machine. ``K``: the platform run's optimiser steps per Lightning batch
(``trainer/steps_per_batch``, :mod:`kanplatform.train.chunking`).

``--contended`` runs the KAN step beside a busy process (one spinning Python process per
core) with 1 thread and with the platform's default thread count (``run_threads(None)``:
torch's, capped by the process's CPU affinity and cgroup quota): the OpenMP kernels must not
slow down more than a single-threaded run does. It measures twice, each in a fresh process
(the OpenMP runtime reads its waiting policy once, when torch loads it): with the policy
``import kanplatform`` sets (``OMP_WAIT_POLICY=PASSIVE``, ``GOMP_SPINCOUNT=10000``) and with
libgomp's default (threads spin ~300k rounds before sleeping), side by side.

    .venv/bin/python benchmarks/bench_train.py               # ~2-4 min on 2 quiet cores
    .venv/bin/python benchmarks/bench_train.py --quick       # fewer steps, one repetition
    .venv/bin/python benchmarks/bench_train.py --contended
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from kanplatform.train import fit
from kanplatform.train.models import build_model_from_config
from kanplatform.train.optim import make_optimizer
from kanplatform.train.resolve import load_run_config

ROOT = Path(__file__).resolve().parents[1]
WIDTH = [8, 32, 32, 1]
N_TRAIN = 4096


def write_csv(path: Path, n: int) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(n, 8, generator=gen, dtype=torch.float64) * 2 - 1
    y = torch.sin(x[:, :4].sum(1)) + x[:, 4:].pow(2).sum(1) / 4
    with path.open("w") as f:
        f.write(",".join([f"x{i}" for i in range(8)] + ["y"]) + "\n")
        for row, t in zip(x.tolist(), y.tolist()):
            f.write(",".join(f"{v:.9g}" for v in row) + f",{t:.9g}\n")


def minibatch_cfg(tmp: Path, csv: Path, kind: str, batch: int, steps: int) -> Any:
    over = [f"output_dir={tmp / 'runs'}", "data.dataset=file", f"data.path={csv}",
            f"data.inputs=[{','.join(f'x{i}' for i in range(8))}]", "data.targets=[y]",
            f"data.n_train={N_TRAIN}", "data.n_val=512", "data.n_test=512",
            f"data.batch_size={batch}", f"model.width={WIDTH}", "grid.schedule=[]",
            "grid.update_every=0",
            "model.grid_size=5", "optim.name=adam", "optim.lr=0.001",
            f"trainer.max_steps={steps}", f"trainer.val_every_n_steps={steps}",
            "trainer.checkpoint_every_n_steps=0", "trainer.precision=32",
            "trainer.num_threads=1", "trainer.enable_progress_bar=false",
            "tracking.mode=disabled"]
    if kind == "mlp":  # the KAN's parameter count, stated: ``model=mlp`` alone matched 156
        kan = build_model_from_config(minibatch_cfg(tmp, csv, "kan", batch, steps).model)
        over += ["model=mlp", "model.match=params",
                 f"model.match_params={sum(p.numel() for p in kan.parameters())}"]
    return load_run_config([ROOT / "configs" / "default.yaml"], over)


def lbfgs_cfg(tmp: Path, steps: int) -> Any:
    over = [f"output_dir={tmp / 'runs'}", "model.width=[2,5,1]", "grid.schedule=[]",
            "grid.update_every=0",
            "model.grid_size=5", f"trainer.max_steps={steps}",
            f"trainer.val_every_n_steps={steps}", "trainer.checkpoint_every_n_steps=0",
            "trainer.precision=64", "trainer.num_threads=1", "optim.max_iter=12",
            "optim.history_size=10", "trainer.enable_progress_bar=false",
            "tracking.mode=disabled"]
    return load_run_config([ROOT / "configs" / "default.yaml"], over)


def bare(cfg: Any) -> tuple[float, float]:
    """The same model, data and step budget in a plain loop: ``(wall s, CPU s)`` of it."""
    from kanplatform.data.datasets import dataset_from_config

    dtype = torch.float64 if cfg.trainer.precision == 64 else torch.float32
    torch.manual_seed(cfg.seed)
    model = build_model_from_config(cfg.model, cfg.model.get("grid_size"), seed=cfg.seed)
    model = model.to(dtype)
    splits = dataset_from_config(cfg.data, dtype=dtype)
    x, y = splits.train
    steps = int(cfg.trainer.max_steps)
    t0, c0 = time.perf_counter(), time.process_time()
    if cfg.optim.name == "lbfgs":
        opt = torch.optim.LBFGS(model.parameters(), lr=cfg.optim.lr,
                                max_iter=cfg.optim.max_iter,
                                history_size=cfg.optim.history_size,
                                tolerance_grad=cfg.optim.tolerance_grad,
                                tolerance_change=cfg.optim.tolerance_change,
                                line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = torch.mean((model(x) - y) ** 2)
            loss.backward()
            return loss

        for _ in range(steps):
            opt.step(closure)
    else:
        opt = make_optimizer(model.parameters(), cfg.optim)  # the platform's Adam (fused)
        b = int(cfg.data.batch_size)
        n = x.shape[0]
        perm, at = torch.randperm(n), 0
        for _ in range(steps):
            if at + b > n:
                perm, at = torch.randperm(n), 0
            idx = perm[at:at + b]
            at += b
            opt.zero_grad()
            loss = torch.mean((model(x[idx]) - y[idx]) ** 2)
            loss.backward()
            opt.step()
    evaluations(model, splits)
    return time.perf_counter() - t0, time.process_time() - c0


@torch.no_grad()
def evaluations(model: torch.nn.Module, splits: Any) -> list[float]:
    """The evaluations the platform's loop makes in these configs, done the same way: one
    validation (``val_every_n_steps`` = the budget) and the stage row at the end (train, val
    and test RMSE), in eval mode without autograd."""
    model.eval()
    rmse = [float(torch.sqrt(torch.mean((model(x) - y).double() ** 2)))
            for x, y in (splits.split(name) for name in ("val", "train", "val", "test"))]
    model.train()
    return rmse


STEPS_PER_BATCH: dict[str, int] = {}  # the runs' trainer/steps_per_batch (K), by tag


def platform(cfg: Any, tmp: Path, tag: str) -> tuple[float, float, float]:
    """``fit`` on the config: the run's ``(wall_time_s, total_time_s, cpu_time_s)``."""
    t0 = time.perf_counter()
    result = fit(cfg, run_dir=tmp / tag, verbose=False)
    total = time.perf_counter() - t0
    assert result.metrics["status"] == "completed", result.metrics
    m = result.metrics
    STEPS_PER_BATCH[tag.rsplit("-", 1)[0]] = int(m.get("trainer/steps_per_batch") or 1)
    return float(m["wall_time_s"]), total, float(m["cpu_time_s"])


def step_times(cfg: Any, reps: int, steps: int = 200, clock: Any = time.perf_counter) -> float:
    """Median seconds of one bare Adam step (forward, MSE, backward, step) of cfg's model, by
    ``clock`` (wall time; the KAN/MLP comparison uses CPU time, steadier on a shared
    machine)."""
    from kanplatform.data.datasets import dataset_from_config

    model = build_model_from_config(cfg.model, cfg.model.get("grid_size"), seed=0)
    x, y = dataset_from_config(cfg.data, dtype=torch.float32).train
    b = int(cfg.data.batch_size)
    opt = make_optimizer(model.parameters(), cfg.optim)  # the platform's Adam, both models
    xs, ys = x[:b].contiguous(), y[:b].contiguous()
    times = []
    for rep in range(reps + 1):
        t0 = clock()
        for _ in range(steps):
            opt.zero_grad()
            torch.mean((model(xs) - ys) ** 2).backward()
            opt.step()
        if rep:
            times.append((clock() - t0) / steps)
    return statistics.median(times)


def _spin(stop: Any) -> None:
    while not stop.is_set():
        sum(range(10000))


def contended(cfg: Any, reps: int, policy: str) -> None:
    from kanplatform.train.fitting import run_threads

    ncpu = len(os.sched_getaffinity(0))
    torch_default, default = torch.get_num_threads(), run_threads(None)
    # what the OpenMP runtime read when torch loaded it (import kanplatform came after)
    policy = (f"PASSIVE, GOMP_SPINCOUNT {os.environ.get('GOMP_SPINCOUNT')}"
              if policy == "platform" else "libgomp default (spins)")
    print(f"\n--contended: KAN {WIDTH} step at batch {cfg.data.batch_size}, "
          f"{ncpu} CPUs, torch default threads {torch_default}, platform default {default}, "
          f"OpenMP waiting: {policy}")
    if default == 1:
        default = 2  # a 1-CPU process: show what 2 threads would cost anyway
    rows = []
    for busy in (False, True):
        stop = mp.Event()
        procs = [mp.Process(target=_spin, args=(stop,)) for _ in range(ncpu if busy else 0)]
        for p in procs:
            p.start()
        try:
            time.sleep(0.5 if busy else 0)
            res = {}
            for threads in (1, default):
                torch.set_num_threads(threads)
                res[threads] = step_times(cfg, reps, steps=100)
        finally:
            stop.set()
            for p in procs:
                p.join()
        rows.append((busy, res))
    torch.set_num_threads(1)
    print(f"{'':>10} | {'1 thread ms':>11} {f'{default} threads ms':>14}")
    for busy, res in rows:
        print(f"{'busy' if busy else 'idle':>10} | {1e3 * res[1]:11.3f} {1e3 * res[default]:14.3f}")
    (_, idle), (_, hot) = rows
    print(f"slow-down under contention: 1 thread {hot[1] / idle[1]:.2f}x, "
          f"{default} threads {hot[default] / idle[default]:.2f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500, help="Adam steps per run")
    parser.add_argument("--lbfgs-steps", type=int, default=100)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="200 steps, 1 repetition")
    parser.add_argument("--contended", action="store_true", help="only the contention check")
    parser.add_argument("--policy", choices=("platform", "libgomp"),
                        help=argparse.SUPPRESS)  # --contended's child processes
    parser.add_argument("--step-only", action="store_true",
                        help="only the KAN/MLP bare step comparison")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.lbfgs_steps, args.reps = 200, 40, 1
    tmp = Path(tempfile.mkdtemp(prefix="bench-train-"))
    csv = tmp / "data8.csv"
    write_csv(csv, N_TRAIN + 1024)
    print(f"torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}, "
          f"{args.reps} reps, medians; bare loop and platform alternate")
    if args.contended and args.policy:
        contended(minibatch_cfg(tmp, csv, "kan", 256, 1), args.reps, args.policy)
        return 0
    if args.contended:  # each policy in its own process: libgomp reads it once, at load
        from kanplatform._util.cpus import PASSIVE_OPENMP

        for policy in ("platform", "libgomp"):
            env = {k: v for k, v in os.environ.items() if k not in PASSIVE_OPENMP}
            env.update(PASSIVE_OPENMP if policy == "platform" else {})
            subprocess.run([sys.executable, __file__, "--contended", "--policy", policy,
                            "--reps", str(args.reps)], env=env, check=True)
        return 0
    torch.set_num_threads(1)
    cases = [(f"{kind} b={b}", minibatch_cfg(tmp, csv, kind, b, args.steps))
             for kind in ("kan", "mlp") for b in (64, 256, 1024) if not args.step_only]
    if not args.step_only:
        cases.append(("kan lbfgs full", lbfgs_cfg(tmp, args.lbfgs_steps)))
    head = (f"{'case':>16} {'steps':>5} {'K':>3} | {'bare s':>7} {'platform s':>10} {'total s':>8} "
            f"{'platform/bare':>13} {'total-wall s':>12} | {'CPU p/b':>7}")
    print(head)
    print("-" * len(head))
    for name, cfg in cases:
        b_t, b_c, p_t, tot, p_c = [], [], [], [], []
        bare(cfg)  # warm-up: kernels built, imports done
        for rep in range(args.reps):
            wall, cpu = bare(cfg)
            b_t.append(wall)
            b_c.append(cpu)
            wall, total, cpu = platform(cfg, tmp, f"{name.replace(' ', '_')}-{rep}")
            p_t.append(wall)
            tot.append(total)
            p_c.append(cpu)
        mb, mp_, mt, cb, cp = (statistics.median(v) for v in (b_t, p_t, tot, b_c, p_c))
        k = STEPS_PER_BATCH.get(name.replace(" ", "_"), 1)
        print(f"{name:>16} {int(cfg.trainer.max_steps):>5} {k:>3} | {mb:7.2f} {mp_:10.2f} "
              f"{mt:8.2f} {mp_ / mb:13.2f} {mt - mp_:12.2f} | {cp / cb:7.2f}", flush=True)
    kan = minibatch_cfg(tmp, csv, "kan", 256, 1)
    mlp = minibatch_cfg(tmp, csv, "mlp", 256, 1)
    k_ms, m_ms = [], []
    for _ in range(args.reps + 1):  # alternating, CPU time
        k_ms.append(step_times(kan, 1, clock=time.process_time))
        m_ms.append(step_times(mlp, 1, clock=time.process_time))
    k, m = statistics.median(k_ms), statistics.median(m_ms)
    sizes = []
    for cfg in (kan, mlp):
        model = build_model_from_config(cfg.model, cfg.model.get("grid_size"), seed=0)
        sizes.append(sum(p.numel() for p in model.parameters()))
    print(f"\nbare Adam step (CPU time), batch 256, 1 thread: KAN {WIDTH} ({sizes[0]} parameters) "
          f"{1e3 * k:.3f} ms, equal-parameter MLP ({sizes[1]}) {1e3 * m:.3f} ms: "
          f"KAN/MLP {k / m:.2f}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
