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
    "config": ("kanplatform.cli.config", "show a resolved config; list every key"),
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

# --address, one meaning for every command that names a cluster (kanplatform.search.address)
ADDRESS_HELP = ("the Ray cluster: its head's HOST:PORT (as `ray start --head` prints it), "
                "ray://HOST:PORT, or its dashboard URL http://HOST:8265; converted as the "
                "command needs (default: {default})")


OUTPUT_DIR_HELP = ("where the {what} directory is created (default: {default}); a folder, "
                   "the same flag for every command")


def add_deprecated_alias(parser: argparse.ArgumentParser, old: str, new: str, dest: str) -> None:
    """Keep an old flag spelling working for one release: ``old VALUE`` sets ``dest`` as
    ``new VALUE`` does and prints one deprecation line (the flag is left out of ``--help``)."""

    class Deprecated(argparse.Action):
        def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                     values: object, option_string: str | None = None) -> None:
            print(f"warning: {old} is deprecated, use {new} (same meaning); {old} goes in the "
                  "next release", file=sys.stderr)
            setattr(namespace, dest, values)

    parser.add_argument(old, dest=dest, action=Deprecated, help=argparse.SUPPRESS)


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
        p = sub.add_parser(name, help=help_text, description=help_text,
                           epilog=examples_epilog(getattr(module, "EXAMPLES", ())),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.configure(p)
        p.set_defaults(_main=module.main)
    return parser


def examples_epilog(examples: Sequence[str]) -> str | None:
    """The ``examples:`` block that ends a subcommand's ``--help`` (its ``EXAMPLES``)."""
    return "examples:\n" + "\n".join(f"  {line}" for line in examples) if examples else None


def error_lines(err: BaseException) -> str:
    """An error's problems for the console: the one line, or ``N problems:`` and one per line
    (a config with several mistakes names them all, see :mod:`kanplatform._util.problems`)."""
    from kanplatform._util.problems import problems_of

    lines = problems_of(err)
    if len(lines) == 1:
        return lines[0]
    return f"{len(lines)} problems:\n" + "\n".join(f"  - {line}" for line in lines)


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
    except KeyboardInterrupt as err:  # a search says what it left and how to go on
        print(str(err) or "interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
