"""Connecting to Ray: a local instance on 127.0.0.1, or an existing cluster at ``--address``.

Resources are checked against what the cluster has before any trial is scheduled, and an
unreachable address fails in seconds instead of hanging in ``ray.init``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kanplatform.search.spec import SearchSpec, SearchSpecError, check_address, check_resources

# Environment that trials need to behave like `kanplatform train` on the driver's machine.
PROPAGATED_ENV_PREFIXES = ("WANDB_", "KANPLATFORM_")
# this process's own: the W&B service it talks to (a socket here) is no trial's
LOCAL_ENV = ("WANDB_SERVICE",)
PROPAGATED_ENV = ("PYTHONPATH", "OMP_NUM_THREADS", "RAY_AUTH_MODE")


@dataclass
class RayConnection:
    """What :func:`connect` did: whether this process called ``ray.init`` (and must undo it)."""

    address: str | None
    started_here: bool
    resources: dict[str, float] = field(default_factory=dict)
    nodes: list[dict[str, float]] = field(default_factory=list)
    dashboard_url: str | None = None  # http://HOST:PORT of Ray's dashboard, when it has one

    def shutdown(self) -> None:
        """Disconnect (stopping a local instance) if :func:`connect` initialised Ray."""
        import ray

        if self.started_here and ray.is_initialized():
            ray.shutdown()


def auth_token() -> tuple[str | None, str]:
    """Ray's token as Ray itself looks for it: ``(token or None, where it was looked for)``.

    ``RAY_AUTH_TOKEN``, then the file ``RAY_AUTH_TOKEN_PATH`` names, then
    ``~/.ray/auth_token`` (where ``ray start``/``ray get-auth-token --generate`` write it).

    Raises:
        SearchSpecError: ``RAY_AUTH_TOKEN_PATH`` names a file that cannot be read (Ray
            itself treats this as fatal rather than fall back).
    """
    from pathlib import Path

    token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    if token:
        return token, "$RAY_AUTH_TOKEN"
    named = os.environ.get("RAY_AUTH_TOKEN_PATH")
    path = Path(named).expanduser() if named else Path.home() / ".ray" / "auth_token"
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        if named:
            raise SearchSpecError(f"RAY_AUTH_TOKEN_PATH={named}: no such file; point it at "
                                  "the cluster's token file or unset it") from None
        return None, str(path)
    except OSError as err:
        raise SearchSpecError(f"cannot read the Ray token file {path}: {err.strerror}") from None
    if not token and named:
        raise SearchSpecError(f"RAY_AUTH_TOKEN_PATH={named} is empty")
    return token or None, str(path)


def enable_token_auth() -> bool:
    """Use token auth for this process when a token exists and RAY_AUTH_MODE is unset.

    Ray does this itself only for ``address="auto"``; joining an explicit ``HOST:PORT`` of a
    head started with its default token auth would otherwise fail. An explicit
    ``RAY_AUTH_MODE`` (``token`` or ``disabled``) is always respected.

    Returns:
        True when token auth is on for this process.
    """
    mode = os.environ.get("RAY_AUTH_MODE")
    if mode is not None:
        return mode.lower() == "token"
    if auth_token()[0] is None:
        return False
    os.environ["RAY_AUTH_MODE"] = "token"
    try:  # Ray caches its config at first use; re-read it as Ray's own auto-enable does
        from ray._raylet import Config

        Config.initialize("")
    except (ImportError, AttributeError):  # pragma: no cover - a Ray without token auth
        pass
    return True


def trial_env() -> dict[str, str]:
    """Environment variables to forward to trial processes (W&B mode and dirs, ...)."""
    env = {k: v for k, v in os.environ.items() if k.startswith(PROPAGATED_ENV_PREFIXES)
           and k not in LOCAL_ENV}
    env.update({k: os.environ[k] for k in PROPAGATED_ENV if k in os.environ})
    env.setdefault("WANDB_MODE", "offline")
    # a trial Tune stopped writes its records before its actor takes the next trial (Tune
    # waits 2 s by default, then fails the next trial: "reset_config() ... return True")
    env.setdefault("TUNE_FUNCTION_THREAD_TIMEOUT_S", "60")
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
    autoscaling: bool = False,
    dashboard: bool = False,
) -> RayConnection:
    """Connect to Ray after checking that the search fits; raise before starting if not.

    Args:
        spec: the search (its ``resources`` are checked).
        address: the cluster in any form :mod:`kanplatform.search.address` accepts
            (``HOST:PORT`` of its head, ``ray://HOST:PORT``, its dashboard URL), ``auto``, or
            None for a local instance bound to 127.0.0.1 with ``num_cpus``/``num_gpus``
            (default: this machine's). A head with token auth is joined with Ray's token (see
            :func:`enable_token_auth`).
        init_kwargs: extra ``ray.init`` arguments.
        autoscaling: the cluster adds nodes on demand: a trial larger than today's nodes is
            requested from the autoscaler and waited for (``resources.placement_timeout_s``)
            instead of refused.
        dashboard: start Ray's dashboard with a local instance, bound to 127.0.0.1 (port
            8265, or the next free one); its URL is printed. A cluster's own dashboard, if
            it has one, is printed too.

    Returns:
        The :class:`RayConnection`; call ``shutdown()`` when done.

    Raises:
        SearchSpecError: unreachable address, refused token, or a trial that can never be
            placed on the cluster.
    """
    import sys

    import ray

    from kanplatform.search.address import AddressError, to_ray_address

    started_here = not ray.is_initialized()
    if started_here and address:
        try:
            address, note = to_ray_address(address)  # a dashboard URL names the head's host
        except AddressError as err:
            raise SearchSpecError(str(err)) from None
        if note:
            print(f"note: {note}", file=sys.stderr)
        check_address(address)
        enable_token_auth()
        _check_token(address)
    elif started_here:
        # A local instance: check before paying for ray.init.
        local = local_resources(num_cpus, num_gpus)
        check_resources(spec, local, [local])

    local_dashboard = dashboard and not address
    kwargs: dict[str, Any] = {
        "include_dashboard": local_dashboard,
        "log_to_driver": True,
        "runtime_env": {"env_vars": trial_env()},
    }
    if address:
        kwargs["address"] = address
    else:
        kwargs.update(num_cpus=num_cpus or os.cpu_count(), _node_ip_address="127.0.0.1")
        if local_dashboard:
            kwargs["dashboard_host"] = "127.0.0.1"
        if num_gpus is not None:
            kwargs["num_gpus"] = num_gpus
    kwargs.update(init_kwargs or {})
    url = None
    if started_here:
        url = dashboard_url(_init(ray, kwargs, address))
    resources = {k: float(v) for k, v in ray.cluster_resources().items()}
    nodes = [
        {k: float(v) for k, v in n.get("Resources", {}).items()}
        for n in ray.nodes()
        if n.get("Alive")
    ]
    conn = RayConnection(address, started_here, resources, nodes, url)
    if url and (dashboard or address):
        token = " (token auth: the page asks for `ray get-auth-token`)" \
            if os.environ.get("RAY_AUTH_MODE", "").lower() == "token" else ""
        where = "local Ray, stops with the search" if started_here and not address \
            else "the cluster's"
        print(f"Ray dashboard: {url}  ({where}){token}")
    try:
        check_resources(spec, resources, nodes)
    except SearchSpecError as err:
        if not (autoscaling and address):
            if started_here:
                ray.shutdown()
            raise
        _ask_autoscaler(spec, err)
    return conn


def _auth_refused(address: str | None) -> SearchSpecError:
    token, where = auth_token()
    mode = os.environ.get("RAY_AUTH_MODE", "unset")
    found = f"from {where}" if token else f"none found in $RAY_AUTH_TOKEN or {where}"
    return SearchSpecError(
        f"the Ray cluster at {address} refused this driver (token authentication; "
        f"RAY_AUTH_MODE={mode}, token {found}): put the cluster's token (`ray get-auth-token` "
        "on its head node) in ~/.ray/auth_token or RAY_AUTH_TOKEN"
    )


def _check_token(address: str) -> None:
    """Ask the head's GCS once, with a short timeout, whether it accepts us.

    ``ray.init`` would retry a refused token for a minute, printing a warning each second;
    this answers in milliseconds. Uses Ray's own GCS client (skipped if Ray moved it).
    """
    if address == "auto" or address.startswith("ray://"):
        return
    try:
        from ray._raylet import InnerGcsClient
    except ImportError:  # pragma: no cover - depends on the Ray version
        return
    try:
        InnerGcsClient.standalone(address, None, 5000)
    except Exception as err:  # noqa: BLE001 - anything but auth is left to ray.init
        if type(err).__name__ == "AuthenticationError":
            raise _auth_refused(address) from None


def dashboard_url(context: Any) -> str | None:
    """``http://HOST:PORT`` of the dashboard ``ray.init`` reports, None when there is none."""
    url = str(getattr(context, "dashboard_url", "") or "")
    if not url:
        return None
    return url if "://" in url else f"http://{url}"


# A ray:// head starts one "specific server" process per driver; on a busy head that
# process sometimes dies on start ("Starting Ray client server failed"), and a second
# connection (a new server, on a new port) goes through. Tries in all, and the pause between.
CLIENT_TRIES = 3
CLIENT_RETRY_PAUSE_S = 2.0


def _init(ray: Any, kwargs: dict[str, Any], address: str | None) -> Any:
    """``ray.init``, with a refused or missing token turned into one line, and a ray://
    session whose server did not start tried again (:data:`CLIENT_TRIES` in all)."""
    import sys
    import time

    client = bool(address and address.startswith("ray://"))
    for attempt in range(1, CLIENT_TRIES + 1):
        try:
            return ray.init(**kwargs)
        except Exception as err:
            # a connection that failed half-way (a ray:// client whose server did not
            # start) leaves this process in Ray's client mode: every later ray.init here
            # then failed
            with contextlib.suppress(Exception):
                ray.shutdown()
            if type(err).__name__ == "AuthenticationError":
                raise _auth_refused(address) from None
            if not (client and _client_server_failed(err)):
                raise
            if attempt == CLIENT_TRIES:
                raise SearchSpecError(
                    f"the Ray client server at {address} failed to start a session for this "
                    f"driver ({CLIENT_TRIES} tries): its reason is in ray_client_server_*.err "
                    "in the head node's Ray logs (/tmp/ray/session_latest/logs); or connect "
                    "to the head's GCS address (HOST:6379) instead of ray://"
                ) from None
            print(f"note: the Ray client server at {address} did not start a session "
                  f"(try {attempt} of {CLIENT_TRIES}); trying again", file=sys.stderr)
            time.sleep(CLIENT_RETRY_PAUSE_S)
    raise AssertionError("unreachable")  # pragma: no cover


def _client_server_failed(err: BaseException) -> bool:
    """True for Ray's answer when the head's per-driver client server died on start."""
    text = str(err)
    return isinstance(err, ConnectionError) and (
        "client server failed" in text  # the process had exited when the head looked
        or "Proxy failed to Connect to backend" in text)  # it died before it listened


def _ask_autoscaler(spec: SearchSpec, err: SearchSpecError) -> None:
    """Request one trial's bundles from the autoscaler and say that the search will wait."""
    import sys

    from ray.autoscaler.sdk import request_resources

    from kanplatform.search.resources import TrialPlacement

    placement = TrialPlacement.of(spec.resources)
    request_resources(bundles=placement.bundles())
    print(f"note: {err} -- waiting up to {spec.resources.placement_timeout_s:g} s for the "
          "autoscaler to add nodes (resources.placement_timeout_s)", file=sys.stderr)
