"""The Lightning logger behind W&B tracking: a ``WandbLogger`` whose failures are warnings.

Imports Lightning and W&B; import it lazily (``kanplatform.tracking`` does).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kanplatform._util.lightning import pl
from kanplatform.tracking.wandb_run import (
    init_run,
    resolve_mode,
    tracking_option,
    warn_once,
)

WandbLogger = pl.loggers.WandbLogger


class SafeWandbLogger(WandbLogger):
    """``WandbLogger`` around an already started run that never raises into training.

    * Any W&B error while logging becomes one :class:`TrackingWarning` and turns the
      logger off; training continues.
    * Bound to the run's trainer (:class:`StepAxisCallback`), every record goes to the W&B
      step ``trainer.global_step``, the step of ``history.csv``.
    * ``log_hyperparams`` is a no-op: the run config already is the resolved config
      (plus seed, git SHA and versions), so module hparams cannot drift from it.

    Use :func:`make_loggers` rather than constructing it.
    """

    def __init__(self, run: Any, save_dir: str | Path, log_checkpoints: bool = False) -> None:
        # Lightning's own checkpoint upload (log_model) needs a ModelCheckpoint callback;
        # fit writes its files itself, so :func:`finish` uploads them instead.
        super().__init__(save_dir=str(save_dir), experiment=run, log_model=False)
        self.run_dir = Path(save_dir)
        self.log_checkpoints = bool(log_checkpoints)
        self._broken = False
        self._last_step = -1
        self._trainer: Any = None

    def bind(self, trainer: Any) -> None:
        """Take the step axis from ``trainer.global_step`` (what ``history.csv`` uses).

        Lightning logs a batch's metrics at ``global_step - 1`` but validation and callback
        metrics at ``global_step``; bound to the trainer, every record of a step lands on the
        same W&B step, in order. :class:`StepAxisCallback` binds each trainer at fit start.
        """
        self._trainer = trainer

    def _raw_step(self, step: int | None) -> int | None:
        if self._trainer is not None:
            try:
                return int(self._trainer.global_step)
            except Exception:  # noqa: BLE001 - a torn-down trainer: use what was given
                return step
        return step

    # -- step axis ---------------------------------------------------------------------
    def _seen(self, step: int | None) -> int | None:
        if step is not None:
            self._last_step = max(self._last_step, int(step))
        return step

    @property
    def last_step(self) -> int:
        """The largest step logged, -1 before any."""
        return self._last_step

    # -- guarded logging ---------------------------------------------------------------
    def _guard(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> None:
        if self._broken:
            return
        try:
            fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - W&B must never stop training
            self._broken = True
            warn_once(f"W&B {what} failed ({type(err).__name__}: {err}); W&B logging is off "
                      "for the rest of this run, training goes on.", key=f"log:{id(self)}")

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        self._guard("log", super().log_metrics, metrics, self._seen(self._raw_step(step)))

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        return None

    def log_media(self, data: Mapping[str, Any], step: int | None = None) -> None:
        """Log W&B objects (``wandb.Image``, ``wandb.Table``, plots) at a trainer step.

        With ``step=None`` the objects go to the bound trainer's step, else to the last step
        logged so far.
        """
        step = self._raw_step(step)
        step = self.last_step if step is None else self._seen(step)
        payload = dict(data)
        if step is not None and step >= 0:
            payload["trainer/global_step"] = step
        self._guard("log", self.experiment.log, payload)

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        self._guard("checkpoint upload", super().after_save_checkpoint, checkpoint_callback)

    def finalize(self, status: str) -> None:
        self._guard("finalize", super().finalize, status)


def make_loggers(cfg: Any, run_dir: str | Path, resume: bool = False) -> list[Any]:
    """The Lightning loggers for a run, as configured by ``cfg.tracking``.

    Starts the W&B run now (not lazily at the first log call) so that a W&B failure is found
    before training and becomes one warning; with ``tracking.mode=disabled`` or a failed
    start the list is empty and training runs without W&B.

    Args:
        cfg: the resolved RunConfig. Reads ``tracking.{mode, project, entity, group, tags,
            name, log_checkpoints, init_timeout}`` (defaults where absent).
        run_dir: the run directory; the W&B run lives in ``run_dir/wandb``.
        resume: continue the W&B run recorded in ``run_dir`` (a run resumed from its
            checkpoint; see :func:`kanplatform.tracking.init_run`).

    Returns:
        ``[SafeWandbLogger]`` or ``[]``. Call :func:`kanplatform.tracking.finish` with it
        after the last trainer of the run.

    Example:
        >>> loggers = make_loggers(cfg, "runs/r1")  # doctest: +SKIP
        >>> trainer = pl.Trainer(logger=loggers, ...)  # doctest: +SKIP
    """
    mode = resolve_mode(cfg)
    run = init_run(cfg, run_dir, mode, resume=resume)
    if run is None:
        return []
    return [SafeWandbLogger(run, run_dir,
                            log_checkpoints=bool(tracking_option(cfg, "log_checkpoints")))]


def find_wandb_logger(loggers: Any) -> SafeWandbLogger | None:
    """The first :class:`SafeWandbLogger` in a logger, a list of them, or a Trainer."""
    if loggers is None:
        return None
    if hasattr(loggers, "loggers"):  # a Trainer
        loggers = loggers.loggers
    if isinstance(loggers, SafeWandbLogger):
        return loggers
    for logger in loggers if isinstance(loggers, (list, tuple)) else ():
        if isinstance(logger, SafeWandbLogger):
            return logger
    return None
