"""``kanplatform report DIR``: write a self-contained HTML dashboard of a run or experiment.

Example:
    kanplatform report runs/exp_sin_sq-kan-0            # -> runs/exp_sin_sq-kan-0/report.html
    kanplatform report runs/study -o /tmp/study.html     # a search or scaling study
    kanplatform report --watch runs/tune/asha_kan-...    # live until the experiment ends

``--watch`` follows an experiment started elsewhere (another machine, a cluster job writing
to shared storage) from its files alone: the page is rewritten every ``--every`` seconds and
reloads itself, until every run has ended and the experiment's final table is written.
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
    parser.add_argument("--watch", action="store_true",
                        help="keep the page current until the experiment ends (Ctrl-C stops)")
    parser.add_argument("--every", type=float, default=5.0, metavar="SECONDS",
                        help="with --watch: seconds between rewrites (default 5)")


def main(args: argparse.Namespace) -> int:
    """Write the report and print its path. Returns 0, or 1 when DIR holds no run."""
    from kanplatform.tracking.report import write_report

    if args.watch:
        from pathlib import Path

        from kanplatform.tracking.live import watch

        if args.every <= 0:
            print("kanplatform report: --every must be > 0 seconds", file=sys.stderr)
            return 2
        if not Path(args.dir).is_dir():
            print(f"kanplatform report: {args.dir} is not a directory", file=sys.stderr)
            return 1
        out = watch(args.dir, args.every, out=args.out, title=args.title)
        if out is None:
            print(f"kanplatform report: {args.dir} holds no run directory yet", file=sys.stderr)
            return 1
        print(out)
        return 0
    try:
        out = write_report(args.dir, args.out, title=args.title)
    except FileNotFoundError as err:
        print(f"kanplatform report: {err}", file=sys.stderr)
        return 1
    print(out)
    return 0
