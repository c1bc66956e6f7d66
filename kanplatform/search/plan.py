"""What one call of ``run_search`` runs: the trial list, drawn and recorded, or read back.

A random or grid search draws every trial before Ray starts (:func:`sample_configs`) and
records the list in ``search.json`` with the search and the base config; trial ``i`` runs in
``runs/trial-<i>``. A resume reads that record and the run directories (not Tune's state,
which a killed driver may have left missing, partial or older than the trial directories)
and runs exactly the trials without an ended run. Nothing here imports Ray.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kanplatform.search.records import unfinished
from kanplatform.search.sampling import sample_configs, trial_key
from kanplatform.search.spec import SearchSpec, SearchSpecError, _is_domain
from kanplatform.search.storage import ExperimentStore, copy_file, join

SEARCH_JSON = "search.json"


def holds_search(store: ExperimentStore) -> bool:
    """Whether a search was started there (its record, or Tune's state)."""
    return (store.local / SEARCH_JSON).is_file() or store.has("tuner.pkl") or \
        (store.uri is not None and store.has(SEARCH_JSON))


@dataclass
class Plan:
    """What one call of :func:`run_search` runs: the listed trials (``configs``, each with its
    run directory), the indices still to run, the recorded base config; or, for Optuna,
    Tune's own sampling (``configs`` None)."""

    base: dict[str, Any]
    configs: list[dict[str, Any]] | None
    run_dirs: list[str | None] | None
    todo: list[int]
    tune_name: str
    tune_restore: bool = False
    record: dict[str, Any] | None = None  # search.json, written once Ray is up


def make_plan(spec: SearchSpec, base_cfg: Any, store: ExperimentStore,
              configs: list[dict[str, Any]] | None, resume: bool,
              run_dirs: Sequence[str | None] | None = None) -> Plan:
    """Draw (or, resuming, read back) the trial list; raise SearchSpecError saying why not."""
    from kanplatform.config import to_dict

    if resume:
        return _resume_plan(spec, store)
    base = to_dict(base_cfg)
    seed = None
    if configs is not None and spec.space:  # constant keys apply to every listed config
        domains = [k for k, v in spec.space.items() if _is_domain(v)]
        if domains:
            raise SearchSpecError(f"space.{domains[0]}: a fixed list of configs takes "
                                  "constant keys in space, not domains to sample")
        configs = [{**spec.space, **c} for c in configs]
    if configs is None and spec.search_alg != "optuna":
        seed = spec.seed if spec.seed is not None else secrets.randbits(31)
        configs = sample_configs(spec, seed)
        if not configs:
            raise SearchSpecError("the search draws no trials (num_samples: 0?)")
    run_dirs = list(run_dirs) if run_dirs is not None else (
        [None] * len(configs) if configs is not None else None)
    record = {"search": spec.to_dict(), "seed": seed, "configs": configs,
              "run_dirs": run_dirs, "base_config": base}
    todo = list(range(len(configs))) if configs is not None else []
    return Plan(base, configs, run_dirs, todo, store.name, record=record)


_SAME_ON_RESUME = ("space", "metric", "mode", "num_samples", "search_alg", "seed")


def _resume_plan(spec: SearchSpec, store: ExperimentStore) -> Plan:
    experiment_dir = store.local
    if store.uri is not None and not (experiment_dir / SEARCH_JSON).is_file():
        experiment_dir.mkdir(parents=True, exist_ok=True)  # another machine's driver ran it
        copy_file(join(store.uri, SEARCH_JSON), experiment_dir / SEARCH_JSON)
    try:
        record = json.loads((experiment_dir / SEARCH_JSON).read_text())
    except (OSError, ValueError) as err:
        raise SearchSpecError(f"--resume: {experiment_dir / SEARCH_JSON} cannot be read "
                              f"({err}); it records which trials the search sampled") from None
    recorded = record.get("search") or {}
    for key in _SAME_ON_RESUME:
        if key in recorded and json.dumps(recorded[key], default=str) != \
                json.dumps(getattr(spec, key), default=str):
            raise SearchSpecError(
                f"--resume: {key} differs from the search this experiment ran "
                f"({recorded[key]!r} there, {getattr(spec, key)!r} now); resume it with the "
                "same search file and options")
    base, configs = record.get("base_config"), record.get("configs")
    if configs is None:  # Optuna: Tune's state is the only record of what it sampled
        if store.uri is None and not list(experiment_dir.glob("experiment_state-*.json")):
            raise SearchSpecError(
                f"--resume: {experiment_dir} has no Tune experiment state (the driver died "
                "before Tune first saved it), and an Optuna search cannot be rebuilt "
                "without it; start the search again under a new name")
        return Plan(base, None, None, [], store.name, tune_restore=True)
    run_dirs = record.get("run_dirs") or [None] * len(configs)
    n = 1 + sum(1 for _ in experiment_dir.glob("resume-*"))
    (experiment_dir / f"resume-{n}").mkdir(parents=True, exist_ok=True)  # Tune's, or a mark
    return Plan(base, configs, run_dirs, unfinished(run_dirs_of(store, run_dirs)),
                f"resume-{n}")


def run_dir_of(store: ExperimentStore, key: str) -> Path | str:
    """Where trial ``key``'s run directory is (published) by default."""
    return join(store.uri, "runs", key) if store.uri else store.local / "runs" / key


def run_dirs_of(store: ExperimentStore, run_dirs: Sequence[str | None]) -> list[Path | str]:
    """The run directory of each listed trial (the given one, else the default)."""
    return [Path(d) if d else run_dir_of(store, trial_key(i)) for i, d in enumerate(run_dirs)]
