"""The ``kanplatform`` command line: a thin shell over the package's typed functions.

Each subcommand is one module here, which defines ``configure(parser)`` (arguments, light
imports only) and ``main(args) -> int`` (parse, call the logic package's function, print;
heavy imports inside). This file only wires them together, so ``kanplatform --help`` stays
fast. Nothing in the package imports ``kanplatform.cli``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("kanplatform.cli.train", "train one model from a config; prints the run dir"),
    "predict": ("kanplatform.cli.predict", "apply a trained model to new rows (original units)"),
    "validate": ("kanplatform.cli.validate", "check configs, searches and job files"),
    "tune": ("kanplatform.cli.tune", "Ray Tune search over a config"),
    "scale": ("kanplatform.cli.scale", "size sweep with fitted scaling curves"),
    "compare": ("kanplatform.cli.compare", "fair KAN-vs-MLP study: verdicts, N(eps)"),
    "submit": ("kanplatform.cli.submit", "submit a job file to a Ray cluster"),
    "jobs": ("kanplatform.cli.jobs", "status, logs, stop and list cluster jobs"),
    "report": ("kanplatform.cli.report", "static HTML dashboard of a run/experiment"),
    "interpret": ("kanplatform.cli.interpret", "prune a trained KAN, fit a formula"),
    "demo": ("kanplatform.cli.demo", "small KAN-vs-MLP study end to end"),
    "info": ("kanplatform.cli.info", "versions, threads, devices, compiled kernels, W&B mode"),
}


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every subcommand."""
    from kanplatform import __version__

    parser = argparse.ArgumentParser(
        prog="kanplatform",
        description="Train, search and compare Kolmogorov-Arnold Networks and MLPs.",
    )
    parser.add_argument("--version", action="version", version=f"kanplatform {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)  # a subcommand that fails to import is a bug
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.configure(p)
        p.set_defaults(_main=module.main)
    return parser


def check_argv(argv: Sequence[str]) -> None:
    """Raise ``ValueError`` when ``kanplatform ARGV`` would not parse (argparse's message goes
    to stderr), e.g. a job file's command line, checked before it reaches a cluster."""
    import contextlib
    import io
    import shlex

    argv = list(argv)
    if not argv or argv[0] not in COMMANDS:
        raise ValueError(f"`kanplatform {shlex.join(argv)}` names no command; known: "
                         f"{', '.join(COMMANDS)}")
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            parse(build_parser(), argv)
    except SystemExit:
        why = err.getvalue().strip().splitlines()[-1:] or ["(no message)"]
        raise ValueError(f"`kanplatform {shlex.join(argv)}` does not parse: {why[0]}") from None


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv`` as ``kanplatform`` does (argparse's own exit on an error)."""
    args, extra = parser.parse_known_args(argv)
    # argparse fills a `nargs="*"` positional with [] when an option comes first
    # (`train --resume RUN key=value`); a subcommand names it in `_rest` to collect the words
    rest = getattr(args, "_rest", None)
    if extra and (rest is None or any(word.startswith("-") for word in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        setattr(args, rest, [*getattr(args, rest), *extra])
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kanplatform`` script. Returns the process exit code."""
    parser = build_parser()
    args = parse(parser, argv)
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
