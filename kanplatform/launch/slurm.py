"""SLURM: render ``jobs/slurm/ray_cluster.sbatch`` for a job file, and optionally sbatch it.

The template starts a Ray head on the first node and workers on the others, then runs the
job's ``kanplatform`` command against that cluster. Placeholders are ``{{ name }}``; an
unknown placeholder is an error, so the template and this module cannot drift apart.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

from kanplatform.launch import quoting
from kanplatform.launch.jobfile import JobFileError, JobSpec
from kanplatform.launch.storage import job_storage

TEMPLATE_NAME = Path("jobs/slurm/ray_cluster.sbatch")
_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")


def template_path(job: JobSpec) -> Path:
    """The sbatch template: ``slurm.template`` (relative to the job file), else the project's.

    The project's template is looked up under the job's working dir, then next to the
    installed package (a source checkout).
    """
    if job.slurm.template:
        return (job.path.parent / job.slurm.template).resolve()
    candidates = [Path(__file__).resolve().parents[2] / TEMPLATE_NAME]
    if job.working_dir is not None:
        candidates.insert(0, job.working_dir / TEMPLATE_NAME)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise JobFileError(f"{job.path}: no SLURM template found at {candidates[0]}; "
                       "set `slurm.template: PATH`")


def values(job: JobSpec) -> dict[str, str]:
    """What fills each placeholder of the template for this job, every value checked again.

    The job-file schema already refused unsafe values; this is the second layer (see
    :mod:`kanplatform.launch.quoting`): ``#SBATCH`` values must match their allow-list,
    shell words are quoted, numbers must be integers.

    Raises:
        JobFileError: a value that could leave its place in the script, named.
    """
    try:
        return _values(job)
    except quoting.UnsafeValueError as err:
        raise JobFileError(f"{job.path}: {err}") from None


def _integer(value: object, key: str, low: int = 0) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise quoting.UnsafeValueError(f"`{key}` is {value!r}; an integer >= {low} is needed")
    return str(value)


def _values(job: JobSpec) -> dict[str, str]:
    res, slurm = job.resources, job.slurm
    options = []
    for key in ("partition", "account"):
        if getattr(slurm, key):
            value = quoting.check(getattr(slurm, key), "partition", f"slurm.{key}")
            options.append(f"#SBATCH --{key}={value}")
    if res.gpus:
        options.append(f"#SBATCH --gpus-per-node={_integer(res.gpus, 'resources.gpus')}")
    env = {"WANDB_MODE": "offline", **job.runtime_env.env_vars}
    auth_mode = quoting.check_auth_mode(env.pop("RAY_AUTH_MODE", "token"),
                                        "runtime_env.env_vars.RAY_AUTH_MODE")
    workdir = job.working_dir or Path.cwd()
    storage = job_storage(job, "slurm")
    return {
        "job_name": quoting.check(job.job_name, "name", "name"),
        "nodes": _integer(res.nodes, "resources.nodes", 1),
        "cpus": _integer(res.cpus, "resources.cpus", 1),
        "gpus": _integer(res.gpus, "resources.gpus"),
        "time": quoting.check(slurm.time, "time", "slurm.time"),
        "sbatch_options": "\n".join(options),
        "working_dir": shlex.quote(str(workdir)),
        "setup": slurm.setup,  # shell by design: the user's own environment set-up
        "env_exports": quoting.exports(env),
        "auth_mode": auth_mode,
        "ray_port": "" if slurm.ray_port is None else _integer(slurm.ray_port,
                                                               "slurm.ray_port", 1024),
        "join_timeout": _integer(slurm.join_timeout_s, "slurm.join_timeout_s", 1),
        "command": _command(job, storage),
    }


def _command(job: JobSpec, storage: str | None) -> str:
    for key in job.run.overrides:
        quoting.check(key, "override_key", f"run.overrides.{key}")
    return job.entrypoint(storage)  # shlex.join: every word quoted


def render(job: JobSpec, template: str | Path | None = None) -> str:
    """Return the sbatch script for ``job``.

    Args:
        job: the validated job file.
        template: a template file; defaults to :func:`template_path`.

    Raises:
        JobFileError: the template names a placeholder this module does not fill.
    """
    text = Path(template or template_path(job)).read_text()
    fill = values(job)
    missing = sorted(set(_PLACEHOLDER.findall(text)) - set(fill))
    if missing:
        raise JobFileError(f"SLURM template has unknown placeholders: {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda m: fill[m.group(1)], text)


def sbatch(script: str) -> str:
    """Hand a rendered script to ``sbatch`` on its stdin; return sbatch's reply.

    Raises:
        RuntimeError: ``sbatch`` is not on PATH or refused the script.
    """
    if shutil.which("sbatch") is None:
        raise RuntimeError("sbatch is not on PATH: run this on a SLURM login node, or use "
                           "`kanplatform submit JOB.yaml --slurm > job.sbatch` and copy it there")
    done = subprocess.run(["sbatch"], input=script, text=True, capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"sbatch failed: {done.stderr.strip()}")
    return done.stdout.strip()
