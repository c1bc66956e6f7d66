"""``kanplatform interpret RUN_DIR``: prune a trained KAN, fit a formula, print it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``kanplatform interpret`` (light imports only)."""
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory of a KAN")
    parser.add_argument("--prune", choices=["yes", "no"], default="yes",
                        help="prune nodes and edges before fitting (default: yes)")
    parser.add_argument("--node-threshold", type=float, default=1e-2,
                        help="hidden nodes scoring at most this are removed (default 1e-2)")
    parser.add_argument("--edge-threshold", type=float, default=3e-2,
                        help="edges scoring below this are masked (default 3e-2)")
    parser.add_argument("--method", choices=["attribution", "l1"], default="attribution",
                        help="importance scores: KAN 2.0 attribution or the paper's L1 rule")
    parser.add_argument("--retrain-steps", type=int, default=20,
                        help="LBFGS steps on the pruned KAN before fitting (default 20)")
    parser.add_argument("--lib", default=None,
                        help="comma-separated symbolic functions, e.g. x,x^2,sin,exp "
                             "(default: the whole library)")
    parser.add_argument("--r2-threshold", type=float, default=0.99,
                        help="edges whose best fit has a lower R² stay splines (default 0.99)")
    parser.add_argument("--affine-steps", type=int, default=20,
                        help="LBFGS steps on the formula's constants (default 20)")
    parser.add_argument("--layerwise-steps", type=int, default=0,
                        help="fit layer by layer, retraining later layers this many LBFGS "
                             "steps after each (helps products); 0 fits all at once")
    parser.add_argument("--digits", type=int, default=4, help="decimals of the constants")
    parser.add_argument("--tracking", choices=["offline", "online", "disabled"], default=None,
                        help="W&B mode (default: the run's tracking.mode)")


def main(args: argparse.Namespace) -> int:
    """Run :func:`kanplatform.interpret.interpret_run` and print the formula; exit code."""
    lib = [s.strip() for s in args.lib.split(",") if s.strip()] if args.lib else None
    return interpret_and_print(
        args.run_dir, prune=args.prune == "yes", node_threshold=args.node_threshold,
        edge_threshold=args.edge_threshold, method=args.method,
        retrain_steps=args.retrain_steps, lib=lib, r2_threshold=args.r2_threshold,
        affine_steps=args.affine_steps, layerwise_steps=args.layerwise_steps,
        digits=args.digits, tracking=args.tracking)


def interpret_and_print(run_dir: str | Path, **options: Any) -> int:
    """:func:`~kanplatform.interpret.interpret_run` (its defaults where ``options`` says
    nothing), then the widths, the formula and the errors; 0, or 1 with the reason."""
    from kanplatform.interpret import interpret_run

    try:
        res = interpret_run(run_dir, **options)
    except (FileNotFoundError, ValueError, KeyError) as err:
        print(f"interpret: {err}", file=sys.stderr)
        return 1
    m = res.metrics
    print(f"width {res.width_before} -> {res.width_after}")
    for line in res.formula:
        print(line)
    print(f"test RMSE: model {m['model/test_rmse']:.3g}, pruned {m['pruned/test_rmse']:.3g}, "
          f"formula {m['symbolic/test_rmse']:.3g}")
    for note in res.warnings:
        print(f"warning: {note}", file=sys.stderr)
    print(f"written: {res.run_dir / 'interpret'}")
    return 0
