"""Connecting to Ray: a local instance on 127.0.0.1, or an existing cluster at ``--address``.

Resources are checked against what the cluster has before any trial is scheduled, and an
unreachable address fails in seconds instead of hanging in ``ray.init``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kanplatform.search.spec import SearchSpec, check_address, check_resources

# Environment that trials need to behave like `kanplatform train` on the driver's machine.
PROPAGATED_ENV_PREFIXES = ("WANDB_", "KANPLATFORM_")
PROPAGATED_ENV = ("PYTHONPATH", "OMP_NUM_THREADS", "RAY_AUTH_MODE")


@dataclass
class RayConnection:
    """What :func:`connect` did: whether this process called ``ray.init`` (and must undo it)."""

    address: str | None
    started_here: bool
    resources: dict[str, float] = field(default_factory=dict)
    nodes: list[dict[str, float]] = field(default_factory=list)

    def shutdown(self) -> None:
        """Disconnect (stopping a local instance) if :func:`connect` initialised Ray."""
        import ray

        if self.started_here and ray.is_initialized():
            ray.shutdown()


def trial_env() -> dict[str, str]:
    """Environment variables to forward to trial processes (W&B mode and dirs, ...)."""
    env = {k: v for k, v in os.environ.items() if k.startswith(PROPAGATED_ENV_PREFIXES)}
    env.update({k: os.environ[k] for k in PROPAGATED_ENV if k in os.environ})
    env.setdefault("WANDB_MODE", "offline")
    return env


def local_resources(num_cpus: int | None = None, num_gpus: int | None = None) -> dict[str, float]:
    """What a local Ray started here would offer (without starting it)."""
    if num_gpus is None:
        import torch

        num_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return {"CPU": float(num_cpus or os.cpu_count() or 1), "GPU": float(num_gpus)}


def connect(
    spec: SearchSpec,
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    init_kwargs: Mapping[str, Any] | None = None,
) -> RayConnection:
    """Connect to Ray after checking that the search fits; raise before starting if not.

    Args:
        spec: the search (its ``resources`` are checked).
        address: ``HOST:PORT`` of a running cluster's head, ``auto``, or None for a local
            instance bound to 127.0.0.1 with ``num_cpus``/``num_gpus`` (default: this
            machine's).
        init_kwargs: extra ``ray.init`` arguments.

    Returns:
        The :class:`RayConnection`; call ``shutdown()`` when done.

    Raises:
        SearchSpecError: unreachable address or a trial larger than the cluster.
    """
    import ray

    started_here = not ray.is_initialized()
    if started_here and address:
        check_address(address)
    elif started_here:
        # A local instance: check before paying for ray.init.
        local = local_resources(num_cpus, num_gpus)
        check_resources(spec, local, [local])

    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": True,
        "runtime_env": {"env_vars": trial_env()},
    }
    if address:
        kwargs["address"] = address
    else:
        kwargs.update(num_cpus=num_cpus or os.cpu_count(), _node_ip_address="127.0.0.1")
        if num_gpus is not None:
            kwargs["num_gpus"] = num_gpus
    kwargs.update(init_kwargs or {})
    if started_here:
        ray.init(**kwargs)
    resources = {k: float(v) for k, v in ray.cluster_resources().items()}
    nodes = [
        {k: float(v) for k, v in n.get("Resources", {}).items()}
        for n in ray.nodes()
        if n.get("Alive")
    ]
    conn = RayConnection(address, started_here, resources, nodes)
    try:
        check_resources(spec, resources, nodes)
    except Exception:
        if started_here:
            ray.shutdown()
        raise
    return conn
