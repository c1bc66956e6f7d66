"""``kanplatform demo``: a small KAN-vs-MLP study end to end, then where to look.

Runs ``configs/scaling/demo.yaml`` (Ray Tune on a local Ray bound to 127.0.0.1, W&B offline,
power-law fits with bootstrap confidence intervals, log-log plots), writes the static HTML
report, and prints the paths of everything it produced.
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEMO_STUDY = Path(__file__).resolve().parents[2] / "configs" / "scaling" / "demo.yaml"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``demo`` arguments."""
    parser.add_argument("--study", default=str(DEMO_STUDY),
                        help="scaling study to run (default: configs/scaling/demo.yaml)")
    parser.add_argument("--output-dir", default="runs/demo",
                        help="where the experiment directory goes (default: runs/demo)")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted demo instead of starting afresh")


def main(args: argparse.Namespace) -> int:
    """Run the demo study and print where to look. Returns the exit code."""
    import shutil
    import sys

    from kanplatform.scaling.spec import StudyError, load_study
    from kanplatform.scaling.study import run_study
    from kanplatform.tracking import write_report

    try:
        spec = load_study(args.study)
    except (StudyError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.output_dir).resolve()
    exp_dir = out / spec.name
    if exp_dir.exists() and not args.resume:
        # The demo is disposable: a fresh run each time unless --resume is asked for.
        shutil.rmtree(exp_dir)
    result = run_study(spec, resume=args.resume, output_dir=out, verbose=0)
    report = write_report(result.exp_dir)
    wandb_runs = sorted(str(p) for p in result.exp_dir.rglob("offline-run-*") if p.is_dir())

    lines = ["", "kanplatform demo: done", f"  experiment    {result.exp_dir}"]
    for family, fits in result.fits.items():
        fit = fits.get("model/params")
        if fit is not None:
            lo, hi = fit.alpha_ci
            lines.append(f"  alpha[{family}]  {fit.alpha:.2f}  (95% CI {lo:.2f}..{hi:.2f}, "
                         "test RMSE vs parameters)")
    lines += [
        f"  table         {result.exp_dir / 'scaling.csv'}",
        f"  scaling plot  {result.plots.get('model/params', '-')}",
        f"  fits          {result.exp_dir / 'scaling.json'}",
        f"  HTML report   {report}   (open in a browser; no network needed)",
        f"  W&B runs      {len(wandb_runs)} offline runs under {result.exp_dir}",
        "                upload later: wandb sync --yes <dir>/wandb/offline-run-*",
        f"  wall time     {result.wall_time_s:.0f} s",
    ]
    print("\n".join(lines))
    return 1 if result.errors else 0
