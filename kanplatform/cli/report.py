"""``kanplatform report DIR``: write a self-contained HTML dashboard of a run or experiment.

Example:
    kanplatform report runs/exp_sin_sq-kan-0            # -> runs/exp_sin_sq-kan-0/report.html
    kanplatform report runs/study -o /tmp/study.html     # a search or scaling study
"""

from __future__ import annotations

import argparse
import sys

# shown at the end of `kanplatform report --help`
EXAMPLES = (
    "kanplatform report runs/<run>                  # -> runs/<run>/report.html",
    "kanplatform report runs/tune/<experiment> -o /tmp/search.html",
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``kanplatform report`` (no heavy imports here)."""
    parser.add_argument("dir", metavar="RUN_OR_EXPERIMENT_DIR",
                        help="a run directory, or a folder of run directories")
    parser.add_argument("-o", "--out", default=None,
                        help="HTML file to write (default: DIR/report.html)")
    parser.add_argument("--title", default=None, help="page title (default: the folder name)")


def main(args: argparse.Namespace) -> int:
    """Write the report and print its path. Returns 0, or 1 when DIR holds no run."""
    from kanplatform.tracking.report import write_report

    try:
        out = write_report(args.dir, args.out, title=args.title)
    except FileNotFoundError as err:
        print(f"kanplatform report: {err}", file=sys.stderr)
        return 1
    print(out)
    return 0
