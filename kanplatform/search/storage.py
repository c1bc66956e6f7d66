"""Where a search's results live, and whether every node of the cluster can reach it.

On one machine any path works. On a cluster of several nodes, each trial writes its results
and checkpoints where it runs, and a trial restarted on another node must find them again:
the storage must be *shared* — a path every node mounts (NFS, Lustre, a PVC) or a URI Ray
Tune reads through pyarrow (``s3://``, ``gs://``, ``hdfs://``, ``abfs://``, or
``file:///...`` for a shared mount named as a URI). A node-local path (``/tmp``, ``/dev/shm``)
is refused for a multi-node cluster before any trial starts, and a path is probed: the
driver writes a marker file and a task on every other node must see it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from kanplatform.search.spec import SearchSpecError

# Schemes pyarrow.fs.FileSystem.from_uri resolves (what Ray Tune's storage_path accepts).
URI_SCHEMES = ("s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss", "file")
# Mounted per node on every common cluster set-up (tmpfs, or the node's own disk).
NODE_LOCAL_ROOTS = ("/tmp", "/var/tmp", "/dev/shm", "/run")
SHARED_HINT = ("a path every node mounts (NFS, Lustre, a PVC) or a URI such as "
               "s3://bucket/prefix, gs://bucket/prefix")


def is_uri(path: str | os.PathLike[str] | None) -> bool:
    """True for ``scheme://...`` storage (object storage or a pyarrow filesystem)."""
    return path is not None and "://" in str(path)


def check_uri(uri: str, key: str = "storage_path") -> str:
    """Return ``uri`` if pyarrow (hence Ray Tune) knows its scheme.

    Raises:
        SearchSpecError: unknown scheme, or a ``file://`` URI that is not absolute.
    """
    parsed = urlparse(uri)
    if parsed.scheme not in URI_SCHEMES:
        raise SearchSpecError(f"{key}: {uri!r} has scheme {parsed.scheme!r}; Ray Tune storage "
                              f"takes {', '.join(s + '://' for s in URI_SCHEMES)} or a path")
    if parsed.scheme == "file" and (parsed.netloc or not parsed.path.startswith("/")):
        raise SearchSpecError(f"{key}: {uri!r} must be file:///ABSOLUTE/PATH")
    return uri


def local_path(uri: str) -> Path | None:
    """The directory a ``file://`` URI names (None for object storage)."""
    parsed = urlparse(uri)
    return Path(parsed.path) if parsed.scheme == "file" else None


def node_local_root(path: str | os.PathLike[str]) -> str | None:
    """The node-local root ``path`` lies under (``/tmp``...), or None.

    ``$KANPLATFORM_SHARED_TMP=1`` says the machine's /tmp is shared (rare; some
    single-image clusters), and turns this rule off.
    """
    if os.environ.get("KANPLATFORM_SHARED_TMP") == "1":
        return None
    text = os.path.normpath(str(path))
    for root in NODE_LOCAL_ROOTS:
        if text == root or text.startswith(root + "/"):
            return root
    return None


def check_multi_node_path(path: str | os.PathLike[str], nodes: int,
                          key: str = "storage_path") -> None:
    """Refuse a node-local path as the storage of a cluster of ``nodes`` > 1 nodes.

    Raises:
        SearchSpecError: one line naming the path, its node-local root and the fix.
    """
    if nodes <= 1 or is_uri(path):
        return
    root = node_local_root(path)
    if root is not None:
        raise SearchSpecError(
            f"{key}: {path} is under {root}, which every node of a {nodes}-node cluster "
            f"keeps to itself: trials restarted on another node would not find their "
            f"checkpoints; use {SHARED_HINT}"
        )


def alive_nodes() -> list[dict[str, Any]]:
    """The connected cluster's alive nodes (``ray.nodes()`` entries)."""
    import ray

    return [n for n in ray.nodes() if n.get("Alive")]


def check_shared(storage: str | os.PathLike[str], nodes: Sequence[dict[str, Any]] | None = None,
                 timeout_s: float = 120.0) -> None:
    """On a connected multi-node cluster, prove that every node sees ``storage``.

    URIs are shared by nature (pyarrow reaches them from any node). A path is refused when
    node-local by name, then probed: a marker file written here must be visible to a
    zero-CPU task pinned to each other node.

    Raises:
        SearchSpecError: the path is node-local, or the nodes that do not see it.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = list(nodes if nodes is not None else alive_nodes())
    if len(nodes) <= 1 or is_uri(storage):
        return
    check_multi_node_path(storage, len(nodes), "storage path")
    root = Path(storage)
    root.mkdir(parents=True, exist_ok=True)
    marker = root / f".kanplatform-shared-{uuid.uuid4().hex}"
    marker.write_text("kanplatform shared-storage probe\n")

    @ray.remote(num_cpus=0)
    def sees(path: str) -> bool:
        return Path(path).is_file()

    here = ray.get_runtime_context().get_node_id()
    try:
        refs = {n["NodeManagerAddress"] + " (" + n["NodeID"][:8] + ")":
                sees.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
                    n["NodeID"], soft=False)).remote(str(marker))
                for n in nodes if n["NodeID"] != here}
        blind = [name for name, ref in refs.items() if not ray.get(ref, timeout=timeout_s)]
    finally:
        marker.unlink(missing_ok=True)
    if blind:
        raise SearchSpecError(
            f"storage path {storage} is not shared: node(s) {', '.join(blind)} do not see a "
            f"file written there by the driver; use {SHARED_HINT}"
        )
