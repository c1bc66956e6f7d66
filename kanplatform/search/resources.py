"""What one trial asks Ray for, actor by actor, and whether a cluster can ever place it.

Ray places a trial's actors one at a time, each on a single node:

- a single-process trial (``workers: 1``) is one actor holding ``cpu`` and ``gpu``;
- a data-parallel trial (``workers: N > 1``) is a *coordinator* (the Tune function, which only
  waits for Ray Train: no CPU, no GPU, :data:`COORDINATOR_MEMORY` bytes of memory) plus ``N``
  Ray Train workers holding ``cpu``/``gpu`` each. Ray Train packs the workers into as few
  nodes as it can, but a worker never spans nodes.

So a trial fits a cluster when every worker fits on some node and all of them fit together
(counted node by node, the way Ray's placement group would), and the totals stay within what
the cluster has. GPUs may be fractional (``gpu: 0.25`` = four trials share one GPU); a
fraction is carved out of one physical GPU, so a node with 2 GPUs holds 2 workers of
``gpu: 0.6``, not 3. Nothing here imports Ray: the arithmetic is tested on plain dicts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kanplatform.search.spec import ResourceSpec, SearchSpecError

# The coordinator of a data-parallel trial waits on Ray Train; it holds memory (it imports
# torch and Lightning) but no CPU, so a 2-CPU machine runs two 1-CPU workers. Tune refuses an
# actor that asks for nothing at all.
COORDINATOR_MEMORY = 256 * 2**20
# Resource amounts Ray rounds to (its fixed-point unit is 1e-4).
_EPS = 1e-9
FIX = "use fewer workers (resources.workers) or less per worker, a larger local Ray " \
      "(--num-cpus), or a bigger cluster"


@dataclass(frozen=True)
class TrialPlacement:
    """The actors one trial starts and what each holds.

    Attributes:
        coordinator: the Tune function's actor of a data-parallel trial ({} otherwise).
        worker: what each training process holds (the trial itself when ``workers == 1``).
        workers: training processes of the trial.
    """

    coordinator: dict[str, float]
    worker: dict[str, float]
    workers: int

    @classmethod
    def of(cls, res: ResourceSpec | Mapping[str, Any]) -> TrialPlacement:
        """The placement of a trial with ``resources: res`` (a spec or its dict form)."""
        if isinstance(res, Mapping):
            known = ResourceSpec.__dataclass_fields__
            res = ResourceSpec(**{k: v for k, v in res.items() if k in known})
        worker = {"CPU": float(res.cpu), "GPU": float(res.gpu)}
        worker = {k: v for k, v in worker.items() if v > 0}
        if res.workers > 1:
            return cls({"memory": float(COORDINATOR_MEMORY)}, worker, int(res.workers))
        return cls({}, worker, 1)

    def bundles(self) -> list[dict[str, float]]:
        """Every actor's resources: the coordinator (if any) first, then the workers."""
        return ([dict(self.coordinator)] if self.coordinator else []) + \
            [dict(self.worker) for _ in range(self.workers)]

    def total(self) -> dict[str, float]:
        """CPU and GPU the whole trial holds while it runs."""
        out = {"CPU": 0.0, "GPU": 0.0}
        for bundle in self.bundles():
            for key in out:
                out[key] += bundle.get(key, 0.0)
        return out

    def tune_resources(self) -> dict[str, float]:
        """What ``tune.with_resources`` gets: the coordinator, or the single trial process."""
        held = self.coordinator if self.workers > 1 else self.worker
        return {key.lower(): value for key, value in held.items()}

    def describe(self) -> str:
        """``2 workers x 1 CPU (+ a coordinator holding no CPU)``, for messages."""
        each = " + ".join(f"{v:g} {k}" for k, v in self.worker.items()) or "nothing"
        if self.workers == 1:
            return each
        return f"{self.workers} workers x {each}, plus a coordinator holding no CPU"


def check_trial_resources(res: ResourceSpec) -> None:
    """Refuse resources Ray cannot turn into actors (before any cluster is looked at).

    Raises:
        SearchSpecError: a trial asking for nothing, a fraction above one GPU, or a
            data-parallel GPU trial whose workers would share a GPU (NCCL needs one each).
    """
    if res.cpu <= 0 and res.gpu <= 0:
        raise SearchSpecError("resources: a trial needs cpu > 0 or gpu > 0 (Ray cannot place "
                              "a process that holds nothing)")
    if res.gpu > 1 and res.gpu != int(res.gpu):
        raise SearchSpecError(f"resources.gpu: fractions only below 1 (a fraction is a share "
                              f"of one GPU), got {res.gpu:g}")
    if res.workers > 1 and res.gpu_training and res.gpu != 1:
        raise SearchSpecError(
            f"resources.gpu: {res.gpu:g} per worker with {res.workers} workers; data-parallel "
            "training on NCCL needs exactly one GPU per worker (gpu: 1); fractional GPUs are "
            "for single-process trials (workers: 1)"
        )


def fits_per_node(node: Mapping[str, float], bundle: Mapping[str, float]) -> int:
    """How many copies of ``bundle`` one node can hold at once.

    GPU fractions come out of single GPUs: ``floor(1 / f)`` shares per whole GPU. A node
    that does not report ``memory`` (a local Ray not started yet) is not limited by it.
    """
    counts = []
    for key, amount in bundle.items():
        if amount <= 0 or (key == "memory" and key not in node):
            continue
        have = float(node.get(key, 0.0))
        if key == "GPU" and amount < 1:
            counts.append(math.floor(have + _EPS) * math.floor(1 / amount + _EPS))
        else:
            counts.append(math.floor(have / amount + _EPS))
    return min(counts) if counts else 1 << 30


def _minus(node: Mapping[str, float], bundle: Mapping[str, float]) -> dict[str, float]:
    out = {k: float(v) for k, v in node.items()}
    for key, amount in bundle.items():
        out[key] = out.get(key, 0.0) - amount
    return out


def worker_slots(placement: TrialPlacement, nodes: Sequence[Mapping[str, float]]) -> int:
    """Workers of ``placement`` the nodes hold at once, with room left for one coordinator."""
    if not nodes:
        return 0
    slots = [fits_per_node(n, placement.worker) for n in nodes]
    if not placement.coordinator:
        return sum(slots)
    best = 0
    for i, node in enumerate(nodes):  # the coordinator goes on node i
        if fits_per_node(node, placement.coordinator) < 1:
            continue
        rest = fits_per_node(_minus(node, placement.coordinator), placement.worker)
        best = max(best, sum(slots) - slots[i] + rest)
    return best


def check_placement(res: ResourceSpec, cluster: Mapping[str, float],
                    nodes: Sequence[Mapping[str, float]] | None = None, *,
                    fix: str = FIX) -> None:
    """Fail when one trial can never be placed on this cluster (counted as Ray places it).

    Args:
        res: the trial's resources.
        cluster: total resources (``ray.cluster_resources()``), e.g. ``{"CPU": 2}``.
        nodes: each node's total resources; when given, workers are packed node by node.
        fix: the advice ending the message.

    Raises:
        SearchSpecError: one line with what the trial needs, what exists, and ``fix``.
    """
    check_trial_resources(res)
    placement = TrialPlacement.of(res)
    need = placement.total()
    for name, amount in need.items():
        have = float(cluster.get(name, 0.0))
        if amount > have + _EPS:
            raise SearchSpecError(
                f"resources: one trial needs {amount:g} {name} ({placement.describe()}) "
                f"but the cluster has {have:g}; {fix}"
            )
    if not nodes:
        return
    largest = {k: max(float(n.get(k, 0.0)) for n in nodes) for k in placement.worker}
    for name, amount in placement.worker.items():
        if fits_per_node({name: largest[name]}, {name: amount}) < 1:
            per = "per worker" if placement.workers > 1 else "per trial"
            raise SearchSpecError(
                f"resources.{name.lower()}: {amount:g} {per} but the largest node has "
                f"{largest[name]:g} {name}; {fix}"
            )
    slots = worker_slots(placement, nodes)
    if slots < placement.workers:
        if placement.workers > 1:
            sizes = ", ".join(_node_str(n) for n in nodes)
            each = " + ".join(f"{v:g} {k}" for k, v in placement.worker.items())
            raise SearchSpecError(
                f"resources: the {placement.workers} workers of one trial ({each} each) cannot "
                f"be placed on the cluster's nodes ({sizes}): at most {slots} fit at once; "
                f"{fix}"
            )
        # Only possible when a GPU fraction is carved from the nodes' whole GPUs.
        raise SearchSpecError(
            f"resources: no node can hold one trial of {placement.describe()} "
            f"(nodes: {', '.join(_node_str(n) for n in nodes)}); {fix}"
        )


def _node_str(node: Mapping[str, float]) -> str:
    parts = [f"{float(node.get(k, 0.0)):g} {k}" for k in ("CPU", "GPU") if node.get(k)]
    return " + ".join(parts) or "nothing"


def concurrent_trials(res: ResourceSpec, cluster: Mapping[str, float],
                      nodes: Sequence[Mapping[str, float]] | None = None) -> int:
    """How many whole trials the cluster holds at once (at least 1)."""
    placement = TrialPlacement.of(res)
    if nodes:
        # every trial of a data-parallel search has its own coordinator: one per node at
        # most would be pessimistic; it holds only memory, so count the workers
        per_node = [fits_per_node(n, placement.worker) for n in nodes]
        return max(1, sum(per_node) // placement.workers)
    need = placement.total()
    caps = [math.floor(float(cluster.get(k, 0.0)) / v + _EPS) for k, v in need.items() if v > 0]
    return max(1, min(caps)) if caps else 1


class PlacementWait:
    """Tune callback + stopper: ends a search whose trials wait for resources too long.

    A trial that fits the cluster can still wait: other jobs hold the CPUs, or an autoscaler
    has not added the nodes yet. Tune would wait forever; this ends the search once trials
    have been pending, with none of them running, for ``timeout_s`` seconds, and
    :attr:`message` says why. Build it with :func:`placement_wait` (imports Ray).
    """

    def __init__(self, timeout_s: float, placement: TrialPlacement) -> None:
        self.timeout_s = timeout_s
        self.placement = placement
        self.waiting_since: float | None = None
        self.message: str | None = None

    def observe(self, trials: Sequence[Any], now: float) -> None:
        """Look at the trials' statuses (``PENDING``/``RUNNING``/...) at time ``now``."""
        statuses = {str(getattr(t, "status", t)) for t in trials}
        if "RUNNING" in statuses or "PENDING" not in statuses:
            self.waiting_since = None
            return
        if self.waiting_since is None:
            self.waiting_since = now
        elif now - self.waiting_since >= self.timeout_s and self.message is None:
            self.message = (
                f"no trial could be placed for {self.timeout_s:g} s: one trial needs "
                f"{self.placement.describe()}, which the cluster has but other work holds "
                "(see `ray status`), or an autoscaler did not add the nodes in time; free "
                "them or raise resources.placement_timeout_s"
            )


def placement_wait(timeout_s: float, placement: TrialPlacement) -> tuple[Any, Any]:
    """``(callback, stopper)`` for ``tune.RunConfig`` sharing one :class:`PlacementWait`."""
    import time

    from ray import tune

    wait = PlacementWait(timeout_s, placement)

    class _Watch(tune.Callback):
        state = wait

        def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
            wait.observe(trials, time.monotonic())

    class _Stop(tune.stopper.Stopper):
        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            return False

        def stop_all(self) -> bool:
            return wait.message is not None

    return _Watch(), _Stop()
