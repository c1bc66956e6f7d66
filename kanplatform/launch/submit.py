"""Ray Jobs API: submit a job file, follow, tail, stop and list jobs on a Ray cluster.

The cluster is named by its dashboard address (``http://HOST:8265``; a remote head is
reached through an SSH tunnel or ``kubectl port-forward`` to 127.0.0.1, never by exposing
its dashboard). Every function checks that the address answers (a TCP connect with a short
timeout) before handing it to Ray, so an unreachable cluster is one clear
:class:`ClusterUnreachableError` in seconds, not a stack trace after a long retry loop.

Token authentication: requests carry Ray's token, found where Ray keeps it
(``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``, ``~/.ray/auth_token``) unless
``RAY_AUTH_MODE=disabled``; a head that refuses us is one :class:`ClusterAuthError` line
saying what to set.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import urlparse

from kanplatform.launch.jobfile import DEFAULT_ADDRESS, JobFileError, JobSpec, runtime_env
from kanplatform.launch.storage import job_storage
from kanplatform.search.spec import SearchSpecError

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


class ClusterUnreachableError(ConnectionError):
    """No Ray dashboard/job server answers at the address; the message says what to check."""


class ClusterAuthError(ClusterUnreachableError):
    """The cluster answers but refuses this client's token (or its lack of one)."""


def auth_headers() -> dict[str, str]:
    """``Authorization: Bearer <token>`` with Ray's token, or {} (none, or auth disabled).

    Raises:
        ClusterAuthError: ``RAY_AUTH_TOKEN_PATH`` names an unreadable or empty file.
    """
    from kanplatform.search.ray_cluster import auth_token

    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        return {}
    try:
        token, _ = auth_token()
    except SearchSpecError as err:
        raise ClusterAuthError(str(err)) from None
    return {"Authorization": f"Bearer {token}"} if token else {}


@contextlib.contextmanager
def _authenticated(address: str) -> Iterator[None]:
    """Turn Ray's AuthenticationError (a multi-line traceback) into one line."""
    try:
        yield
    except Exception as err:
        if type(err).__name__ != "AuthenticationError":
            raise
        raise ClusterAuthError(_auth_advice(address, str(err))) from None


def _auth_advice(address: str, ray_message: str) -> str:
    from kanplatform.search.ray_cluster import auth_token

    fix = ("get the cluster's token with `ray get-auth-token` on its head node, then put it "
           "in ~/.ray/auth_token or export RAY_AUTH_TOKEN=<token>")
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        return (f"the Ray cluster at {address} requires token authentication but "
                f"RAY_AUTH_MODE=disabled is set here: unset it, and {fix}")
    try:
        token, where = auth_token()
    except SearchSpecError as err:
        return str(err)
    if token is None or "required" in ray_message.lower():
        return (f"the Ray cluster at {address} requires token authentication and no token "
                f"was found (looked in $RAY_AUTH_TOKEN and {where}): {fix}")
    return f"the Ray cluster at {address} refused the token from {where}: {fix}"


@dataclass
class Submission:
    """A submitted job: its id and where to watch it."""

    job_id: str
    address: str

    @property
    def dashboard_url(self) -> str:
        return f"{self.address}/#/jobs/{self.job_id}"


def resolve_address(address: str | None, job: JobSpec | None = None, *, lookup: bool = True,
                    notes: list[str] | None = None) -> str:
    """Pick the cluster address: ``--address``, then the job file, ``RAY_ADDRESS``, default;
    return its dashboard URL (no trailing slash).

    Any form :mod:`kanplatform.search.address` accepts: a head's ``HOST:PORT`` is asked for
    its dashboard (a ``HOST:PORT`` where a dashboard answers is that dashboard), a ``ray://``
    address the head on its host (:func:`kanplatform.search.address.to_dashboard_url`).

    Args:
        lookup: ask a ``HOST:PORT`` head for its dashboard; ``False`` contacts nothing and
            returns such an address as given.
        notes: gets one line saying what a converted address became.

    Raises:
        ClusterUnreachableError: malformed, or nothing answers at a ``HOST:PORT``.
    """
    from kanplatform.search.address import AddressError, parse_address, to_dashboard_url

    chosen = (address or (job.address if job else None) or os.environ.get("RAY_ADDRESS")
              or DEFAULT_ADDRESS)
    try:
        if not lookup and parse_address(chosen).form != "dashboard":
            return chosen
        url, note = to_dashboard_url(chosen)
    except AddressError as err:
        raise ClusterUnreachableError(str(err)) from None
    if note and notes is not None:
        notes.append(note)
    return url


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
            f"no Ray cluster answers at {address} ({err.strerror or err}). Start one here "
            "with `ray start --head` (needs ray[default]; its dashboard listens on "
            "127.0.0.1:8265), or forward a remote head's dashboard to this machine (`ssh -L "
            "8265:127.0.0.1:8265 HEAD`, `kubectl port-forward`) and pass --address "
            "http://127.0.0.1:8265"
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
        with _authenticated(address):
            return _Client(JobSubmissionClient(address, headers=auth_headers()), address)
    except ConnectionError as err:
        if isinstance(err, ClusterUnreachableError):
            raise
        raise ClusterUnreachableError(
            f"{address} answers but is not a Ray job server: {err}"
        ) from None


class _Client:
    """A ``JobSubmissionClient`` whose every call reports a refused token in one line."""

    def __init__(self, inner: Any, address: str) -> None:
        self._inner, self._address = inner, address

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr) or name == "tail_job_logs":
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with _authenticated(self._address):
                return attr(*args, **kwargs)

        return call


def plan(job: JobSpec, address: str | None = None) -> dict[str, Any]:
    """What :func:`submit` would send, contacting nothing: address, entrypoint, runtime_env
    and the driver's resources."""
    address = resolve_address(address, job, lookup=False)
    return {"address": address,
            "entrypoint": job.entrypoint(job_storage(job, "ray", address)),
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
    storage = job_storage(job, "ray", address)  # before contacting anything
    check_upload(job)
    jobs = client(address)
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


def follow(address: str, job_id: str, out: TextIO | None = None) -> str:
    """Stream the job's logs to ``out`` (default: the current stdout) until it ends; return
    its final status."""
    out = out or sys.stdout  # looked up now, not when the module was imported
    jobs = client(address)

    async def _tail() -> None:
        async for chunk in jobs.tail_job_logs(job_id):
            out.write(chunk)
            out.flush()

    with _authenticated(address):
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


def check_upload(job: JobSpec) -> int:
    """Size in bytes of what Ray will upload as ``working_dir`` (after the excludes).

    Walks the directory with Ray's own rules (excludes, ``.gitignore``, ``.rayignore``).
    Ray refuses a package over 512 MiB and warns at half; a checkout is a few MiB, so
    anything above ``runtime_env.max_upload_mb`` (default 100) is almost certainly data or
    results that belong on the cluster's storage.

    Raises:
        JobFileError: over the limit, naming the largest entries to exclude.
    """
    env = job.runtime_env
    if job.working_dir is None:
        return 0
    try:
        from ray._private.runtime_env.packaging import _dir_travel, _get_excludes
    except ImportError:  # pragma: no cover - Ray moved its helpers: Ray's own limit applies
        return 0
    from pathlib import Path

    root = job.working_dir
    sizes: dict[str, int] = {}

    def handler(path: Path) -> None:
        if path.is_file() and not path.is_symlink():
            top = path.relative_to(root).parts[0]
            sizes[top] = sizes.get(top, 0) + path.stat().st_size

    excludes = runtime_env(job).get("excludes", [])
    _dir_travel(root, [_get_excludes(root, excludes)], handler, include_gitignore=True)
    total = sum(sizes.values())
    if total > env.max_upload_mb * 2**20:
        biggest = sorted(sizes.items(), key=lambda kv: -kv[1])[:3]
        listed = ", ".join(f"{name} ({size / 2**20:.0f} MiB)" for name, size in biggest)
        raise JobFileError(
            f"{job.path}: runtime_env.working_dir {root} would upload {total / 2**20:.0f} MiB "
            f"(limit runtime_env.max_upload_mb={env.max_upload_mb:g}); largest: {listed}; add "
            "them to runtime_env.excludes (data and results belong on the cluster's storage)"
        )
    return total
