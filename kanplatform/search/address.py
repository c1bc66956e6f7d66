"""One ``--address`` for every command that names a cluster: what the user has in hand.

Three forms are accepted wherever a cluster is named (``tune``, ``scale``, ``compare``,
``submit``, ``jobs``), and converted to what the command needs:

* ``HOST:PORT`` -- the head's address as ``ray start --head`` prints it (GCS, port 6379 by
  default). ``submit``/``jobs`` ask that head for its dashboard URL. For compatibility, a
  ``HOST:PORT`` where a dashboard answers (``127.0.0.1:8265``) is taken as the dashboard.
* ``ray://HOST:PORT`` -- a Ray Client address: ``tune`` joins through it; ``submit``/``jobs``
  ask the head on the same host (port 6379) for its dashboard, else take port 8265.
* ``http(s)://HOST:PORT`` -- the dashboard URL (``ray job submit``'s). ``tune`` joins the head
  on the same host at Ray's default port 6379 (and says so: give ``HOST:PORT`` for another).

:func:`to_ray_address` gives what ``ray.init`` takes, :func:`to_dashboard_url` what the Jobs
API takes. Both return a note for the console when they converted, and raise
:class:`AddressError` (one line: the form that was not understood and the three that are)
when an address cannot be used.
"""

from __future__ import annotations

import http.client
import socket
from dataclasses import dataclass
from urllib.parse import urlparse

GCS_PORT = 6379  # `ray start --head`'s default --port
DASHBOARD_PORT = 8265  # and its default --dashboard-port
FORMS = "HOST:PORT (as `ray start --head` prints it), ray://HOST:PORT or http://HOST:8265"


class AddressError(ValueError):
    """A cluster address that is malformed, or names nothing that answers."""


@dataclass(frozen=True)
class ClusterAddress:
    """A parsed ``--address``.

    Attributes:
        text: what the user wrote.
        form: ``gcs`` (``HOST:PORT``), ``client`` (``ray://``), ``dashboard`` (``http(s)://``)
            or ``auto`` (Ray finds the cluster this machine belongs to).
        host: the host (``None`` for ``auto``).
        port: the port, ``None`` where the URL gives none.
    """

    text: str
    form: str
    host: str | None = None
    port: int | None = None


def parse_address(text: str) -> ClusterAddress:
    """Tell which form ``text`` is, without contacting anything.

    Raises:
        AddressError: none of the accepted forms.
    """
    text = text.strip()
    if text == "auto":
        return ClusterAddress(text, "auto")
    if "://" in text:
        url = urlparse(text)
        forms = {"http": "dashboard", "https": "dashboard", "ray": "client"}
        try:
            port = url.port
        except ValueError:
            port = -1
        if url.scheme not in forms or not url.hostname or port == -1:
            raise AddressError(f"--address {text!r}: not a cluster address; use {FORMS}")
        return ClusterAddress(text.rstrip("/"), forms[url.scheme], url.hostname, port)
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise AddressError(f"--address {text!r}: not a cluster address; use {FORMS}")
    return ClusterAddress(text, "gcs", host.strip("[]"), int(port_text))


def _listens(host: str, port: int, timeout_s: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def is_dashboard(host: str, port: int, timeout_s: float = 2.0) -> bool:
    """Whether an HTTP server (a Ray dashboard) answers at ``host:port``: a GCS port speaks
    gRPC and answers an HTTP/1.1 request with no status line."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        conn.request("GET", "/api/version")
        conn.getresponse().read()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def to_ray_address(text: str) -> tuple[str, str | None]:
    """What ``ray.init(address=...)`` takes for ``--address text``, and a note if converted.

    Raises:
        AddressError: malformed.
    """
    addr = parse_address(text)
    if addr.form in ("auto", "client"):
        return addr.text, None
    if addr.form == "gcs" and not is_dashboard(addr.host, addr.port):
        return addr.text, None
    gcs = f"{addr.host}:{GCS_PORT}"
    return gcs, (f"--address {text} is the cluster's dashboard; joining its head at {gcs} "
                 f"(Ray's default port; give HOST:PORT as `ray start --head` printed it if "
                 "the head uses another)")


def to_dashboard_url(text: str, timeout_s: float = 5.0) -> tuple[str, str | None]:
    """The dashboard URL the Jobs API takes for ``--address text``, and a note if converted.

    A ``HOST:PORT`` head is asked for its dashboard's address (Ray records it in the head's
    key-value store); a ``ray://`` address asks the head on its host (port 6379), else
    takes port 8265.

    Raises:
        AddressError: malformed, nothing answers at a ``HOST:PORT``, or its head knows no
            dashboard.
    """
    addr = parse_address(text)
    if addr.form == "dashboard":
        return addr.text, None
    if addr.form == "auto":
        raise AddressError(f"--address auto names no dashboard; use {FORMS}")
    if addr.form == "client":  # the head's GCS on the same host knows its dashboard
        head = f"{addr.host}:{GCS_PORT}"
        url = (_dashboard_of_head(head, timeout_s) if _listens(addr.host, GCS_PORT, timeout_s)
               else f"http://{addr.host}:{DASHBOARD_PORT}")
        return url, f"--address {text} is a Ray Client address; using the dashboard at {url}"
    if not _listens(addr.host, addr.port, timeout_s):
        raise AddressError(
            f"no Ray cluster answers at {text}: start one with `ray start --head "
            f"--dashboard-host 127.0.0.1`, or forward a remote head (`ssh -L "
            f"8265:127.0.0.1:8265 HEAD`) and pass --address http://127.0.0.1:8265")
    if is_dashboard(addr.host, addr.port):
        return f"http://{addr.text}", None  # the old meaning of HOST:PORT for submit/jobs
    url = _dashboard_of_head(addr.text, timeout_s)
    return url, f"--address {text} is the cluster's head; its dashboard is {url}"


def _dashboard_of_head(gcs: str, timeout_s: float) -> str:
    """Ask the head's GCS where its dashboard listens (what ``ray job submit`` does)."""
    from ray._raylet import InnerGcsClient

    from kanplatform.search.ray_cluster import enable_token_auth

    enable_token_auth()
    try:
        client = InnerGcsClient.standalone(gcs, None, int(timeout_s * 1000))
        value = client.internal_kv_get(b"dashboard", b"dashboard", timeout_s)
    except Exception as err:  # noqa: BLE001 - Ray's RPC errors vary by version
        raise AddressError(f"the Ray head at {gcs} did not say where its dashboard is "
                           f"({type(err).__name__}: {err}); pass --address "
                           f"http://HOST:{DASHBOARD_PORT}") from None
    if not value:
        raise AddressError(f"the Ray head at {gcs} runs no dashboard (started with "
                           "--include-dashboard false?); submitting needs one")
    return f"http://{value.decode()}"
