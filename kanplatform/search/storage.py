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


# -- experiments on a URI ----------------------------------------------------------------------

def _fs(uri: str) -> tuple[Any, str]:
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(uri)


def join(uri: str, *parts: str) -> str:
    """``uri/part/...`` (a URI keeps its query string, e.g. ``?region=``, at the end)."""
    base, sep, query = uri.partition("?")
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)]) + sep + query


class ExperimentStore:
    """Where one search lives: a directory, or a URI Ray Tune writes through pyarrow.

    With a URI, Tune keeps its state, results and checkpoints there (so a trial restarted on
    any node finds its checkpoint); each trial trains in a node-local scratch run directory
    and uploads it to ``<uri>/runs/<trial id>`` when it ends; the driver writes the tables
    into :attr:`local` (a mirror on its own disk) and uploads them next to Tune's files.

    Attributes:
        local: the experiment directory on this machine (everything, for a path).
        uri: the experiment's URI, or None for a path.
    """

    def __init__(self, local: Path, uri: str | None = None) -> None:
        self.local = local
        self.uri = uri

    @property
    def name(self) -> str:
        return self.local.name

    @property
    def tune_root(self) -> str:
        """``RunConfig(storage_path=...)``: the folder holding the experiment."""
        if self.uri is None:
            return str(self.local.parent)
        return self.uri.partition("?")[0].rstrip("/").rsplit("/", 1)[0] + \
            ("?" + self.uri.partition("?")[2] if "?" in self.uri else "")

    @property
    def where(self) -> str:
        """The experiment as the user names it (the URI, else the directory)."""
        return self.uri or str(self.local)

    def has(self, rel: str) -> bool:
        """True when ``rel`` exists in the experiment (on the URI when there is one)."""
        if self.uri is None:
            return (self.local / rel).exists()
        import pyarrow.fs

        fs, path = _fs(join(self.uri, rel))
        return fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound

    def publish(self, *names: str) -> None:
        """Upload these files of :attr:`local` to the URI (nothing to do for a path)."""
        if self.uri is None:
            return
        for name in names:
            if (self.local / name).is_file():
                upload(self.local / name, join(self.uri, name))


def experiment_store(storage: str | os.PathLike[str], name: str,
                     mirror_root: str | os.PathLike[str]) -> ExperimentStore:
    """The store of experiment ``name`` under ``storage`` (a path, or a URI mirrored locally
    under ``mirror_root``)."""
    if is_uri(storage):
        # every URI alike, file:// included: pyarrow writes it, the driver mirrors the tables
        uri = check_uri(str(storage), "storage path")
        return ExperimentStore(Path(mirror_root).expanduser().resolve() / name, join(uri, name))
    return ExperimentStore(Path(storage).expanduser().resolve() / name)


def newest_experiment(storage: str | os.PathLike[str], prefix: str) -> str | None:
    """Name of the newest ``prefix*`` experiment (with a ``tuner.pkl``) under ``storage``."""
    if not is_uri(storage):
        root = Path(storage).expanduser().resolve()
        found = sorted((p for p in root.glob(f"{prefix}*") if (p / "tuner.pkl").is_file()),
                       key=lambda p: p.stat().st_mtime)
        return found[-1].name if found else None
    import pyarrow.fs

    fs, root = _fs(str(storage))
    try:
        infos = fs.get_file_info(pyarrow.fs.FileSelector(root, allow_not_found=True))
    except OSError:
        return None
    found = []
    for info in infos:
        name = info.path.rstrip("/").rsplit("/", 1)[-1]
        if info.type == pyarrow.fs.FileType.Directory and name.startswith(prefix):
            pkl = fs.get_file_info(f"{info.path}/tuner.pkl")
            if pkl.type == pyarrow.fs.FileType.File:
                found.append((pkl.mtime_ns or 0, name))
    return max(found)[1] if found else None


def upload(local: Path, uri: str) -> None:
    """Copy a file or a directory tree to ``uri``."""
    import pyarrow.fs

    fs, path = _fs(uri)
    if local.is_dir():
        fs.create_dir(path, recursive=True)
        pyarrow.fs.copy_files(str(local), path, source_filesystem=pyarrow.fs.LocalFileSystem(),
                              destination_filesystem=fs)
        return
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with local.open("rb") as src, fs.open_output_stream(path) as dst:
        dst.write(src.read())


def copy_file(src: str, dst: Path) -> bool:
    """Copy ``src`` (a path or a URI) to the local file ``dst``; False when it is missing."""
    if not is_uri(src):
        if not Path(src).is_file():
            return False
        dst.write_bytes(Path(src).read_bytes())
        return True
    fs, path = _fs(src)
    try:
        with fs.open_input_stream(path) as fh:
            data = fh.read()
    except (FileNotFoundError, OSError):
        return False
    dst.write_bytes(data)
    return True


def trial_run_dir(experiment_dir: str, results_uri: str | None, experiment_name: str,
                  trial_id: str) -> tuple[Path, str | None]:
    """``(where the trial writes its run directory, where it is published)``.

    On shared storage the run directory is ``<experiment>/runs/<trial>`` itself. With object
    storage it is node-local scratch, uploaded to ``<uri>/runs/<trial>`` by
    :func:`publish_run_dir`; a restarted trial restores from Tune's checkpoint (on the URI),
    not from this scratch.
    """
    if results_uri is None:
        return Path(experiment_dir) / "runs" / trial_id, None
    import tempfile

    scratch = Path(tempfile.gettempdir()) / "kanplatform-trials" / experiment_name / trial_id
    return scratch, join(results_uri, "runs", trial_id)


def publish_run_dir(run_dir: Path, remote: str | None) -> None:
    """Upload a trial's scratch run directory to object storage (no-op on shared storage)."""
    if remote is not None and run_dir.is_dir():
        upload(run_dir, remote)
