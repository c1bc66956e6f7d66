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

from kanplatform.launch.jobfile import JobFileError, JobSpec, resolve_storage_path

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
    """What fills each placeholder of the template for this job."""
    res, slurm = job.resources, job.slurm
    options = []
    if slurm.partition:
        options.append(f"#SBATCH --partition={slurm.partition}")
    if slurm.account:
        options.append(f"#SBATCH --account={slurm.account}")
    if res.gpus:
        options.append(f"#SBATCH --gpus-per-node={res.gpus}")
    env = {"WANDB_MODE": "offline", **job.runtime_env.env_vars}
    exports = [f"export {key}={shlex.quote(value)}" for key, value in env.items()]
    workdir = job.working_dir or Path.cwd()
    storage = resolve_storage_path(job.storage_path)
    return {
        "job_name": job.job_name,
        "nodes": str(res.nodes),
        "cpus": str(res.cpus),
        "gpus": str(res.gpus),
        "time": slurm.time,
        "sbatch_options": "\n".join(options),
        "working_dir": shlex.quote(str(workdir)),
        "setup": slurm.setup,
        "env_exports": "\n".join(exports),
        "ray_port": str(slurm.ray_port),
        "command": job.entrypoint(storage),
    }


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
