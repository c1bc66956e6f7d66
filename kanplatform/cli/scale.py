"""``kanplatform scale STUDY [key=value ...] [--resume] [--address ADDR]``.

Trains every model size of a scaling study (``configs/scaling/*.yaml``) through Ray Tune,
fits ``loss = a * N**-alpha`` per family against parameters and FLOPs, and writes the table,
``scaling.json``, the log-log plots and an HTML report into ``<output_dir>/<name>`` (live
while the study runs: its path is printed first).
"""

from __future__ import annotations

import argparse

from kanplatform.cli import ADDRESS_HELP

# shown at the end of `kanplatform scale --help`
EXAMPLES = (
    "kanplatform scale configs/scaling/tiny.yaml",
    "kanplatform scale configs/scaling/toy_xy.yaml seeds=[0,1] --output-dir runs/scaling",
    "kanplatform scale configs/scaling/tiny.yaml --resume",
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``scale`` arguments."""
    parser.add_argument("study", metavar="STUDY", help="scaling study YAML (configs/scaling/)")
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value",
        help="study keys (seeds=[0], families.mlp.depths=[2], fit.n_boot=200) or run-config "
             "keys for every trial (grid.steps_per_stage=100)",
    )
    parser.set_defaults(_rest="overrides")  # key=value words after an option are overrides too
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted study; completed sizes are not retrained")
    parser.add_argument("--address", default=None,
                        help=ADDRESS_HELP.format(default="a local Ray on 127.0.0.1"))
    parser.add_argument("--output-dir", default=None,
                        help="where the experiment directory goes (default: the study's)")
    parser.add_argument("--no-report", action="store_true",
                        help="skip the HTML report (live while it runs, final at the end)")


def main(args: argparse.Namespace) -> int:
    """Run the study; 0 when every family got a fit, 1 otherwise, 2 for a bad study."""
    import sys

    from kanplatform.scaling.spec import StudyError, load_study
    from kanplatform.scaling.study import run_study

    try:
        spec = load_study(args.study, args.overrides)
        result = run_study(spec, resume=args.resume, address=args.address,
                           output_dir=args.output_dir, report=not args.no_report)
    except (StudyError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if result.report is not None:
        print(f"  report: {result.report}")
    elif not args.no_report:
        print("warning: HTML report not written (see the warning above)", file=sys.stderr)
    return 1 if result.errors else 0
