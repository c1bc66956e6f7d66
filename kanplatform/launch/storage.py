"""Where a job's results go, as the cluster must see them (never a path only this machine has).

A Ray job runs in a temporary copy of ``runtime_env.working_dir`` on the cluster, deleted
when it ends: a relative ``storage_path`` there would lose the results, and a path made
absolute on the submitting laptop names a folder the cluster does not have. So a relative
path (or none) is taken relative to the checkout only where the cluster *is* this machine
(a local ``ray start --head``); a remote cluster needs an absolute path on its shared
filesystem or a URI. A SLURM job ``cd``s into the checkout on the shared filesystem, so
relative paths are relative to it.
"""

from __future__ import annotations

import os
from pathlib import Path

from kanplatform.launch.jobfile import LOCAL_HOSTS, JobFileError, JobSpec
from kanplatform.search.storage import is_uri


def resolve_storage_path(storage_path: str | None) -> str | None:
    """Make a local storage path absolute (``~`` expanded); URIs (``s3://``) pass through.

    Only right where the cluster shares this machine's disk; see :func:`job_storage`.
    """
    if storage_path is None or "://" in storage_path:
        return storage_path
    return os.path.abspath(os.path.expanduser(storage_path))


def is_local_address(address: str) -> bool:
    """True when a dashboard address names this machine (a laptop's ``ray start --head``)."""
    from urllib.parse import urlparse

    host = urlparse(address if "://" in address else f"http://{address}").hostname
    return host in LOCAL_HOSTS


def job_storage(job: JobSpec, target: str, address: str | None = None) -> str | None:
    """The results root as the cluster must see it, never a path only this machine has.

    Args:
        job: the job file.
        target: ``"ray"`` (Ray Jobs API at ``address``) or ``"slurm"`` (the batch script
            ``cd``s into ``working_dir`` on the shared filesystem).
        address: the dashboard address, for ``"ray"``.

    Returns:
        An absolute path or a URI (None: the command's own default, relative to its working
        directory, only for SLURM).

    Raises:
        JobFileError: a relative path (or none) for a remote Ray cluster: the job runs in a
            temporary copy of ``working_dir`` there, which Ray deletes afterwards.
    """
    path = job.storage_path
    if path is not None and (is_uri(path) or os.path.isabs(os.path.expanduser(path))):
        return os.path.expanduser(path) if not is_uri(path) else path
    base = job.working_dir or Path.cwd()
    if target == "slurm":
        return None if path is None else str(base / path)
    if address is not None and is_local_address(address):
        return str(base / (path or "runs"))  # the cluster is this machine: same disk
    shown = "no storage_path" if path is None else f"storage_path {path!r} is relative"
    raise JobFileError(
        f"{job.path}: {shown}, and the Ray cluster at {address} is not this machine: the job "
        "runs in a temporary copy of working_dir there, deleted when it ends; set "
        "storage_path to an absolute path on the cluster's shared filesystem or a URI "
        "(s3://bucket/prefix)"
    )
