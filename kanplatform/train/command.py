"""``kanplatform train CONFIG [key=value ...]``: one run from a config; prints the run dir.

Exit status: 0 completed, 1 diverged (the reason is printed), 2 invalid config.
"""

from __future__ import annotations

import argparse
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``train`` arguments."""
    parser.add_argument("config", nargs="+", metavar="CONFIG_OR_OVERRIDE",
                        help="config file(s) (YAML, merged left to right), then key=value "
                             "overrides, e.g. model=mlp model.grid_size=10")
    parser.add_argument("--run-dir", default=None, help="write the run here (default: "
                        "a new directory under output_dir)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def split_args(items: list[str]) -> tuple[list[str], list[str]]:
    """Split CLI words into config files and ``key=value`` overrides."""
    files = [i for i in items if "=" not in i]
    overrides = [i for i in items if "=" in i]
    return files, overrides


def main(args: argparse.Namespace) -> int:
    """Load, validate, train; print the run directory and the final metrics."""
    from kanplatform.config import ConfigError, load_config

    files, overrides = split_args(args.config)
    if args.quiet:
        overrides.append("trainer.enable_progress_bar=false")
    try:
        cfg = load_config(files, overrides)
    except ConfigError as err:
        print(f"invalid config: {err}", file=sys.stderr)
        return 2
    from kanplatform.train import fit

    result = fit(cfg, run_dir=args.run_dir)
    metrics = result.metrics
    for row in metrics.get("stages", []):
        grid = f"G={row['grid_size']:<4}" if row.get("grid_size") is not None else "      "
        print(f"stage {row['stage']} {grid} step {row['step']:>6}  "
              f"train {row['train/rmse']:.3e}  val {row['val/rmse']:.3e}  "
              f"test {row['test/rmse']:.3e}  params {row['model/params']}", file=sys.stderr)
    if result.status != "completed":
        print(f"run {result.status}: {metrics.get('reason')}", file=sys.stderr)
    else:
        final = metrics["final"]
        print(f"test/rmse {final['test/rmse']:.3e}  wall time {metrics['wall_time_s']:.1f} s",
              file=sys.stderr)
    print(result.run_dir)
    return 0 if result.status == "completed" else 1
