"""A search's trials table, read from what the trials recorded, and what a resume has left.

Each trial's run directory is the truth about it (``metrics.json``: status, reason, final
metrics, stages; ``trial.json``: how often it started), so ``trials.csv``/``trials.json``,
the console table and the report say what ``metrics.json`` and W&B say. Tune's results
add only what no run directory can hold: the error of a trial whose process died.
Nothing here imports Ray.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kanplatform.search.sampling import trial_key
from kanplatform.search.spec import SearchSpec
from kanplatform.search.storage import is_uri, join, read_file

TRIAL_FILE = "trial.json"
ENDED = ("completed", "stopped", "diverged")  # needs no more training: a resume skips it


def _finite(x: Any) -> float | None:
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _read_json(run_dir: str | Path | None, name: str) -> Any:
    if not run_dir:
        return None
    try:
        if is_uri(run_dir):
            data = read_file(join(str(run_dir), name))
            return json.loads(data) if data is not None else None
        return json.loads((Path(run_dir) / name).read_text())
    except (OSError, ValueError):
        return None


def read_metrics(run_dir: str | Path | None) -> dict[str, Any] | None:
    """A run directory's (path or URI) ``metrics.json``, or None (none yet, or unreadable)."""
    data = _read_json(run_dir, "metrics.json")
    return data if isinstance(data, dict) else None


def starts(run_dir: str | Path) -> int:
    """How many times a trial started in ``run_dir`` (``trial.json``; 0 if never)."""
    data = _read_json(run_dir, TRIAL_FILE)
    try:
        return int(data.get("starts", 0)) if isinstance(data, dict) else 0
    except (TypeError, ValueError):
        return 0


def row_from_run(key: str, config: Mapping[str, Any], run_dir: Path | str, spec: SearchSpec,
                 facts: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One trials-table row from a run directory; ``facts``: what Tune knows besides
    (``error`` of a trial whose process died, ``trainer/workers``...)."""
    facts = dict(facts or {})
    error = facts.pop("error", None)
    row: dict[str, Any] = {"trial_id": key, **config}
    metrics = read_metrics(run_dir)
    if metrics is None:
        status = "failed" if error else "interrupted"
        reason = error or "never ran to a record: the search was stopped first"
        row.update(status=status, reason=reason, **{spec.metric: None})
    else:
        status = metrics.get("status") or "interrupted"
        if error and status not in ("completed", "stopped", "diverged", "failed"):
            status, reason = "failed", error  # its process died without a last word
        else:
            reason = metrics.get("reason")
        final = metrics.get("final") or {}
        stages = metrics.get("stages") or []
        # the value the scheduler and searcher were told: the last stage's (a stopped KAN's
        # final model may already hold the next, untrained grid), else the final one
        last = stages[-1] if stages and spec.metric in stages[-1] else final
        value = last.get(spec.metric) if status in ("completed", "stopped") else None
        row.update(status=status, reason=reason, **{spec.metric: _finite(value)})
        row["grid/stage"] = len(stages)
        if stages and stages[-1].get("grid_size") is not None:
            row["grid/size"] = stages[-1]["grid_size"]
        for name in ("train/loss", "val/rmse", "test/rmse"):
            if name in final and name not in row:
                row[name] = _finite(final[name])
        if metrics.get("model/params") is not None:
            row["model/params"] = metrics["model/params"]
        if metrics.get("trainer/stacked"):  # trained in one stack with this many runs
            row["trainer/stacked"] = metrics["trainer/stacked"]
    row.update(facts)
    row["restores"] = max(0, starts(run_dir) - 1)
    row["run_dir"] = str(run_dir)
    return row


def listed_rows(configs: Sequence[Mapping[str, Any]], run_dirs: Sequence[Path | str],
                spec: SearchSpec, facts: Mapping[str, Mapping[str, Any]] | None = None
                ) -> list[dict[str, Any]]:
    """One row per listed trial, in list order (``facts``: Tune's, by trial key)."""
    facts = facts or {}
    return [row_from_run(trial_key(i), c, run_dirs[i], spec, facts.get(trial_key(i)))
            for i, c in enumerate(configs)]


def rank(rows: list[dict[str, Any]], spec: SearchSpec) -> list[dict[str, Any]]:
    """Completed trials first, best first; the others after, in their order."""
    sign = 1 if spec.mode == "min" else -1

    def key(r: dict[str, Any]) -> tuple[int, float]:
        v = r.get(spec.metric)
        ok = r["status"] == "completed" and v is not None
        return (0 if ok else 1, sign * v if ok else 0.0)

    return sorted(rows, key=key)


def unfinished(run_dirs: Sequence[Path | str]) -> list[int]:
    """Indices of the listed trials a resume must (re)run: no ended run in their directory.

    A ``failed`` run is run again (from its last checkpoint) as Tune's ``resume_errored``
    would; ``interrupted`` ones continue; ``completed``, ``stopped`` and ``diverged`` ones
    are results.
    """
    return [i for i, d in enumerate(run_dirs) if (read_metrics(d) or {}).get("status") not in ENDED]
