"""The experiment's own W&B run: a search as one run beside its trials' runs (same group).

While the search runs it logs how many trials ended and the best value so far (x axis:
``search/elapsed_s``); at the end the trials table (the sampled keys and the metrics, one row
per trial -- what W&B's parallel-coordinates panel reads), the best trial's config and
command, ``best_config.yaml``, the report's figures and the report itself. Offline by
default like every run: ``EXPERIMENT/wandb/offline-run-*``, browsed with
``wandb leet EXPERIMENT/wandb`` and uploaded with ``wandb sync``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kanplatform.tracking.sweep import BEST_CONFIG, Sweep
from kanplatform.tracking.wandb_run import finish_run, init_run, warn_once

STEP = "search/elapsed_s"
ENDED = ("completed", "stopped", "diverged", "failed", "interrupted", "error")


def _cell(v: Any) -> Any:
    """A table cell W&B's panels can use: numbers and strings as they are, lists as JSON."""
    if v is None or isinstance(v, bool | int | float | str):
        return v
    return json.dumps(v, default=str)


def trials_columns(sweep: Sweep) -> list[str]:
    """The columns of the W&B trials table: id, status, sampled keys, metrics, reason."""
    from kanplatform.tracking.sweep_page import VALUE_COLUMNS

    values = [c for c in VALUE_COLUMNS if c != sweep.metric
              and any(c in t.values for t in sweep.trials)]
    return ["trial_id", "status", *sweep.keys, sweep.metric, *values, "reason"]


def trials_data(sweep: Sweep) -> list[list[Any]]:
    cols = trials_columns(sweep)
    rows = []
    for t in sweep.trials:
        row = {"trial_id": t.trial_id, "status": t.status, "reason": t.reason,
               sweep.metric: t.metric, **t.values, **t.params}
        rows.append([_cell(row.get(c)) for c in cols])
    return rows


class ExperimentRun:
    """The W&B run of one experiment (see the module docstring).

    Args:
        run: the ``wandb`` run (from :meth:`start`).
        root: the experiment directory.
    """

    def __init__(self, run: Any, root: Path) -> None:
        self.run, self.root = run, Path(root)
        self.started = time.monotonic()
        self._last: Any = None

    @classmethod
    def start(cls, root: str | Path, config: Mapping[str, Any],
              mode: str | None = None) -> ExperimentRun | None:
        """Start the run in ``root/wandb`` (None when tracking is disabled or W&B fails).

        Args:
            root: the experiment directory.
            config: the run's W&B config; its ``tracking`` section (mode, project, group,
                name, tags) says where the run goes, as for a training run.
            mode: overrides the config's mode.
        """
        run = init_run(dict(config), root, mode=mode, step_metric=STEP, job_type="search")
        return None if run is None else cls(run, Path(root))

    @property
    def dir(self) -> Path | None:
        """The run's own directory (``root/wandb/offline-run-*`` offline)."""
        d = getattr(self.run, "dir", None)
        return Path(d).parent if d else None

    def progress(self, sweep: Sweep | None) -> None:
        """Log the trials ended, running and the best value so far, when they changed."""
        if sweep is None:
            return
        counts = sweep.counts()
        best = sweep.best
        state = (sorted(counts.items()), best.trial_id if best else None)
        if state == self._last:
            return
        self._last = state
        row: dict[str, Any] = {
            STEP: round(time.monotonic() - self.started, 1),
            "search/trials_ended": sum(n for s, n in counts.items() if s in ENDED),
            "search/trials_running": counts.get("running", 0),
        }
        if best is not None:
            row[f"search/best/{sweep.metric}"] = best.metric
        self.run.log(row)

    def finish(self, sweep: Sweep | None, *, report: Path | None = None,
               figures: Mapping[str, Path] | None = None, command: str | None = None,
               exit_code: int = 0) -> None:
        """Log the final trials table, best config, figures and report; finish the run."""
        try:
            if sweep is not None:
                self.progress(sweep)
                self._final(sweep, report, figures or {}, command)
        except Exception as err:  # noqa: BLE001 - the search's results are written already
            warn_once(f"the experiment's W&B run is incomplete ({type(err).__name__}: {err})")
            exit_code = exit_code or 1
        finish_run(self.run, exit_code)

    def _final(self, sweep: Sweep, report: Path | None, figures: Mapping[str, Path],
               command: str | None) -> None:
        import wandb

        cols = trials_columns(sweep)
        logged: dict[str, Any] = {
            STEP: round(time.monotonic() - self.started, 1),
            "trials": wandb.Table(columns=cols, data=trials_data(sweep)),
        }
        for name, path in figures.items():
            if path.suffix == ".png":
                logged[f"figures/{name}"] = wandb.Image(str(path), caption=name)
            elif path.suffix == ".svg":
                logged[f"figures/{name}"] = wandb.Html(path.read_text(), inject=False)
        if report is not None and report.is_file():
            logged["report"] = wandb.Html(report.read_text(encoding="utf-8"), inject=False)
        self.run.log(logged)
        best = sweep.best
        summary: dict[str, Any] = {"trials_total": len(sweep.trials),
                                   **{f"trials_{s}": n for s, n in sweep.counts().items()}}
        if best is not None:
            summary.update({"best/trial_id": best.trial_id, f"best/{sweep.metric}": best.metric,
                            "best/config": {k: _cell(v) for k, v in best.params.items()}})
            if command:
                summary["best/command"] = command
        self.run.summary.update(summary)
        best_file = self.root / BEST_CONFIG
        if best_file.is_file() and getattr(self.run, "dir", None):
            import shutil

            # a copy inside the run's files (wandb.save of an outside file symlinks it, warns)
            copy = Path(self.run.dir) / BEST_CONFIG
            shutil.copyfile(best_file, copy)
            self.run.save(str(copy), base_path=self.run.dir, policy="now")
