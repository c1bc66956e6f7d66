"""Ray Tune overhead of a trial on this machine, and trials per minute of the example search.

    unshare -n sh -c 'ip link set lo up; .venv/bin/python benchmarks/bench_search.py'

Prints (and writes benchmarks/results/search.json):
  fit_s             one tiny `fit` (KAN [2,1,1], configs/experiment/quick.yaml) in-process
  overhead_s        per-trial seconds a sequential search adds on top of fit (reuse_actors)
  ray_start_s       ray.init + Tuner set-up before the first trial
  example_trials_per_min   configs/search/asha_kan.yaml on quick.yaml, 2 trials at a time
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from kanplatform.config import load_config
    from kanplatform.search import load_search, parse_search, run_search
    from kanplatform.train import fit

    tmp = Path(tempfile.mkdtemp(prefix="bench-search-"))
    cfg = load_config(ROOT / "configs/experiment/quick.yaml",
                      [f"output_dir={tmp / 'runs'}", "trainer.num_threads=1"])
    fit(cfg, verbose=False)  # warm-up: imports
    fits = []
    for _ in range(3):
        t = time.perf_counter()
        fit(cfg, verbose=False)
        fits.append(time.perf_counter() - t)
    fit_s = min(fits)

    n = 8
    seq = parse_search({"name": "seq", "space": {"seed": {"grid_search": list(range(n))}},
                        "max_concurrent_trials": 1})
    t = time.perf_counter()
    res = run_search(cfg, seq, storage_path=tmp / "tune", num_cpus=2, verbose=0)
    total = time.perf_counter() - t
    ray_start = total - res.wall_time_s
    overhead = res.wall_time_s / n - fit_s

    example = load_search(ROOT / "configs/search/asha_kan.yaml")
    t = time.perf_counter()
    ex = run_search(cfg, example, storage_path=tmp / "tune", num_cpus=2, verbose=0)
    ex_total = time.perf_counter() - t
    out = {
        "fit_s": round(fit_s, 2),
        "sequential_trials": n,
        "sequential_search_s": round(res.wall_time_s, 1),
        "s_per_trial": round(res.wall_time_s / n, 2),
        "overhead_s": round(overhead, 2),
        "ray_start_s": round(ray_start, 1),
        "example_trials": len(ex.trials),
        "example_search_s": round(ex.wall_time_s, 1),
        "example_total_s": round(ex_total, 1),
        "example_trials_per_min": round(60 * len(ex.trials) / ex.wall_time_s, 1),
        "example_trials_per_min_incl_ray_start": round(60 * len(ex.trials) / ex_total, 1),
        "cpus": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0],
    }
    print(json.dumps(out, indent=2))
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    (results / "search.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
