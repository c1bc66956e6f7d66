"""The Lightning callback through which a trial reports to Tune (or Ray Train).

Apart from :mod:`kanplatform.search.trainable` so that the driver, which imports the
trainable to hand it to Tune, does not import Lightning (~5 s of CPU on a small machine,
before any trial starts); the trial processes import this module when they train.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from kanplatform._util.lightning import pl
from kanplatform.search.stops import read_stop
from kanplatform.search.trainable import (
    CKPT_NAME,
    STATE_NAME,
    STATUS_KEY,
    TrialSetup,
    _finite_or,
)

__all__ = ["TuneReporter"]


class TuneReporter(pl.Callback):
    """Reports ``trainer.callback_metrics`` (+ ``grid/stage``) and a checkpoint to Tune.

    Args:
        setup: the search's trial setup (metric, mode, report_on).
        report: ``report(metrics, checkpoint_dir)``: ``ray.tune.report`` in a plain trial,
            ``ray.train.report`` on a Ray Train worker.
        n_stages: grid stages the run walks (1 without a schedule).
        stage_offset: stages completed before this fit started (on restore).
        restores: how many times this trial restarted from a checkpoint (reported).
        extra: constant entries added to every report (e.g. the run directory).
    """

    # its batch hook reports the grid's stage rows, written at stage ends: any multi-step
    # batch boundary will do (kanplatform.train.chunking)
    step_cadence = 0

    def __init__(self, setup: TrialSetup, report: Any, n_stages: int, *, stage_offset: int = 0,
                 restores: int = 0, extra: dict[str, Any] | None = None,
                 keep_dir: str | Path | None = None, key: str | None = None) -> None:
        self.setup = setup
        self.key = key
        self.stop_request: tuple[str, str] | None = None  # fit's outcome when we end the run
        self.ended = False  # told to stop: no more reports (Tune expects none)
        self.keep_dir = Path(keep_dir) if keep_dir else None
        self.report = report
        self.n_stages = n_stages
        self.stage = stage_offset
        self.restores = restores
        self.extra = dict(extra or {})
        self.last_status: str | None = None
        self.reported_stage = -1
        # Tune stopped the trial in a report: once the records are written the function must
        # end as Ray's session would have ended it (SystemExit(0)); returning instead makes
        # Ray report once more, and that report waits for ever
        self.stopped_by_tune = False

    # -- what gets reported --------------------------------------------------------------
    def metrics(self, trainer: pl.Trainer, status: str,
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in trainer.callback_metrics.items():
            try:
                out[key] = float(value)
            except (TypeError, ValueError):
                continue
        out.update(extra or {})
        out[self.setup.metric] = _finite_or(out.get(self.setup.metric), self.setup.worst())
        out["grid/stage"] = self.stage
        out["trial/step"] = int(trainer.global_step)
        out[STATUS_KEY] = status
        out["trial/restores"] = self.restores
        out.update(self.extra)
        # the metric first: Tune's console table shows the first few entries of a result
        return {self.setup.metric: out.pop(self.setup.metric), **out}

    def send(self, trainer: pl.Trainer, status: str, extra: dict[str, Any] | None = None) -> None:
        """Report now, with a checkpoint to restart from; then end the run if told to."""
        if self.ended:
            return
        metrics = self.metrics(trainer, status, extra)
        with tempfile.TemporaryDirectory(prefix="kanplatform-ckpt-") as tmp:
            trainer.save_checkpoint(os.path.join(tmp, CKPT_NAME), weights_only=False)
            Path(tmp, STATE_NAME).write_text(json.dumps({"stage": self.stage}))
            if self.keep_dir and Path(tmp, CKPT_NAME).exists():
                # Ray Train's Tune bridge forwards metrics only: keep our own restart point
                self.keep_dir.mkdir(parents=True, exist_ok=True)
                for name in (CKPT_NAME, STATE_NAME):
                    shutil.copyfile(Path(tmp, name), self.keep_dir / f".{name}.tmp")
                    os.replace(self.keep_dir / f".{name}.tmp", self.keep_dir / name)
            try:
                self.report(metrics, tmp if Path(tmp, CKPT_NAME).exists() else None)
            except SystemExit as stop:  # Ray ends a trial's thread so, from inside report
                if stop.code not in (0, None):
                    raise
                self.stopped_by_tune = True
                if status == "completed":  # its budget is done: nothing was cut short
                    self.ended = True
                    return
                self.end(trainer, "interrupted", (
                    f"interrupted: the search stopped this trial at grid stage {self.stage}, "
                    f"step {trainer.global_step} (its driver was stopped); `kanplatform tune "
                    "... --resume` continues it"))
                return
        self.last_status = status
        self.reported_stage = self.stage
        reason = read_stop(self.setup.experiment_dir, self.key, self.setup.results_uri) \
            if self.key else None
        if reason and status == "running":
            self.end(trainer, "stopped", reason)

    def end(self, trainer: pl.Trainer, status: str, reason: str) -> None:
        """Stop training after this step; ``fit`` records ``status`` and ``reason``."""
        self.ended = True
        self.stop_request = (status, reason)
        trainer.should_stop = True

    # -- when ------------------------------------------------------------------------------
    def _new_stage_row(self, trainer: pl.Trainer) -> dict[str, Any] | None:
        from kanplatform.train.callbacks import GridSchedule

        grid = next((c for c in trainer.callbacks if isinstance(c, GridSchedule)), None)
        if grid is None or len(grid.stages) <= self.stage:
            return None
        self.stage = len(grid.stages)
        return grid.stages[-1]

    def _report_stage(self, trainer: pl.Trainer) -> None:
        row = self._new_stage_row(trainer)
        if row is None or self.setup.report_on != "stage":
            return
        stage_metrics = {k: v for k, v in row.items() if "/" in k}
        if row.get("grid_size") is not None:
            stage_metrics["grid/size"] = row["grid_size"]
        status = "completed" if self.stage >= self.n_stages else "running"
        self.send(trainer, status, extra=stage_metrics)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        self._report_stage(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._report_stage(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.setup.report_on == "validation" and not trainer.sanity_checking:
            self.send(trainer, "running")
