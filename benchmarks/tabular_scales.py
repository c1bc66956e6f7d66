"""A 20,000-row CSV with inputs on scales 1e-2 to 1e3: KAN vs the parameter-matched MLP.

Issue 14's "must be shown" case, through the commands a user runs:

1. writes ``train.csv`` (20,000 rows: ``big`` in [0, 1000], ``small`` in [0, 0.01], ``mid`` in
   [-5, 5], target ``y = sin(big/200) + 100 small + 0.1 mid^2 + 10`` plus noise of std 0.02)
   and ``new.csv`` (500 other rows);
2. ``kanplatform train configs/experiment/tabular.yaml data.dataset=file ...`` for the KAN and
   with ``model=mlp`` (every row by default, split 80/10/10; ``data.normalize: auto`` maps the
   inputs onto the grid range and standardises the target);
3. ``kanplatform predict RUN new.csv --output pred.csv`` and compares it with
   ``kanplatform.load(RUN).predict`` on the same rows.

Prints the rows used, both test RMSEs (original units) and their ratio, the wall time of each
training, and whether the predictions agree. Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/tabular_scales.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLI = [str(Path(sys.executable).parent / "kanplatform")]  # the installed command


def write_table(path: Path, n: int, seed: int, noise: float = 0.02) -> np.ndarray:
    """Write ``n`` rows of the scales table to ``path``; return them ``(n, 4)``."""
    rng = np.random.default_rng(seed)
    x = np.c_[rng.uniform(0, 1000, n), rng.uniform(0, 0.01, n), rng.uniform(-5, 5, n)]
    y = np.sin(x[:, 0] / 200) + 100 * x[:, 1] + 0.1 * x[:, 2] ** 2 + 10.0
    y = y + noise * rng.standard_normal(n)
    rows = np.c_[x, y]
    np.savetxt(path, rows, delimiter=",", header="big,small,mid,y", comments="")
    return rows


def train(out: Path, name: str, table: Path, *extra: str) -> tuple[Path, dict, float]:
    """``kanplatform train`` the tabular example on ``table``; return run dir, metrics, seconds."""
    run_dir = out / name
    args = [*CLI, "train", str(ROOT / "configs" / "experiment" / "tabular.yaml"),
            "data.dataset=file", f"data.path={table}", "data.inputs=[big,small,mid]",
            "data.targets=[y]", "model.width=[3,8,1]", "data.batch_size=128",
            "trainer.max_epochs=8", "trainer.val_every_n_steps=250",
            "trainer.early_stopping=null", "tracking.mode=disabled", *extra,
            "--run-dir", str(run_dir), "--quiet"]
    start = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    return run_dir, json.loads((run_dir / "metrics.json").read_text()), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="keep the files here")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="tabular_scales_"))
    out.mkdir(parents=True, exist_ok=True)
    table, new = out / "train.csv", out / "new.csv"
    rows = write_table(table, 20_000, seed=0)
    fresh = write_table(new, 500, seed=1)
    print(f"table: {len(rows)} rows, input ranges "
          + ", ".join(f"[{lo:.3g}, {hi:.3g}]" for lo, hi in zip(rows[:, :3].min(0),
                                                                   rows[:, :3].max(0)))
          + f"; target std {rows[:, 3].std():.3f}")
    results = {}
    for name, extra in (("kan", ()), ("mlp", ("model=mlp",))):
        run_dir, metrics, seconds = train(out, name, table, *extra)
        results[name] = metrics
        print(f"{name}: params {metrics.get('model/params')}  rows train/val/test "
              f"{metrics['data/n_train']}/{metrics['data/n_val']}/{metrics['data/n_test']}  "
              f"test/rmse {metrics['final']['test/rmse']:.4f}  "
              f"({metrics['status']}, {metrics['step']} steps, {seconds:.0f} s)")
    ratio = results["kan"]["final"]["test/rmse"] / results["mlp"]["final"]["test/rmse"]
    print(f"KAN / MLP test RMSE: {ratio:.3f} (the bar: <= 1.2)")

    import kanplatform

    pred_csv = out / "pred.csv"
    subprocess.run([*CLI, "predict", str(out / "kan"), str(new), "--output", str(pred_csv)],
                   check=True, stdout=subprocess.DEVNULL)
    written = np.loadtxt(pred_csv, delimiter=",", skiprows=1)
    direct = kanplatform.load(out / "kan").predict(fresh[:, :3])[:, 0]
    same = written.shape == (500,) and np.array_equal(written, direct)
    rmse_new = float(np.sqrt(np.mean((written - fresh[:, 3]) ** 2)))
    print(f"predict: {len(written)} rows written; equal to load(run).predict: {same}; "
          f"RMSE on the new rows {rmse_new:.4f}")
    print(f"files: {out}")


if __name__ == "__main__":
    main()
