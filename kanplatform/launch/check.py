"""Deep checks of a job file, with no side effects: what `submit` and `validate` run.

:func:`check_runnable` goes further than :func:`~kanplatform.launch.jobfile.load_job`: the
command parses (with the parser the CLI hands in), the run config loads with the job's
overrides, and a ``tune`` search loads and fits the config. It is not free (torch), but it
fails in seconds on the laptop instead of minutes later on the cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kanplatform.launch.jobfile import JobFileError, JobSpec

# parse_argv(["train", "cfg.yaml", ...]) raises ValueError when the command line is not one
# `kanplatform` accepts (the CLI passes its own parser's check)
ArgvCheck = Callable[[list[str]], None]


def check_runnable(job: JobSpec, parse_argv: ArgvCheck | None = None) -> str:
    """Deep check without side effects: the command parses, the config and search load.

    Checks the job's ``kanplatform`` arguments with ``parse_argv``, loads the run config
    with the job's overrides (unknown override keys fail here), and for ``tune`` loads the
    search file and checks its space against the config. Skipped parts (config inside an
    image) are said in the returned note.

    Args:
        job: the loaded job file.
        parse_argv: raises ``ValueError`` naming the problem when the command line does not
            parse (``kanplatform.cli.check_argv``); ``None`` skips that check.

    Returns:
        A one-line note for ``kanplatform validate``.

    Raises:
        JobFileError: anything that would make the job fail on the cluster.
    """
    argv = job.argv()
    if parse_argv is not None:
        try:
            parse_argv(argv)
        except ValueError as err:
            raise JobFileError(f"{job.path}: {err}") from None
    base = job.working_dir or (None if job.runtime_env.image else Path.cwd())
    if base is None:
        return f"job: {job.run.command} (config inside image {job.runtime_env.image})"
    from kanplatform.train.resolve import load_run_config

    positional = 3 if job.run.search else 2
    overrides = [a for a in argv[positional:] if "=" in a and not a.startswith("-")]
    try:
        if job.run.command == "scale":  # run.config is a scaling study
            from kanplatform.scaling.spec import load_study

            load_study(base / job.run.config, overrides)
        else:
            cfg = load_run_config(base / job.run.config, overrides)
        if job.run.search:
            from kanplatform.search.spec import check_against_config, load_search

            check_against_config(load_search(base / job.run.search), cfg)
    except ValueError as err:  # ConfigError, SearchSpecError, StudyError
        raise JobFileError(f"{job.path}: {err}") from None
    return f"job: kanplatform {job.run.command} {job.run.config}"

