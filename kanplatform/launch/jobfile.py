"""The job file: what to run, where, in which environment, with which resources.

A job file says *where and how* a run happens; the run config still says *what* it trains::

    run:
      command: tune                       # train | tune | scale
      config: configs/experiment/quick.yaml  # relative to runtime_env.working_dir
                                          # (scale: a study, configs/scaling/*.yaml)
      search: configs/search/asha_kan.yaml    # tune only
      overrides: {trainer.max_steps: 200} # key=value overrides (a mapping or a list)
      args: []                            # extra CLI flags for the command
    address: http://127.0.0.1:8265        # Ray dashboard; `--address` wins over it
    runtime_env:
      working_dir: ..                     # relative to this file; uploaded to the cluster
      excludes: [data/]                   # on top of .git, .venv, runs, outputs, wandb,
                                          # caches (DEFAULT_EXCLUDES)
      max_upload_mb: 100                  # refuse a larger upload (Ray's own limit: 512)
      pip: []                             # packages installed on the cluster, or
      image: null                         # a container image (then no pip)
      env_vars: {WANDB_MODE: offline}
    resources:
      cpus: 2                             # per node (SLURM, Kubernetes)
      gpus: 0                             # per node
      nodes: 1                            # SLURM nodes / Ray nodes (head + workers)
      entrypoint_cpus: 0                  # reserved on Ray for the driver process
      entrypoint_gpus: 0
    storage_path: /shared/kanplatform     # results root: train's output_dir=,
                                          # tune's and scale's --output-dir;
                                          # on several nodes: shared (NFS...) or s3://...
    slurm: {partition: null, time: "01:00:00", account: null, setup: ...,
            ray_port: null, join_timeout_s: 300}

Every value that reaches a script is checked against an allow-list here (names,
partitions, times, env and override keys; see :mod:`kanplatform.launch.quoting`) and
quoted again when rendered. Nothing here imports Ray or contacts anything: a bad file fails
in milliseconds with the key named, before a cluster is touched.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kanplatform._util.dotted import split_override
from kanplatform._util.strict import check_keys, field_names, from_mapping
from kanplatform._util.yamlfile import read_yaml
from kanplatform.launch import quoting
from kanplatform.search.spec import SearchSpecError
from kanplatform.search.storage import check_multi_node_path, check_uri, is_uri

COMMANDS = ("train", "tune", "scale")
# How each command takes the results root: a run-config override or a flag.
STORAGE_FLAGS = {"train": "output_dir", "tune": "--output-dir", "scale": "--output-dir"}
RAY_COMMANDS = ("tune", "scale")  # commands that drive a Ray cluster themselves
DEFAULT_ADDRESS = "http://127.0.0.1:8265"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
# Never uploaded with working_dir: environments, results, VCS data and caches.
DEFAULT_EXCLUDES = (".git", ".venv", "venv", "runs", "outputs", "wandb", "ray_results",
                    "lightning_logs", "device_check", "**/__pycache__", "*.egg-info",
                    ".cache", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".ipynb_checkpoints",
                    "node_modules")


class JobFileError(ValueError):
    """A job file that cannot run; the message names the file, the key and the fix."""


@dataclass
class RunSpec:
    """What to run: a ``kanplatform`` command with its config and overrides."""

    command: str
    config: str
    search: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)


@dataclass
class RuntimeEnvSpec:
    """Where the code comes from on the cluster and how its processes are set up."""

    working_dir: str | None = None
    excludes: list[str] = field(default_factory=list)
    pip: list[str] = field(default_factory=list)
    image: str | None = None
    env_vars: dict[str, str] = field(default_factory=dict)
    max_upload_mb: float = 100  # refuse a working_dir upload larger than this (Ray: 512 MiB)


@dataclass
class ResourceSpec:
    """Resources per node for SLURM/Kubernetes, and what the Ray driver reserves."""

    cpus: int = 1
    gpus: int = 0
    nodes: int = 1
    entrypoint_cpus: float = 0
    entrypoint_gpus: float = 0


@dataclass
class SlurmSpec:
    """SLURM-only settings used when rendering ``jobs/slurm/ray_cluster.sbatch``."""

    partition: str | None = None
    account: str | None = None
    time: str = "01:00:00"
    setup: str = "source .venv/bin/activate"
    ray_port: int | None = None  # None: a free port on the head node, chosen there
    join_timeout_s: int = 300   # how long the script waits for every node to join
    template: str | None = None


@dataclass
class JobSpec:
    """A parsed job file. Build it with :func:`load_job`.

    Attributes:
        path: the job file; relative paths inside it resolve against its folder.
        working_dir: ``runtime_env.working_dir`` as an absolute local path (or None).
    """

    run: RunSpec
    path: Path
    name: str | None = None
    address: str | None = None
    runtime_env: RuntimeEnvSpec = field(default_factory=RuntimeEnvSpec)
    resources: ResourceSpec = field(default_factory=ResourceSpec)
    storage_path: str | None = None
    slurm: SlurmSpec = field(default_factory=SlurmSpec)

    @property
    def working_dir(self) -> Path | None:
        if self.runtime_env.working_dir is None:
            return None
        return (self.path.parent / self.runtime_env.working_dir).resolve()

    @property
    def job_name(self) -> str:
        return self.name or self.path.stem

    def argv(self, storage_path: str | None = None) -> list[str]:
        """The ``kanplatform`` arguments this job runs (without the program name).

        Args:
            storage_path: overrides the job's ``storage_path`` (e.g. made absolute).
        """
        run = self.run
        argv = [run.command, run.config]
        if run.search is not None:
            argv.append(run.search)
        argv += [f"{key}={_format_value(value)}" for key, value in run.overrides.items()]
        storage = storage_path if storage_path is not None else self.storage_path
        if storage is not None:
            flag = STORAGE_FLAGS[run.command]
            argv += [flag, storage] if flag.startswith("--") else [f"{flag}={storage}"]
        args = list(run.args)
        if run.command in RAY_COMMANDS and "--address" not in args:
            # On a cluster the driver joins it (RAY_ADDRESS, set by Ray Jobs and the sbatch
            # script) instead of starting a private Ray instance.
            args += ["--address", "auto"]
        return argv + args

    def entrypoint(self, storage_path: str | None = None) -> str:
        """The shell command a cluster runs: ``python -m kanplatform ...``.

        ``python -m`` (not the ``kanplatform`` script) runs the code uploaded with
        ``working_dir``, whatever version is installed on the cluster.
        """
        return shlex.join(["python", "-m", "kanplatform", *self.argv(storage_path)])


def _format_value(value: Any) -> str:
    """Render an override value the way a user types it (``[2,1,1]``, ``null``, ``true``)."""
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix(
        "\n..."
    ).strip()


def _check_type(value: Any, kinds: tuple[type, ...], key: str, source: Path) -> None:
    if value is not None and (not isinstance(value, kinds) or isinstance(value, bool)
                              and bool not in kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise JobFileError(f"{source}: `{key}` must be {names}, got {value!r}")


def parse_job(data: Any, path: str | Path, check_paths: bool = True) -> JobSpec:
    """Validate a job mapping (as loaded from YAML) and return a :class:`JobSpec`.

    Args:
        data: the job file's contents.
        path: the job file's path; relative paths resolve against its folder.
        check_paths: check that ``working_dir``, ``run.config`` and ``run.search`` exist.

    Raises:
        JobFileError: unknown key, wrong type, bad value or missing file, named.
    """
    path = Path(path).absolute()
    if not isinstance(data, Mapping):
        raise JobFileError(f"{path}: a job file is a mapping with a `run:` section")
    check_keys(data, [k for k in field_names(JobSpec) if k != "path"], "", JobFileError,
               source=str(path))
    if "run" not in data:
        raise JobFileError(f"{path}: missing `run:` (command, config, ...)")
    sections = {"run": RunSpec, "runtime_env": RuntimeEnvSpec, "resources": ResourceSpec,
                "slurm": SlurmSpec}
    kwargs = {key: (from_mapping(sections[key], value, key, JobFileError, source=str(path))
                    if key in sections else value)
              for key, value in data.items()}
    job = JobSpec(path=path, **kwargs)
    _check_job(job, check_paths)
    return job


def _check_job(job: JobSpec, check_paths: bool) -> None:
    src, run, env, res = job.path, job.run, job.runtime_env, job.resources
    if run.command not in COMMANDS:
        raise JobFileError(f"{src}: `run.command` is {run.command!r}; use one of {COMMANDS}")
    _check_type(run.config, (str,), "run.config", src)
    if run.command == "tune" and not run.search:
        raise JobFileError(f"{src}: `run.command: tune` needs `run.search: SEARCH.yaml`")
    if run.command != "tune" and run.search:
        raise JobFileError(f"{src}: `run.search` is only for `run.command: tune`")
    if isinstance(run.overrides, list):
        run.overrides = _overrides_from_list(run.overrides, src)
    _check_type(run.overrides, (dict,), "run.overrides", src)
    _check_type(run.args, (list,), "run.args", src)
    run.args = [str(a) for a in run.args]
    for key in ("address", "storage_path", "name"):
        _check_type(getattr(job, key), (str,), key, src)
    _check_type(env.env_vars, (dict,), "runtime_env.env_vars", src)
    env.env_vars = {str(k): str(v) for k, v in env.env_vars.items()}
    _check_type(env.pip, (list,), "runtime_env.pip", src)
    _check_type(env.excludes, (list,), "runtime_env.excludes", src)
    _check_type(env.max_upload_mb, (int, float), "runtime_env.max_upload_mb", src)
    if env.max_upload_mb <= 0:
        raise JobFileError(f"{src}: `runtime_env.max_upload_mb` must be > 0")
    if env.image and env.pip:
        raise JobFileError(f"{src}: `runtime_env.image` and `runtime_env.pip` exclude each "
                           "other; put the packages in the image")
    for key in ("cpus", "gpus", "nodes"):
        _check_type(getattr(res, key), (int,), f"resources.{key}", src)
    for key in ("entrypoint_cpus", "entrypoint_gpus"):
        _check_type(getattr(res, key), (int, float), f"resources.{key}", src)
    if res.nodes < 1 or res.cpus < 1 or res.gpus < 0:
        raise JobFileError(f"{src}: `resources` needs nodes >= 1, cpus >= 1, gpus >= 0")
    if res.entrypoint_cpus < 0 or res.entrypoint_gpus < 0:
        raise JobFileError(f"{src}: `resources.entrypoint_*` must be >= 0")
    try:
        _check_rendered_values(job)
        _check_storage(job)
    except (quoting.UnsafeValueError, SearchSpecError) as err:
        raise JobFileError(f"{src}: {err}") from None
    if check_paths:
        _check_paths(job)


def _check_rendered_values(job: JobSpec) -> None:
    """Allow-lists for every value that ends up in an sbatch script or a shell command."""
    slurm = job.slurm
    quoting.check(job.job_name, "name", "name" if job.name else "name (from the file name)")
    for key in ("partition", "account"):
        if getattr(slurm, key) is not None:
            quoting.check(getattr(slurm, key), "partition", f"slurm.{key}")
    quoting.check(slurm.time, "time", "slurm.time")
    _check_type(slurm.setup, (str,), "slurm.setup", job.path)
    for key in ("ray_port", "join_timeout_s"):
        _check_type(getattr(slurm, key), (int,), f"slurm.{key}", job.path)
    if slurm.ray_port is not None and not 1024 <= slurm.ray_port <= 65535:
        raise quoting.UnsafeValueError(f"`slurm.ray_port` is {slurm.ray_port}; use 1024-65535 "
                                       "or leave it out (a free port is chosen on the head)")
    if slurm.join_timeout_s is not None and slurm.join_timeout_s < 1:
        raise quoting.UnsafeValueError("`slurm.join_timeout_s` must be >= 1 second")
    job.runtime_env.env_vars = quoting.check_env(job.runtime_env.env_vars,
                                                 "runtime_env.env_vars")
    if "RAY_AUTH_MODE" in job.runtime_env.env_vars:
        quoting.check_auth_mode(job.runtime_env.env_vars["RAY_AUTH_MODE"],
                                "runtime_env.env_vars.RAY_AUTH_MODE")
    for key in job.run.overrides:
        quoting.check(key, "override_key", f"run.overrides.{key}")


def _check_storage(job: JobSpec) -> None:
    """On several nodes the results must go where every node (and a restarted trial) sees them."""
    path, nodes = job.storage_path, job.resources.nodes
    if path is not None and is_uri(path):
        check_uri(path)
        if job.run.command != "tune":
            raise SearchSpecError(
                f"storage_path {path!r}: a URI is storage for `tune` (Ray Tune writes it); "
                f"`{job.run.command}` writes its results as files: give a path on the "
                "cluster's shared filesystem"
            )
    if nodes > 1 and path is None:
        raise SearchSpecError(
            f"a job on {nodes} nodes needs `storage_path` on shared storage (a path every "
            "node mounts, or s3://bucket/prefix, gs://...): without it results go to each "
            "node's own disk"
        )
    if path is not None:
        check_multi_node_path(path, nodes)


def _overrides_from_list(items: list[Any], src: Path) -> dict[str, Any]:
    # the words stay as written: the job's command line passes them on unchanged
    try:
        return dict(split_override(item, JobFileError) for item in items)
    except JobFileError as err:
        raise JobFileError(f"{src}: `run.overrides` entries are `key=value`: {err}") from None


def _check_paths(job: JobSpec) -> None:
    """Check the files the job needs exist locally, before anything is contacted."""
    src = job.path
    base = job.working_dir
    if base is None:
        if job.runtime_env.image:
            return  # the config lives in the image; nothing local to check
        base = Path.cwd()
    elif not base.is_dir():
        raise JobFileError(
            f"{src}: `runtime_env.working_dir` {job.runtime_env.working_dir!r} resolves to "
            f"{base}, which is not a directory (it is relative to the job file)"
        )
    for key in ("config", "search"):
        rel = getattr(job.run, key)
        if rel is None:
            continue
        if not (base / rel).is_file():
            raise JobFileError(
                f"{src}: `run.{key}` {rel!r} does not exist under {base} "
                "(run paths are relative to runtime_env.working_dir)"
            )


def load_job(path: str | Path, check_paths: bool = True) -> JobSpec:
    """Read and validate a job file.

    Args:
        path: the job YAML.
        check_paths: also check that the working dir and the config files exist.

    Returns:
        The validated :class:`JobSpec`.

    Raises:
        JobFileError: the file is missing, not YAML, or invalid; the message says which key.

    Example:
        >>> job = load_job("jobs/local_train.yaml")  # doctest: +SKIP
        >>> job.entrypoint()  # doctest: +SKIP
        'python -m kanplatform train configs/experiment/toy.yaml output_dir=...'
    """
    path = Path(path)
    data = read_yaml(path, JobFileError, "job file")
    return parse_job(data, path, check_paths=check_paths)


def runtime_env(job: JobSpec) -> dict[str, Any]:
    """The Ray ``runtime_env`` dict for this job (working_dir uploaded, env vars set)."""
    env = job.runtime_env
    out: dict[str, Any] = {}
    if job.working_dir is not None:
        out["working_dir"] = str(job.working_dir)
        out["excludes"] = [*DEFAULT_EXCLUDES, *env.excludes]
    if env.pip:
        out["pip"] = list(env.pip)
    if env.image:
        out["image_uri"] = env.image
    # W&B never blocks on the network unless the job file asks for it. A driver that calls
    # ray.init(runtime_env={"env_vars": ...}) inside a job (tune and scale forward WANDB_*
    # to their trials) conflicts with the job's own env_vars unless Ray may merge them.
    out["env_vars"] = {"WANDB_MODE": "offline", **env.env_vars,
                       "RAY_OVERRIDE_JOB_RUNTIME_ENV": "1"}
    return out



def is_job_file(path: Path, data: Any) -> bool:
    """Detector for ``kanplatform validate``: a mapping whose ``run`` names a command."""
    return isinstance(data, Mapping) and isinstance(data.get("run"), Mapping) and (
        "command" in data["run"])


def check_job_file(path: Path, parse_argv: Any = None) -> str:
    """Checker for ``kanplatform validate``: load the job, then the deep check.

    See :func:`kanplatform.launch.check.check_runnable` (``parse_argv`` too).
    """
    from kanplatform.launch.check import check_runnable

    return check_runnable(load_job(path), parse_argv)
