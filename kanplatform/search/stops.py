"""Early stopping that lets a trial write its records before it ends.

When Ray Tune's ASHA decides to stop a trial, Tune ends the trial's training thread from
inside its next ``tune.report`` (a ``SystemExit``) and then ends or reuses its process with a
few seconds' grace: the run was recorded as interrupted, its final files and W&B run were
cut off (7-byte offline runs) -- and the same happened to every trial ASHA stopped at
``max_t``, i.e. every trial that finished its budget.

So the schedulers here make the same decisions, but instead of STOP they write the
decision to ``STOP_DIR/<trial>.json`` (with the rung, the step, the metric and why) and let
the trial continue; the trial's reporter reads it right after its report returns, stops
training, writes ``status: stopped`` with that reason, finishes its W&B run and returns.
Tune then sees an ordinary end of the trial. A decision to stop a trial that has done its
budget (ASHA at ``max_t``) is no stop at all and is dropped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from kanplatform.search.sampling import run_key
from kanplatform.search.storage import join, read_file, upload

STOP_DIR = "stops"  # in the experiment directory


def stop_file(experiment_dir: str | Path, key: str) -> Path:
    """Where the decision to stop trial ``key`` is written."""
    return Path(experiment_dir) / STOP_DIR / f"{key}.json"


def read_stop(experiment_dir: str | Path, key: str, uri: str | None = None) -> str | None:
    """The reason trial ``key`` was told to stop, or None (``uri``: the experiment's object
    storage, where a trial on any node finds it)."""
    try:
        if uri is not None:
            data = read_file(join(uri, STOP_DIR, f"{key}.json"))
            return json.loads(data)["reason"] if data is not None else None
        return json.loads(stop_file(experiment_dir, key).read_text())["reason"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


class RecordedASHA(ASHAScheduler):
    """:class:`ray.tune.schedulers.ASHAScheduler` whose stops the trial carries out itself.

    Args:
        experiment_dir: where ``stops/`` goes (the trials read it there).
        uri: the experiment's object storage, where the decision is uploaded too.
        status_key: the result entry saying ``running`` while the trial has budget left.
        **kwargs: :class:`ASHAScheduler`'s.
    """

    def __init__(self, experiment_dir: str, status_key: str, uri: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._stop_dir = str(experiment_dir)
        self._uri = uri
        self._status_key = status_key

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        if decision != TrialScheduler.STOP:
            return decision
        if result.get(self._status_key) != "running":
            return TrialScheduler.CONTINUE  # its budget is done: it ends by itself now
        attr = self._time_attr
        value = result.get(self._metric)
        reason = (f"stopped by ASHA at rung {attr}={result.get(attr)} (step "
                  f"{result.get('trial/step', '?')}): {self._metric} "
                  f"{value:.4g} was not in the top 1/{self._reduction_factor:g} of the trials "
                  "that reached this rung" if isinstance(value, float) else
                  f"stopped by ASHA at rung {attr}={result.get(attr)}")
        path = stop_file(self._stop_dir, run_key(trial.config, trial.trial_id))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"reason": reason, "result": {
            k: v for k, v in result.items() if isinstance(v, int | float | str)}}))
        os.replace(tmp, path)  # the trial never reads half a decision
        if self._uri is not None:
            upload(path, join(self._uri, STOP_DIR, path.name))
        return TrialScheduler.CONTINUE
