"""Per-trial cost of a compare-demo-like KAN training: ``fit`` three times in one process.

The demo's KAN arm as one training (KAN [2, 2, 1], grids 3/5/10/20 x 15 LBFGS steps, W&B
offline, one thread). The first fit pays the imports; the second and third are what a reused
Ray worker pays per trial: their ``total_time_s - wall_time_s`` is the set-up and teardown
around the training loop (W&B run start/finish, Trainer, final evaluation, files). Prints one
JSON line. To compare against another checkout, run it with that checkout first on
``PYTHONPATH`` (it wins over the editable install), alternating, e.g.::

    git archive main kanplatform configs | tar -x -C /tmp/base
    cd /tmp/tb && export OMP_NUM_THREADS=1 WANDB_MODE=offline WANDB_DIR=/tmp/tb
    PYTHONPATH=/tmp/base python benchmarks/bench_trial.py base /tmp/tb/base1
    WANDB__SAVE_REQUIREMENTS=false python benchmarks/bench_trial.py new /tmp/tb/new1

(``WANDB__SAVE_REQUIREMENTS=false`` is what a search trial's process sets.)
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import kanplatform
from kanplatform.config import load_config
from kanplatform.train import fit

QUICK = Path(__file__).resolve().parents[1] / "configs" / "experiment" / "quick.yaml"


def main() -> int:
    label, out = sys.argv[1], sys.argv[2]
    over = [f"output_dir={out}", "data.n_train=1000", "data.n_val=200", "data.n_test=500",
            "trainer.val_every_n_steps=20", "trainer.checkpoint_every_n_steps=0",
            "trainer.num_threads=1", "optim.max_iter=10", "tracking.mode=offline",
            "model.width=[2,2,1]", "grid.schedule=[3,5,10,20]", "grid.steps_per_stage=15"]
    cfg = load_config(QUICK, over)
    rows = []
    for _ in range(3):
        c0, t0 = time.process_time(), time.perf_counter()
        m = fit(cfg, verbose=False).metrics
        rows.append({"fit_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                     "wall_time_s": m["wall_time_s"],
                     "total_minus_wall_s": m["total_time_s"] - m["wall_time_s"]})
    print(json.dumps({"label": label, "kanplatform": kanplatform.__file__,
                      "load": os.getloadavg()[0], "fits": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
