"""Cluster jobs: job files, the Ray Jobs API, SLURM rendering.

A job file (``jobs/*.yaml``) says what to run (``train``/``tune``/``scale`` + config),
where (a Ray dashboard address), in which environment and with which resources. Nothing
here imports Ray at import time.

Example:
    >>> from kanplatform.launch import load_job, submit_job
    >>> job = load_job("jobs/tune_asha.yaml")             # doctest: +SKIP
    >>> sub = submit_job(job, "http://127.0.0.1:8265")    # doctest: +SKIP
    >>> print(sub.job_id, sub.dashboard_url)              # doctest: +SKIP
"""

from kanplatform.launch.check import check_runnable
from kanplatform.launch.jobfile import JobFileError, JobSpec, load_job, parse_job, runtime_env
from kanplatform.launch.slurm import render as render_sbatch
from kanplatform.launch.submit import (
    ClusterUnreachableError,
    Submission,
    follow,
    list_jobs,
    logs,
    status,
    stop,
    wait,
)
from kanplatform.launch.submit import submit as submit_job  # `submit` stays the module

__all__ = [
    "ClusterUnreachableError",
    "JobFileError",
    "JobSpec",
    "Submission",
    "check_runnable",
    "follow",
    "list_jobs",
    "load_job",
    "logs",
    "parse_job",
    "render_sbatch",
    "runtime_env",
    "status",
    "stop",
    "submit_job",
    "wait",
]
