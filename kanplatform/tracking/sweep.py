"""A search experiment read back from its files: the spec, one row per trial, importance, rungs.

What a search writes (``search.json`` with the spec, ``trials.csv``/``trials.json`` when it
ends, ``stops/<trial>.json`` for each early stop, one run directory per trial) is read here
without importing the search package, so a report can be made anywhere the files are: on the
driver while the search runs, or later on another machine. Once the trials table exists it is
the truth (the page then shows exactly ``trials.csv``); before, each trial's run directory
says what it did so far (``metrics.json`` when it ended, else ``live.json``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kanplatform.tracking.rundata import Run, find_runs, read_run

SEARCH_JSON = "search.json"
TRIALS_JSON = "trials.json"
TRIALS_CSV = "trials.csv"
BEST_CONFIG = "best_config.yaml"
STOP_DIR = "stops"
DOMAINS = ("grid_search", "choice", "uniform", "loguniform", "randint")
ENDED = ("completed", "stopped", "diverged", "failed", "interrupted", "error", "not_run")


@dataclass
class Trial:
    """One trial as the page shows it.

    Attributes:
        trial_id: its name in the tables (``trials.csv``'s ``trial_id``, else its run dir's).
        status: ``completed | stopped | diverged | failed | interrupted`` once it ended;
            ``running`` or ``pending`` while the search runs.
        reason: why it stopped or failed (the scheduler's rung decision for ``stopped``).
        params: its values of the sampled keys.
        metric: the search metric (the table's value: the last stage's for a run that ended;
            the latest one while it runs).
        values: its other recorded metrics (``test/rmse``, ``grid/stage``, ...).
        run: its run directory read back (curves, stages), when there is one.
    """

    trial_id: str
    status: str
    reason: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    metric: float | None = None
    values: dict[str, Any] = field(default_factory=dict)
    run: Run | None = None


@dataclass
class Sweep:
    """A search experiment: its spec and trials, sorted by the metric (best first)."""

    root: Path
    search: dict[str, Any]
    metric: str
    mode: str
    keys: list[str]
    trials: list[Trial]
    final: bool  # read from the trials table the search wrote when it ended
    planned: int | None = None

    @property
    def best(self) -> Trial | None:
        """The best completed trial (what ``best_config.yaml`` holds), or None."""
        return next((t for t in self.trials if t.status == "completed" and t.metric is not None),
                    None)

    def domain(self, key: str) -> tuple[str, Any] | None:
        """``(kind, argument)`` of a sampled key's domain, None for a listed config's key."""
        value = (self.search.get("space") or {}).get(key)
        if _is_domain(value):
            return next(iter(value.items()))
        return None

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.trials:
            out[t.status] = out.get(t.status, 0) + 1
        return out


def _is_domain(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in DOMAINS


def _finite(x: Any) -> float | None:
    if isinstance(x, bool):
        return None
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def is_sweep(root: str | Path) -> bool:
    """Whether ``root`` is a search experiment (it holds ``search.json``)."""
    return (Path(root) / SEARCH_JSON).is_file()


def read_sweep(root: str | Path, runs: list[Run] | None = None,
               live: bool = False) -> Sweep | None:
    """Read the search experiment at ``root``; None when it holds no ``search.json``.

    Args:
        root: the experiment directory.
        runs: its run directories already read (else they are found and read here).
        live: the search is running: read the run directories, not a trials table (one
            there is an earlier run's, e.g. before a resume).
    """
    root = Path(root)
    record = _read_json(root / SEARCH_JSON)
    if not isinstance(record, dict):
        return None
    search = record.get("search") if isinstance(record.get("search"), dict) else {}
    metric, mode = str(search.get("metric") or "val/rmse"), str(search.get("mode") or "min")
    if runs is None:
        runs = [read_run(d, root) for d in find_runs(root)]
    by_dir = {r.path.resolve(): r for r in runs}
    table = _read_json(root / TRIALS_JSON)
    if not live and isinstance(table, list) and all(isinstance(r, dict) for r in table):
        trials = [_from_row(r, metric, by_dir) for r in table]
        final = True
    else:
        trials = [_from_run(r, metric, root) for r in runs]
        trials += _pending(record, root, {t.run.path.resolve() for t in trials if t.run})
        final = False
    keys = sampled_keys(search, record.get("configs"), trials)
    for t in trials:
        source = t.params or (t.run.config if t.run else {})
        t.params = {k: source.get(k) for k in keys if k in source}
    sign = 1.0 if mode == "min" else -1.0
    order = {"completed": 0, "stopped": 1, "running": 2}
    trials.sort(key=lambda t: (t.metric is None, sign * t.metric if t.metric is not None else 0,
                               order.get(t.status, 3), t.trial_id))
    return Sweep(root, search, metric, mode, keys, trials, final, planned(search, record))


def sampled_keys(search: dict[str, Any], configs: Any, trials: list[Trial]) -> list[str]:
    """The keys the search varies: its space's domains, else the keys its listed configs vary."""
    keys = [k for k, v in (search.get("space") or {}).items() if _is_domain(v)]
    if keys or not isinstance(configs, list):
        return keys
    listed: list[str] = []
    for c in configs:
        listed += [k for k in (c if isinstance(c, dict) else {}) if k not in listed]
    values = {k: {json.dumps(c.get(k), default=str) for c in configs if isinstance(c, dict)}
              for k in listed}
    varying = [k for k in listed if len(values[k]) > 1]
    return varying or listed


def planned(search: dict[str, Any], record: dict[str, Any]) -> int | None:
    """How many trials the search runs in all (None when Optuna decides as it goes)."""
    if isinstance(record.get("configs"), list):
        return len(record["configs"])
    n = int(search.get("num_samples") or 1)
    for value in (search.get("space") or {}).values():
        if _is_domain(value):
            kind, arg = next(iter(value.items()))
            grid = kind == "grid_search" or (kind == "choice"
                                             and search.get("search_alg") == "grid")
            if grid and isinstance(arg, list):
                n *= max(1, len(arg))
    return n


def _from_row(row: dict[str, Any], metric: str, by_dir: dict[Path, Run]) -> Trial:
    """A row of ``trials.json`` (what ``trials.csv`` says), with its run directory if found."""
    run = None
    if row.get("run_dir"):
        path = Path(str(row["run_dir"]))
        run = by_dir.get(path.resolve()) if path.is_dir() else None
        if run is None and path.is_dir():
            run = read_run(path)
    skip = {"trial_id", "status", "reason", "run_dir", metric}
    return Trial(trial_id=str(row.get("trial_id")), status=str(row.get("status") or "?"),
                 reason=row.get("reason") or None, params=dict(row),
                 metric=_finite(row.get(metric)),
                 values={k: v for k, v in row.items() if k not in skip}, run=run)


def _from_run(run: Run, metric: str, root: Path) -> Trial:
    """A trial still in progress (or ended before the table was written), from its run dir."""
    raw = run.metrics_raw
    status = str(run.metrics.get("status") or "running")
    value = None
    if raw:  # ended: the value the scheduler was told -- the last stage's, else the final one
        stages = raw.get("stages") if isinstance(raw.get("stages"), list) else []
        last = stages[-1] if stages and isinstance(stages[-1], dict) and metric in stages[-1] \
            else (raw.get("final") or {})
        value = last.get(metric) if status in ("completed", "stopped") else None
    elif run.live:
        stages = run.live.get("stages") or []
        value = (run.live.get("latest") or {}).get(metric)
        if value is None and stages and isinstance(stages[-1], dict):
            value = stages[-1].get(metric)
    reason = run.metrics.get("reason") or _stop_reason(root, run.path.name)
    values = {k: v for k, v in run.metrics.items() if k not in ("status", "reason", metric)
              and isinstance(v, int | float | str)}
    stages = (raw or run.live or {}).get("stages") or []
    values["grid/stage"] = len(stages)
    if run.live and not raw:
        values["updated_s_ago"] = _age(run.live.get("updated"))
    return Trial(trial_id=run.path.name, status=status, reason=reason or None,
                 metric=_finite(value), values=values, run=run)


def _age(updated: Any) -> float | None:
    import time

    t = _finite(updated)
    return None if t is None else max(0.0, time.time() - t)


def _stop_reason(root: Path, key: str) -> str | None:
    doc = _read_json(root / STOP_DIR / f"{key}.json")
    return doc.get("reason") if isinstance(doc, dict) else None


def _pending(record: dict[str, Any], root: Path, started: set[Path]) -> list[Trial]:
    """Listed trials whose run directory does not exist yet (a search that records where
    each listed trial runs: ``run_dirs`` in ``search.json``)."""
    configs, dirs = record.get("configs"), record.get("run_dirs")
    if not isinstance(configs, list) or not isinstance(dirs, list) or len(dirs) != len(configs):
        return []
    out = []
    for i, (config, d) in enumerate(zip(configs, dirs)):
        key = f"trial-{i:04d}"
        path = Path(d) if d else root / "runs" / key
        if path.resolve() not in started and not path.is_dir():
            out.append(Trial(trial_id=key, status="pending",
                             params=dict(config) if isinstance(config, dict) else {}))
    return out


# -- what the page derives -------------------------------------------------------------------

IMPORTANCE_METHOD = (
    "|Spearman rank correlation| between a numeric key and {metric}; for a categorical key "
    "the correlation ratio (eta) of the ranks of {metric} between its values. Over the {n} "
    "trials with a value (completed and stopped; a stopped trial's value is the one at the "
    "rung it stopped at). Sign: + means higher values of the key go with higher {metric}.")


def _ranks(values: list[float]) -> list[float]:
    from scipy.stats import rankdata

    return [float(r) for r in rankdata(values)]


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def importance(sweep: Sweep) -> list[dict[str, Any]]:
    """One row per sampled key, most important first: ``{"key", "importance", "sign",
    "method", "n"}`` (see :data:`IMPORTANCE_METHOD`); [] with fewer than 3 trials."""
    rows = [t for t in sweep.trials if t.metric is not None and t.status in ("completed",
                                                                              "stopped")]
    if len(rows) < 3:
        return []
    y = _ranks([t.metric for t in rows])
    out = []
    for key in sweep.keys:
        xs = [t.params.get(key) for t in rows]
        distinct = {json.dumps(x, default=str) for x in xs}
        if len(distinct) < 2:
            out.append({"key": key, "importance": 0.0, "sign": None, "n": len(rows),
                        "method": "constant over these trials"})
            continue
        if all(_is_number(x) for x in xs):
            rho = _pearson(_ranks([float(x) for x in xs]), y)
            out.append({"key": key, "importance": abs(rho), "sign": rho, "n": len(rows),
                        "method": "spearman"})
        else:
            out.append({"key": key, "importance": _eta([json.dumps(x, default=str)
                                                        for x in xs], y),
                        "sign": None, "n": len(rows), "method": "eta"})
    return sorted(out, key=lambda r: -r["importance"])


def _pearson(a: list[float], b: list[float]) -> float:
    n = len(a)
    ma, mb = sum(a) / n, sum(b) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    va = math.sqrt(sum((x - ma) ** 2 for x in a))
    vb = math.sqrt(sum((y - mb) ** 2 for y in b))
    return 0.0 if va == 0 or vb == 0 else cov / (va * vb)


def _eta(groups: list[str], y: list[float]) -> float:
    """Correlation ratio: sqrt(between-group / total sum of squares) of ``y``."""
    mean = sum(y) / len(y)
    total = sum((v - mean) ** 2 for v in y)
    if total == 0:
        return 0.0
    between = 0.0
    for g in set(groups):
        vals = [v for gg, v in zip(groups, y) if gg == g]
        between += len(vals) * (sum(vals) / len(vals) - mean) ** 2
    return math.sqrt(between / total)


def rungs(sweep: Sweep) -> tuple[list[int], str] | None:
    """ASHA's rungs in grid stages ``([1, 2, ...], time_attr)``; None without ASHA on stages.

    As Ray's ASHA places them: ``grace_period * reduction_factor**k`` below ``max_t`` (a
    trial reaching ``max_t`` has done its budget; no decision is taken there).
    """
    sched = sweep.search.get("scheduler") or {}
    if sched.get("kind") != "asha":
        return None
    attr = sched.get("time_attr") or ("grid/stage" if sweep.search.get("report_on", "stage")
                                      == "stage" else "training_iteration")
    if attr != "grid/stage":
        return [], attr
    max_t = sched.get("max_t") or max([_n_stages(t) for t in sweep.trials] or [1])
    grace, rf = int(sched.get("grace_period") or 1), float(sched.get("reduction_factor") or 2)
    out, r = [], float(grace)
    while r < max_t and len(out) < 20:
        out.append(int(r))
        r *= rf
    return sorted(set(out)), attr


def _n_stages(t: Trial) -> int:
    sched = (t.run.config.get("grid.schedule") if t.run else None) or t.params.get(
        "grid.schedule")
    return max(1, len(sched)) if isinstance(sched, list) else 1


def stage_values(t: Trial, metric: str) -> list[float | None]:
    """The metric at the end of each grid stage the trial completed (its rung values)."""
    src = (t.run.metrics_raw or t.run.live or {}) if t.run else {}
    stages = src.get("stages") if isinstance(src.get("stages"), list) else []
    return [_finite(s.get(metric)) if isinstance(s, dict) else None for s in stages]
