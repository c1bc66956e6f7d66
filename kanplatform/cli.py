"""The ``kanplatform`` command line: a thin shell over the package's functions.

Each subcommand lives in its own module, which defines ``configure(parser)`` (arguments,
light imports only) and ``main(args) -> int`` (the work, heavy imports inside). This file
only wires them together, so ``kanplatform --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("kanplatform.train.command", "train one model from a config; prints the run dir"),
    "validate": ("kanplatform.config.command", "check configs, searches and job files"),
    "tune": ("kanplatform.search.command", "Ray Tune search over a config"),
    "scale": ("kanplatform.scaling.command", "size sweep with fitted scaling curves"),
    "compare": ("kanplatform.compare.command", "fair KAN-vs-MLP study: verdicts, N(eps)"),
    "submit": ("kanplatform.launch.command", "submit a job file to a Ray cluster"),
    "jobs": ("kanplatform.launch.jobs_command", "status, logs, stop and list cluster jobs"),
    "report": ("kanplatform.tracking.command", "static HTML dashboard of a run/experiment"),
    "interpret": ("kanplatform.interpret.command", "prune a trained KAN, fit a formula"),
    "demo": ("kanplatform.demo", "small KAN-vs-MLP study end to end"),
    "info": ("kanplatform.info", "versions, threads, devices, compiled kernels, W&B mode"),
}


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every subcommand that can be imported."""
    from kanplatform import __version__

    parser = argparse.ArgumentParser(
        prog="kanplatform",
        description="Train, search and compare Kolmogorov-Arnold Networks and MLPs.",
    )
    parser.add_argument("--version", action="version", version=f"kanplatform {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name and err.name.startswith("kanplatform"):
                continue  # subcommand not built yet
            raise
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.configure(p)
        p.set_defaults(_main=module.main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kanplatform`` script. Returns the process exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse fills a `nargs="*"` positional with [] when an option comes first
    # (`train --resume RUN key=value`); a subcommand names it in `_rest` to collect the words
    rest = getattr(args, "_rest", None)
    if extra and (rest is None or any(word.startswith("-") for word in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        setattr(args, rest, [*getattr(args, rest), *extra])
    if not getattr(args, "_main", None):
        parser.print_help()
        return 2
    try:
        return int(args._main(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
