"""``kanplatform compare STUDY [key=value ...] [--resume] [--address ADDR]``.

Parses, calls :func:`kanplatform.compare.run_compare`, prints: a thin shell.
"""

from __future__ import annotations

import argparse

from kanplatform.cli import ADDRESS_HELP

# shown at the end of `kanplatform compare --help`
EXAMPLES = (
    "kanplatform compare configs/compare/tiny.yaml",
    "kanplatform compare configs/compare/demo.yaml seeds=[0,1,2] --output-dir runs/compare",
    "kanplatform compare configs/compare/demo.yaml --resume",
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``compare`` arguments."""
    parser.add_argument("study", metavar="STUDY", help="compare study YAML (configs/compare/)")
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value",
        help="study keys (seeds=[0,1,2], tuning.trials=2, arms.mlp.depth=3) or run-config "
             "keys for every training (trainer.max_steps=50)",
    )
    parser.set_defaults(_rest="overrides")  # key=value words after an option are overrides too
    parser.add_argument("--resume", action="store_true",
                        help="continue a study; finished trainings are not run again")
    parser.add_argument("--address", default=None,
                        help=ADDRESS_HELP.format(default="a local Ray on 127.0.0.1"))
    parser.add_argument("--output-dir", default=None,
                        help="where the experiment directory goes (default: the study's)")
    parser.add_argument("--no-report", action="store_true", help="skip report.html")
    parser.add_argument("--no-wandb", action="store_true", help="skip the study's W&B run")


def main(args: argparse.Namespace) -> int:
    """Run the study: 0 when every compared training has a result, 1 otherwise, 2 for a
    bad study (one line on stderr, before anything runs)."""
    import sys

    from kanplatform.compare import CompareError, load_compare, run_compare
    from kanplatform.search.spec import SearchSpecError

    try:
        spec = load_compare(args.study, args.overrides)
        result = run_compare(spec, resume=args.resume, address=args.address,
                             output_dir=args.output_dir, report=not args.no_report,
                             log_wandb=not args.no_wandb)
    except (CompareError, SearchSpecError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 1 if result.missing else 0
