"""Every trial of a random or grid search, drawn before Ray starts and recorded.

A search whose trials Tune drew on the fly cannot say, after its driver died, which trials
it had sampled: the list lived in Tune's experiment state, which may be missing, partial or
older than the trial directories. So :func:`sample_configs` draws the whole list up front
(``grid_search`` keys crossed, ``num_samples`` times over, the other domains drawn from
``spec.seed``), ``run_search`` writes it to ``search.json`` and runs trial ``i`` in
``runs/trial-<i>``. A resume then reads the list and the run directories, never Tune's state.
Optuna chooses each trial from the earlier results and is the exception.

Nothing here imports Ray.
"""

from __future__ import annotations

import copy
import itertools
import math
import random
from typing import Any

from kanplatform.search.spec import SearchSpec, _is_domain


def sample_configs(spec: SearchSpec, seed: int) -> list[dict[str, Any]]:
    """``spec.num_samples`` x (every ``grid_search`` combination) override dicts.

    ``choice`` is a grid under ``search_alg: grid``; ``randint`` draws from ``[low, high)``
    as in Tune. The same ``seed`` gives the same list.

    Example:
        >>> from kanplatform.search.spec import parse_search
        >>> spec = parse_search({"space": {"optim.lr": {"grid_search": [0.1, 1.0]}},
        ...                      "num_samples": 2})
        >>> [c["optim.lr"] for c in sample_configs(spec, seed=0)]
        [0.1, 1.0, 0.1, 1.0]
    """
    rng = random.Random(seed)
    grid_keys = [k for k, v in spec.space.items() if _is_grid(v, spec.search_alg)]
    grids = [list(next(iter(spec.space[k].values()))) for k in grid_keys]
    out = []
    for _ in range(spec.num_samples):
        for combo in itertools.product(*grids):
            chosen = dict(zip(grid_keys, combo))
            config = {}
            for key, value in spec.space.items():
                config[key] = chosen[key] if key in chosen else _draw(value, rng)
            out.append(copy.deepcopy(config))
    return out


def _is_grid(value: Any, search_alg: str) -> bool:
    if not _is_domain(value):
        return False
    kind = next(iter(value))
    return kind == "grid_search" or (kind == "choice" and search_alg == "grid")


def _draw(value: Any, rng: random.Random) -> Any:
    if not _is_domain(value):
        return value  # a constant key: every trial gets it
    kind, arg = next(iter(value.items()))
    if kind == "choice":
        return arg[rng.randrange(len(arg))]
    if kind == "uniform":
        return rng.uniform(float(arg[0]), float(arg[1]))
    if kind == "loguniform":
        return math.exp(rng.uniform(math.log(float(arg[0])), math.log(float(arg[1]))))
    return rng.randrange(int(arg[0]), int(arg[1]))  # randint: [low, high)


CONFIG_INDEX_KEY = "config_index"  # a trial's only Tune parameter: its index in the list


def trial_key(index: int) -> str:
    """The name of sampled trial ``index``: its id in every table, its run directory."""
    return f"trial-{index:04d}"


def run_key(config: dict[str, Any], trial_id: str) -> str:
    """A trial's name in the records: ``trial-<index>`` for a listed trial, else Tune's id."""
    if CONFIG_INDEX_KEY in (config or {}):
        return trial_key(int(config[CONFIG_INDEX_KEY]))
    return trial_id
