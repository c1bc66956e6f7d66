"""Ray Jobs API: submit a job file, follow, tail, stop and list jobs on a Ray cluster.

The cluster is named by its dashboard address (``http://HOST:8265``). Every function checks
that the address answers (a TCP connect with a short timeout) before handing it to Ray, so
an unreachable cluster is one clear :class:`ClusterUnreachableError` in seconds, not a
stack trace after a long retry loop.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import urlparse

from kanplatform.launch.jobfile import (
    DEFAULT_ADDRESS,
    JobSpec,
    resolve_storage_path,
    runtime_env,
)

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


class ClusterUnreachableError(ConnectionError):
    """No Ray dashboard/job server answers at the address; the message says what to check."""


@dataclass
class Submission:
    """A submitted job: its id and where to watch it."""

    job_id: str
    address: str

    @property
    def dashboard_url(self) -> str:
        return f"{self.address}/#/jobs/{self.job_id}"


def resolve_address(address: str | None, job: JobSpec | None = None) -> str:
    """Pick the cluster address: ``--address``, then the job file, ``RAY_ADDRESS``, default.

    A bare ``HOST:PORT`` means the dashboard over HTTP. Returns the URL without a trailing
    slash.
    """
    chosen = (address or (job.address if job else None) or os.environ.get("RAY_ADDRESS")
              or DEFAULT_ADDRESS)
    if "://" not in chosen:
        chosen = f"http://{chosen}"
    return chosen.rstrip("/")


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Raise :class:`ClusterUnreachableError` unless something listens at ``address``."""
    url = urlparse(address)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ClusterUnreachableError(
            f"{address!r} is not a Ray dashboard address; use http://HOST:8265"
        )
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            pass
    except OSError as err:
        raise ClusterUnreachableError(
            f"no Ray cluster answers at {address} ({err.strerror or err}). Start one with "
            "`ray start --head --dashboard-host 0.0.0.0` (needs ray[default]), or pass the "
            "dashboard address of a running cluster with --address http://HOST:8265"
        ) from None


def client(address: str) -> Any:
    """A ``JobSubmissionClient`` for ``address``, after a fast reachability check."""
    check_reachable(address)
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError as err:  # ray without the dashboard extras
        raise RuntimeError(
            "the Ray Jobs API needs ray[default]: pip install 'ray[default]'"
        ) from err
    try:
        return JobSubmissionClient(address)
    except ConnectionError as err:
        raise ClusterUnreachableError(
            f"{address} answers but is not a Ray job server: {err}"
        ) from None


def plan(job: JobSpec, address: str | None = None) -> dict[str, Any]:
    """What :func:`submit` would send, contacting nothing: address, entrypoint, runtime_env
    and the driver's resources."""
    return {"address": resolve_address(address, job),
            "entrypoint": job.entrypoint(resolve_storage_path(job.storage_path)),
            "runtime_env": runtime_env(job),
            "entrypoint_num_cpus": job.resources.entrypoint_cpus,
            "entrypoint_num_gpus": job.resources.entrypoint_gpus}


def submission_id(job: JobSpec) -> str:
    """A readable, unique id: ``kanplatform-<job name>-<time>-<random>``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"kanplatform-{job.job_name}-{stamp}-{uuid.uuid4().hex[:6]}"


def submit(job: JobSpec, address: str | None = None) -> Submission:
    """Submit a job file's command to a Ray cluster through the Jobs API.

    Args:
        job: the validated job file.
        address: the dashboard URL; defaults as in :func:`resolve_address`.

    Returns:
        The :class:`Submission` (job id and address).

    Raises:
        ClusterUnreachableError: nothing answers at the address.
    """
    address = resolve_address(address, job)
    jobs = client(address)
    storage = resolve_storage_path(job.storage_path)
    job_id = jobs.submit_job(
        entrypoint=job.entrypoint(storage),
        submission_id=submission_id(job),
        runtime_env=runtime_env(job),
        metadata={"job_file": str(job.path), "command": job.run.command},
        entrypoint_num_cpus=job.resources.entrypoint_cpus or None,
        entrypoint_num_gpus=job.resources.entrypoint_gpus or None,
    )
    return Submission(job_id=job_id, address=address)


def status(address: str, job_id: str) -> str:
    """The job's status name: PENDING, RUNNING, SUCCEEDED, FAILED or STOPPED."""
    return str(client(address).get_job_status(job_id).value)


def info(address: str, job_id: str) -> Any:
    """Ray's ``JobDetails`` of one job (status, message, entrypoint, times)."""
    return client(address).get_job_info(job_id)


def logs(address: str, job_id: str) -> str:
    """Everything the job's driver printed so far."""
    return client(address).get_job_logs(job_id)


def follow(address: str, job_id: str, out: TextIO = sys.stdout) -> str:
    """Stream the job's logs to ``out`` until it ends; return its final status."""
    jobs = client(address)

    async def _tail() -> None:
        async for chunk in jobs.tail_job_logs(job_id):
            out.write(chunk)
            out.flush()

    asyncio.run(_tail())
    return wait(address, job_id, timeout=60, jobs=jobs)


def wait(address: str, job_id: str, timeout: float = 3600, poll: float = 1.0,
         jobs: Any = None, until: Callable[[str], bool] = lambda s: s in TERMINAL) -> str:
    """Poll the job's status until ``until(status)`` or ``timeout`` seconds; return it.

    Raises:
        TimeoutError: the job did not reach the wanted state in time.
    """
    jobs = jobs or client(address)
    deadline = time.monotonic() + timeout
    while True:
        state = str(jobs.get_job_status(job_id).value)
        if until(state):
            return state
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {state} after {timeout:.0f} s")
        time.sleep(poll)


def stop(address: str, job_id: str) -> bool:
    """Ask the cluster to stop a job; True if it was running."""
    return bool(client(address).stop_job(job_id))


def list_jobs(address: str) -> list[Any]:
    """Ray's ``JobDetails`` for every job the cluster knows, oldest first."""
    jobs = client(address).list_jobs()
    return sorted(jobs, key=lambda j: j.start_time or 0)
