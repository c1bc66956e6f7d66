"""Deep checks of a job file, with no side effects: what `submit` and `validate` run.

:func:`check_runnable` goes further than :func:`~kanplatform.launch.jobfile.load_job`: the
command parses with the CLI's own parser, the run config loads with the job's overrides, and
a ``tune`` search loads and fits the config. Imports the command modules, so it is not free
(torch), but it fails in seconds on the laptop instead of minutes later on the cluster.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from kanplatform.launch.jobfile import JobFileError, JobSpec


def check_runnable(job: JobSpec) -> str:
    """Deep check without side effects: the command parses, the config and search load.

    Parses the job's ``kanplatform`` arguments with the CLI's own parser, loads the run
    config with the job's overrides (unknown override keys fail here), and for ``tune``
    loads the search file and checks its space against the config. Skipped parts (config
    inside an image) are said in the returned note.

    Returns:
        A one-line note for ``kanplatform validate``.

    Raises:
        JobFileError: anything that would make the job fail on the cluster.
    """
    from kanplatform.cli import build_parser

    argv = job.argv()
    parser = build_parser()
    if run_command_missing(parser, job.run.command):
        raise JobFileError(f"{job.path}: `kanplatform {job.run.command}` is not available in "
                           "this installation")
    try:
        parser.parse_args(argv)
    except SystemExit:
        raise JobFileError(f"{job.path}: `kanplatform {shlex.join(argv)}` does not parse "
                           "(see the message above)") from None
    base = job.working_dir or (None if job.runtime_env.image else Path.cwd())
    if base is None:
        return f"job: {job.run.command} (config inside image {job.runtime_env.image})"
    from kanplatform.config import load_config

    positional = 3 if job.run.search else 2
    overrides = [a for a in argv[positional:] if "=" in a and not a.startswith("-")]
    try:
        if job.run.command == "scale":  # run.config is a scaling study
            from kanplatform.scaling.spec import load_study

            load_study(base / job.run.config, overrides)
        else:
            cfg = load_config(base / job.run.config, overrides)
        if job.run.search:
            from kanplatform.search.spec import check_against_config, load_search

            check_against_config(load_search(base / job.run.search), cfg)
    except ValueError as err:  # ConfigError, SearchSpecError, StudyError
        raise JobFileError(f"{job.path}: {err}") from None
    return f"job: kanplatform {job.run.command} {job.run.config}"


def run_command_missing(parser: Any, command: str) -> bool:
    """True when the CLI parser has no subcommand ``command`` (module not built/installed)."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return command not in action.choices
    return True

