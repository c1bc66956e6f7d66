"""``kanplatform demo``: a small KAN-vs-MLP study end to end, then where to look.

Runs :func:`kanplatform.scaling.demo.run_demo` (``configs/scaling/demo.yaml``) and prints the
paths of everything it produced.
"""

from __future__ import annotations

import argparse

# shown at the end of `kanplatform demo --help`
EXAMPLES = (
    "kanplatform demo",
    "kanplatform demo --output-dir /tmp/demo --resume",
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``demo`` arguments."""
    parser.add_argument("--study", default=None,
                        help="scaling study to run (default: configs/scaling/demo.yaml)")
    parser.add_argument("--output-dir", default="runs/demo",
                        help="where the experiment directory goes (default: runs/demo)")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted demo instead of starting afresh")


def main(args: argparse.Namespace) -> int:
    """Run the demo study and print where to look. Returns the exit code."""
    import sys

    from kanplatform.scaling.demo import DEMO_STUDY, run_demo
    from kanplatform.scaling.spec import StudyError

    try:
        demo = run_demo(args.study or DEMO_STUDY, args.output_dir, resume=args.resume)
    except (StudyError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    result = demo.study
    exp = result.exp_dir
    lines = ["", "kanplatform demo: done"]
    for family, fits in result.fits.items():
        fit = fits.get("model/params")
        if fit is not None:
            lo, hi = fit.alpha_ci
            lines.append(f"  alpha[{family}]  {fit.alpha:.2f}  (95% CI {lo:.2f}..{hi:.2f}, "
                         "test RMSE vs parameters)")
    trial_runs = [p for p in demo.wandb_runs if p.parent != exp / "wandb"]
    lines += [
        f"  wall time     {result.wall_time_s:.0f} s",
        "",
        "where to look",
        f"  report        {demo.report}   (open in a browser; no network needed)",
        f"  experiment    {exp}",
        f"  table         {exp / 'scaling.csv'}",
        f"  scaling plot  {result.plots.get('model/params', '-')}",
        f"  fits          {exp / 'scaling.json'}",
        f"  W&B           {len(demo.wandb_runs)} offline runs: the study's in {exp / 'wandb'}, "
        f"{len(trial_runs)} trainings' in {exp}/trials-*/runs/*/wandb",
        f"                browse offline: wandb leet {exp / 'wandb'}",
        f"                upload later:   wandb sync --yes {exp}/wandb/offline-run-* "
        f"{exp}/trials-*/runs/*/wandb/offline-run-*",
    ]
    print("\n".join(lines))
    return 1 if result.errors else 0
