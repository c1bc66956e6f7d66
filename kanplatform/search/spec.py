"""The search YAML: schema, parsing into Ray Tune domains, and checks that run before Ray.

A search file says *how* to search; the run config says *what* a trial trains::

    name: asha_kan
    metric: val/rmse          # one of the metric names the training module logs
    mode: min
    num_samples: 8            # samples drawn per grid_search combination
    space:                    # any config key, dotted or nested
      model.grid_size: {choice: [3, 5, 10]}
      optim.lr: {loguniform: [1.0e-3, 1.0]}
      model.width: {grid_search: [[2, 1, 1], [2, 2, 1]]}
    scheduler: {kind: asha, grace_period: 1, reduction_factor: 2}
    search_alg: random        # random | grid | optuna (TPE; choice/uniform/... but no grid_search)
    max_concurrent_trials: 2
    resources: {cpu: 1, gpu: 0, workers: 1}
    max_failures: 2           # a crashed trial restarts from its last checkpoint

Nothing here imports Ray: a bad file fails in milliseconds with the key named.
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kanplatform._util.checks import check_bool, check_int, check_name, check_number, check_str
from kanplatform._util.dotted import flatten
from kanplatform._util.strict import check_keys, field_names, from_mapping
from kanplatform._util.yamlfile import read_yaml

DOMAINS = ("grid_search", "choice", "uniform", "loguniform", "randint")
SCHEDULERS = ("fifo", "asha")
SEARCH_ALGS = ("random", "grid", "optuna")
REPORT_ON = ("stage", "validation")

# What `kanplatform.train` logs (CONTRIBUTING.md, "Metric names"): what a search may optimise.
LOGGED_METRICS = (
    "train/loss",
    "train/rmse",
    "val/rmse",
    "test/rmse",
    # classification runs (task: classification)
    "train/accuracy",
    "val/loss",
    "val/accuracy",
    "val/f1",
    "test/loss",
    "test/accuracy",
    "test/f1",
    "grid/size",
    "grid/stage",
    "model/params",
    "model/flops",
)


class SearchSpecError(ValueError):
    """A search file or search request that cannot run; the message names the cause and fix."""


@dataclass
class SchedulerSpec:
    """Trial scheduler: ``fifo`` runs every trial to the end; ``asha`` stops poor ones early.

    ``time_attr`` is the rung unit: ``grid/stage`` (grid stages completed, the default when
    trials report per stage) or ``training_iteration`` (reports so far).
    """

    kind: str = "fifo"
    time_attr: str | None = None
    max_t: int | None = None
    grace_period: int = 1
    reduction_factor: float = 2.0
    brackets: int = 1


@dataclass
class ResourceSpec:
    """Resources of one trial (of each worker when ``workers > 1``).

    ``gpu`` may be fractional below 1 (``0.25`` = four trials share one GPU). With
    ``workers > 1`` a trial is data-parallel training on ``workers`` Ray Train workers with
    ``cpu``/``gpu`` each (one whole GPU per worker on NCCL), coordinated by an actor that
    holds no CPU; ``use_gpu`` defaults to ``gpu > 0``. ``placement_timeout_s``: how long a
    trial may wait for resources that exist but are busy (or for an autoscaler to add
    nodes) before the search fails with the reason, instead of waiting forever. See
    :mod:`kanplatform.search.resources` for how a trial is counted against a cluster.
    """

    cpu: float = 1.0
    gpu: float = 0.0
    workers: int = 1
    use_gpu: bool | None = None
    placement_timeout_s: float = 600.0

    @property
    def gpu_training(self) -> bool:
        return bool(self.use_gpu) if self.use_gpu is not None else self.gpu > 0

    def per_trial(self) -> dict[str, float]:
        """Total CPUs and GPUs one trial holds while it runs (its coordinator holds none)."""
        return {"CPU": self.cpu * self.workers, "GPU": self.gpu * self.workers}


@dataclass
class SearchSpec:
    """A parsed search file. Build it with :func:`load_search` or :func:`parse_search`."""

    space: dict[str, Any]
    metric: str = "val/rmse"
    mode: str = "min"
    name: str = "search"
    num_samples: int = 1
    scheduler: SchedulerSpec = field(default_factory=SchedulerSpec)
    search_alg: str = "random"
    max_concurrent_trials: int | None = None
    resources: ResourceSpec = field(default_factory=ResourceSpec)
    max_failures: int = 2
    report_on: str = "stage"
    keep_checkpoints: int = 2
    reuse_actors: bool = True
    # listed Adam/AdamW trials differing only in seed or learning rate train as one stack
    # (off by default for a search: a stack keeps no per-run checkpoint; studies turn it on)
    stack_runs: bool = False
    storage_path: str | None = None
    seed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (for logs and the experiment directory)."""
        return dataclasses.asdict(self)

    def time_attr(self) -> str:
        """The attribute ASHA counts rungs in."""
        if self.scheduler.time_attr:
            return self.scheduler.time_attr
        return "grid/stage" if self.report_on == "stage" else "training_iteration"


def _is_domain(value: Any) -> bool:
    return isinstance(value, Mapping) and len(value) == 1 and next(iter(value)) in DOMAINS


def _check_domain(key: str, value: Any) -> None:
    if not _is_domain(value):
        return  # a constant
    kind, arg = next(iter(value.items()))
    if kind in ("grid_search", "choice"):
        if not isinstance(arg, list) or not arg:
            raise SearchSpecError(f"space.{key}: {kind} needs a non-empty list, got {arg!r}")
        return
    if not (isinstance(arg, list) and len(arg) == 2):
        raise SearchSpecError(f"space.{key}: {kind} needs [low, high], got {arg!r}")
    low, high = arg
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
        raise SearchSpecError(f"space.{key}: {kind} bounds must be numbers, got {arg!r}")
    if not low < high:
        raise SearchSpecError(f"space.{key}: {kind} needs low < high, got {arg!r}")
    if kind == "loguniform" and low <= 0:
        raise SearchSpecError(f"space.{key}: loguniform needs low > 0, got {arg!r}")
    if kind == "randint" and not all(isinstance(v, int) for v in (low, high)):
        raise SearchSpecError(f"space.{key}: randint bounds must be integers, got {arg!r}")


def parse_search(data: Mapping[str, Any]) -> SearchSpec:
    """Parse and check a search mapping (the YAML's content).

    Args:
        data: the mapping, as loaded from YAML.

    Returns:
        The :class:`SearchSpec`, with ``space`` flattened to dotted keys.

    Raises:
        SearchSpecError: unknown keys, malformed domains, bad scheduler/algorithm names.

    Example:
        >>> spec = parse_search({"space": {"model": {"grid_size": {"choice": [3, 5]}}}})
        >>> list(spec.space)
        ['model.grid_size']
    """
    if not isinstance(data, Mapping):
        raise SearchSpecError(f"a search file holds a mapping, got {type(data).__name__}")
    data = dict(data)
    if not isinstance(data.get("space"), Mapping) or not data["space"]:
        check_keys(data, field_names(SearchSpec), "", SearchSpecError)
        raise SearchSpecError("a search needs a non-empty `space:` mapping of config keys")
    data["space"] = flatten(data["space"], keep=_is_domain)
    data["scheduler"] = from_mapping(SchedulerSpec, data.get("scheduler"), "scheduler",
                                     SearchSpecError)
    data["resources"] = from_mapping(ResourceSpec, data.get("resources"), "resources",
                                     SearchSpecError)
    spec = from_mapping(SearchSpec, data, "", SearchSpecError)
    _check_spec(spec)
    return spec


def _check_types(spec: SearchSpec) -> None:
    """Every scalar field's type and range (YAML values reach Ray unchecked otherwise)."""
    E = SearchSpecError
    check_str(spec.metric, "metric", E)
    check_name(spec.name, "name", E)
    check_int(spec.num_samples, "num_samples", E, minimum=1)
    check_int(spec.max_concurrent_trials, "max_concurrent_trials", E, minimum=1, optional=True,
              hint=" (omit it for no cap)")
    check_int(spec.max_failures, "max_failures", E, minimum=0,
              hint=" (restarts of a crashed trial from its last checkpoint; 0 = none)")
    check_int(spec.keep_checkpoints, "keep_checkpoints", E, minimum=1)
    check_bool(spec.reuse_actors, "reuse_actors", E)
    check_bool(spec.stack_runs, "stack_runs", E)
    check_str(spec.storage_path, "storage_path", E, optional=True)
    check_int(spec.seed, "seed", E, optional=True)
    s = spec.scheduler
    check_str(s.kind, "scheduler.kind", E, choices=SCHEDULERS)
    check_str(s.time_attr, "scheduler.time_attr", E, optional=True)
    check_int(s.max_t, "scheduler.max_t", E, minimum=1, optional=True)
    check_int(s.grace_period, "scheduler.grace_period", E, minimum=1,
              hint=" (rungs, in scheduler.time_attr units)")
    check_number(s.reduction_factor, "scheduler.reduction_factor", E, above=1)
    check_int(s.brackets, "scheduler.brackets", E, minimum=1)
    if s.max_t is not None and s.grace_period > s.max_t:
        raise E(f"scheduler.grace_period: {s.grace_period} is past scheduler.max_t = {s.max_t}")
    r = spec.resources
    check_number(r.cpu, "resources.cpu", E, minimum=0)
    check_number(r.gpu, "resources.gpu", E, minimum=0)
    check_int(r.workers, "resources.workers", E, minimum=1)
    check_bool(r.use_gpu, "resources.use_gpu", E, optional=True)


def _check_spec(spec: SearchSpec) -> None:
    _check_types(spec)
    for key, value in spec.space.items():
        _check_domain(key, value)
    if spec.mode not in ("min", "max"):
        raise SearchSpecError(f"mode: must be 'min' or 'max', got {spec.mode!r}")
    if spec.scheduler.kind not in SCHEDULERS:
        raise SearchSpecError(
            f"scheduler.kind: {spec.scheduler.kind!r} is not one of {list(SCHEDULERS)}"
        )
    if spec.search_alg not in SEARCH_ALGS:
        raise SearchSpecError(f"search_alg: {spec.search_alg!r} is not one of {SEARCH_ALGS}")
    if spec.report_on not in REPORT_ON:
        raise SearchSpecError(f"report_on: {spec.report_on!r} is not one of {REPORT_ON}")
    if not isinstance(spec.num_samples, int) or spec.num_samples < 1:
        raise SearchSpecError(f"num_samples: must be a positive integer, got {spec.num_samples}")
    kinds = {next(iter(v)) for v in spec.space.values() if _is_domain(v)}
    if spec.search_alg == "grid" and kinds - {"grid_search", "choice"}:
        raise SearchSpecError(
            "search_alg: grid needs every space entry to be grid_search or choice, "
            f"got {sorted(kinds - {'grid_search', 'choice'})}"
        )
    if spec.search_alg == "optuna":
        _check_optuna_space(spec)
    _check_resource_fields(spec.resources)
    if spec.max_concurrent_trials is not None and spec.max_concurrent_trials < 1:
        raise SearchSpecError("max_concurrent_trials: must be >= 1 (or omitted)")


def _check_resource_fields(res: ResourceSpec) -> None:
    from kanplatform.search.resources import check_trial_resources

    for key in ("cpu", "gpu", "placement_timeout_s"):
        value = getattr(res, key)
        if isinstance(value, bool) or not isinstance(value, int | float) or \
                not math.isfinite(value):
            raise SearchSpecError(f"resources.{key}: must be a number, got {value!r}")
    if isinstance(res.workers, bool) or not isinstance(res.workers, int):
        raise SearchSpecError(f"resources.workers: must be an integer, got {res.workers!r}")
    if res.use_gpu is not None and not isinstance(res.use_gpu, bool):
        raise SearchSpecError(f"resources.use_gpu: must be true, false or null, got "
                              f"{res.use_gpu!r}")
    if res.cpu < 0 or res.gpu < 0 or res.workers < 1:
        raise SearchSpecError(f"resources: need cpu >= 0, gpu >= 0, workers >= 1, got "
                              f"cpu={res.cpu}, gpu={res.gpu}, workers={res.workers}")
    if res.placement_timeout_s <= 0:
        raise SearchSpecError("resources.placement_timeout_s: must be > 0 seconds, got "
                              f"{res.placement_timeout_s}")
    check_trial_resources(res)


def _check_optuna_space(spec: SearchSpec) -> None:
    """Optuna samples every key itself: no grid to expand, and at least one key to sample.

    Ray's OptunaSearch would otherwise fail only once Ray is up (``Grid search parameters
    cannot be automatically converted``; ``no search space has been defined``).
    """
    grid = [f"space.{k}" for k, v in spec.space.items()
            if _is_domain(v) and next(iter(v)) == "grid_search"]
    if grid:
        raise SearchSpecError(
            f"search_alg: optuna cannot sample grid_search ({', '.join(grid)}); use choice, "
            "or search_alg: random to expand the grid"
        )
    if not any(_is_domain(v) for v in spec.space.values()):
        raise SearchSpecError(
            "search_alg: optuna needs at least one sampled key in space (choice, uniform, "
            "loguniform or randint); the space holds only constants"
        )


def load_search(path: str | os.PathLike[str]) -> SearchSpec:
    """Load a search YAML file (see the module docstring for the schema).

    Raises:
        SearchSpecError: the file is missing or malformed; the message names the file.
    """
    path = Path(path)
    data = read_yaml(path, SearchSpecError, "search file")
    try:
        return parse_search(data or {})
    except SearchSpecError as err:
        raise SearchSpecError(f"{path}: {err}") from None


def representative(value: Any) -> Any:
    """One value a domain can take (for checking the key against the config schema)."""
    if not _is_domain(value):
        return value
    kind, arg = next(iter(value.items()))
    if kind in ("grid_search", "choice"):
        return arg[0]
    if kind == "randint":
        return int(arg[0])
    return float(arg[0])


def domain_values(value: Any) -> list[Any]:
    """Values worth checking against the schema: every listed one, or both bounds."""
    if not _is_domain(value):
        return [value]
    kind, arg = next(iter(value.items()))
    if kind in ("grid_search", "choice"):
        return list(arg)
    if kind == "randint":
        return [int(arg[0]), int(arg[1]) - 1]
    return [float(arg[0]), float(arg[1])]


def to_tune_space(spec: SearchSpec) -> dict[str, Any]:
    """The Tune ``param_space``: one flat entry per dotted key (imports Ray)."""
    from ray import tune

    space: dict[str, Any] = {}
    for key, value in spec.space.items():
        if not _is_domain(value):
            space[key] = value
            continue
        kind, arg = next(iter(value.items()))
        if kind == "grid_search" or (kind == "choice" and spec.search_alg == "grid"):
            space[key] = tune.grid_search(list(arg))
        elif kind == "choice":
            space[key] = tune.choice(list(arg))
        elif kind == "uniform":
            space[key] = tune.uniform(*arg)
        elif kind == "loguniform":
            space[key] = tune.loguniform(*arg)
        else:  # randint: [low, high) as in Tune and numpy
            space[key] = tune.randint(*arg)
    return space


def check_against_config(spec: SearchSpec, base_cfg: Any) -> None:
    """Fail fast, before Ray, when the space or metric cannot work with this config.

    Every space key is applied to ``base_cfg`` with the same ``apply_overrides`` trials use,
    with each listed value (or both bounds), so unknown keys and wrong types surface now.

    Raises:
        SearchSpecError: an unknown/ill-typed key, or a metric the module does not log.
    """
    from kanplatform.config import ConfigError, apply_overrides
    from kanplatform.config.validate import HIGHER_IS_BETTER, task_metrics

    known = LOGGED_METRICS
    if spec.metric not in known:
        raise SearchSpecError(
            f"metric {spec.metric!r} is not logged by the training module; "
            f"choose one of {list(known)}"
        )
    task = base_cfg.get("task", "regression") if hasattr(base_cfg, "get") else "regression"
    per_task = task_metrics(task)
    other = [m for m in LOGGED_METRICS if "/" in m and m.split("/")[0] in
             ("train", "val", "test") and m not in per_task]
    if spec.metric in other:
        raise SearchSpecError(f"metric {spec.metric!r} is not logged by a {task} run; choose "
                              f"one of {list(per_task)}")
    if spec.metric.split("/")[-1] in HIGHER_IS_BETTER and spec.mode != "max":
        raise SearchSpecError(f"metric {spec.metric!r} grows as models improve: use mode: max")
    for key, value in spec.space.items():
        for sample in domain_values(value):
            try:
                apply_overrides(base_cfg, {key: sample})
            except ConfigError as err:
                raise SearchSpecError(f"space.{key} = {sample!r}: {err}") from None
            except (KeyError, AttributeError, TypeError, ValueError) as err:
                raise SearchSpecError(f"space.{key} = {sample!r}: {err}") from None


def parse_address(address: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (optionally ``ray://HOST:PORT``) into its parts."""
    raw = address.removeprefix("ray://")
    host, sep, port = raw.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise SearchSpecError(
            f"--address {address!r}: expected HOST:PORT of the Ray head (e.g. 127.0.0.1:6379)"
        )
    return host, int(port)


def check_address(address: str, timeout_s: float = 3.0) -> None:
    """Fail fast when nothing listens at the cluster address (before ``ray.init`` hangs).

    Raises:
        SearchSpecError: the address is malformed or unreachable.
    """
    if address == "auto":
        return
    host, port = parse_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as err:
        raise SearchSpecError(
            f"cannot reach a Ray cluster at {address} ({err.strerror or err}); start one with "
            f"`ray start --head --port {port}` or fix --address"
        ) from None


def check_resources(spec: SearchSpec, cluster: Mapping[str, float],
                    nodes: list[Mapping[str, float]] | None = None) -> None:
    """Fail fast when one trial can never be placed on the cluster (or on its nodes).

    Counts every actor a trial starts, as Ray places them (see
    :func:`kanplatform.search.resources.check_placement`).

    Args:
        spec: the search.
        cluster: total resources, e.g. ``{"CPU": 2, "GPU": 0}`` (``ray.cluster_resources()``).
        nodes: per-node resources; each worker (or a single-worker trial) must fit on one.

    Raises:
        SearchSpecError: naming the resource, what the trial asks for, what exists, the fix.
    """
    from kanplatform.search.resources import check_placement

    check_placement(spec.resources, cluster, nodes)


def default_concurrency(spec: SearchSpec, cluster: Mapping[str, float],
                        nodes: list[Mapping[str, float]] | None = None) -> int | None:
    """Concurrency cap for multi-worker trials, whose workers Tune does not count.

    Without it several trials' coordinators start (they hold no CPU) and their worker groups
    each grab part of the CPUs and wait for the rest forever.
    """
    if spec.max_concurrent_trials is not None:
        return spec.max_concurrent_trials
    if spec.resources.workers <= 1:
        return None
    from kanplatform.search.resources import concurrent_trials

    return concurrent_trials(spec.resources, cluster, nodes)


def is_search_file(path: str | os.PathLike[str], data: Any) -> bool:
    """True for a search file: a mapping with a ``space`` (``kanplatform validate`` hook)."""
    return isinstance(data, Mapping) and "space" in data


def check_search_file(path: str | os.PathLike[str]) -> str:
    """Validate a search file and its keys against the run-config schema (no Ray).

    Returns:
        A one-line note for ``kanplatform validate``.

    Raises:
        SearchSpecError: what :func:`load_search` and :func:`check_against_config` raise.
    """
    from kanplatform.config import load_config

    spec = load_search(path)
    check_against_config(spec, load_config([], validate=False))
    return (f"search: {len(spec.space)} key(s), {spec.metric} {spec.mode}, "
            f"{spec.scheduler.kind}, {spec.search_alg}")
