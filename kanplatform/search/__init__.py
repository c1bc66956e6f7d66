"""Ray Tune searches over run configs: spaces from YAML, grid-refinement, clusters, resume.

A trial is exactly a ``kanplatform train`` run: its sampled keys go through
``apply_overrides`` and it calls the same ``fit``. Ray is imported only when a search runs.

Example:
    >>> from kanplatform.config import load_config
    >>> from kanplatform.search import load_search, run_search
    >>> cfg = load_config("configs/experiment/quick.yaml")              # doctest: +SKIP
    >>> result = run_search(cfg, load_search("configs/search/asha_kan.yaml"))  # doctest: +SKIP
    >>> result.best["val/rmse"], result.best_config                     # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from kanplatform.search.spec import (
    ResourceSpec,
    SchedulerSpec,
    SearchSpec,
    SearchSpecError,
    load_search,
    parse_search,
)


def run_search(*args: Any, **kwargs: Any) -> Any:
    """Run a search; see :func:`kanplatform.search.run.run_search` (imported lazily)."""
    from kanplatform.search.run import run_search as _run_search

    return _run_search(*args, **kwargs)


def run_configs(base_cfg: Any, configs: Any, **kwargs: Any) -> Any:
    """Run one trial per override dict; see :func:`kanplatform.search.run.run_configs`."""
    from kanplatform.search.run import run_configs as _run_configs

    return _run_configs(base_cfg, configs, **kwargs)


__all__ = [
    "ResourceSpec",
    "SchedulerSpec",
    "SearchSpec",
    "SearchSpecError",
    "load_search",
    "parse_search",
    "run_configs",
    "run_search",
]
