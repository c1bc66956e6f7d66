"""Lightning callbacks of the tracking package: spline snapshots during training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kanplatform._util.lightning import pl
from kanplatform.tracking.figures import kan_layers
from kanplatform.tracking.loggers import SafeWandbLogger, find_wandb_logger
from kanplatform.tracking.snapshots import copy_snapshot, snapshot
from kanplatform.tracking.wandb_run import tracking_option, warn_once


def grid_size(model: Any) -> int | None:
    """The grid size G of a KAN's first layer (``grid_size`` attribute), None if unknown."""
    layers = kan_layers(model)
    if not layers:
        return None
    size = getattr(layers[0], "grid_size", None)
    try:
        return int(size)
    except (TypeError, ValueError):
        return None


def current_model(pl_module: Any) -> Any:
    """The model a LightningModule trains now (``pl_module.model``, which may be replaced)."""
    return getattr(pl_module, "model", pl_module)


def stage_schedule(trainer: Any) -> Any:
    """The trainer's grid-schedule callback (``kanplatform.train.GridSchedule``: anything with
    ``stage_of(step)``), or None."""
    for callback in getattr(trainer, "callbacks", None) or ():
        if callable(getattr(callback, "stage_of", None)):
            return callback
    return None


class SplineSnapshotCallback(pl.Callback):
    """Spline snapshots every ``every_n_steps`` steps, at the end of every grid stage, at the end.

    Robust to grid extension replacing ``pl_module.model`` mid-fit: the callback keeps a
    reference to the model it saw last; when ``pl_module.model`` is a different object, the
    old one (as trained to the end of its stage) is snapshotted as ``stage<k>_G<size>``.
    ``on_train_end`` snapshots the current model as a stage end (logged to W&B) unless it has
    not trained a step yet (a grid just extended), and writes it again as ``final`` (files
    only), so a ``fit`` that uses one Trainer per grid stage gets the same files (the last
    trainer's ``final`` wins).

    The stage ``k`` of a model is the stage of the global step it started training at, as
    the trainer's grid schedule (``GridSchedule``) divides steps, so a run resumed from a
    checkpoint, at any step, names its stages as an uninterrupted run does (a run stopped
    mid-stage writes that stage's tag at its stop, and the resumed run again at the stage's
    end, as ``metrics.json`` measures that stage again). Without a grid schedule (one
    trainer per stage) stages are counted.

    Tags: ``step<NNNNNN>`` (periodic, on the monotone step axis), ``stage<k>_G<size>``,
    ``final``. Files and W&B keys: see :func:`kanplatform.tracking.snapshot`. In W&B the
    images go to the trainer's global step (see :class:`StepAxisCallback`); the tag is in
    the caption. A snapshot that fails (e.g. a diverged model) is a warning, not an error.

    Args:
        run_dir: the run directory (figures go to ``run_dir/figures``).
        every_n_steps: periodic snapshots; 0 turns them off.
        n_points: points per edge curve.
    """

    def __init__(self, run_dir: str | Path, every_n_steps: int = 0, n_points: int = 101) -> None:
        self.run_dir = Path(run_dir)
        self.every_n_steps = int(every_n_steps or 0)
        self.n_points = n_points
        self.stage = 0  # stage-end snapshots taken (the next stage, without a schedule)
        self._model: Any = None
        self._model_step = 0  # the global step self._model was first seen at
        self._stage_done: Any = None  # the model object whose stage end was snapshotted
        self._last_logged: tuple[int, int] | None = None
        self._last_written: tuple[tuple[int, int], str, list[Path]] | None = None
        self.tags: list[str] = []  # snapshots taken, in order

    @property
    def step_cadence(self) -> int:
        """Its batch hooks act on multiples of this and on model swaps (stage ends): a
        multi-step batch must end there (``kanplatform.train.chunking``)."""
        return max(self.every_n_steps, 0)

    def _snap(self, model: Any, tag: str, trainer: Any, step: int | None,
              log: bool = True) -> None:
        # the same model at the same step was just logged (periodic + stage end): files only
        key = (id(model), trainer.global_step)
        logger = find_wandb_logger(trainer) if log and key != self._last_logged else None
        try:
            last = self._last_written
            if logger is None and last is not None and last[0] == key:
                # the same model at the same step (the final after the stage end): the
                # same pictures, copied rather than drawn again
                written = copy_snapshot(last[2], last[1], tag)
            else:
                written = snapshot(model, self.run_dir, tag, logger=logger, step=step,
                                   n_points=self.n_points)
            self._last_written = (key, tag, list(written))
        except Exception as err:  # noqa: BLE001 - a figure must never stop training
            warn_once(f"spline snapshot {tag!r} failed ({type(err).__name__}: {err})",
                      key=f"snap:{self.run_dir}")
            return
        if written:
            self.tags.append(tag)
            if logger is not None:
                self._last_logged = key

    def _stage_end(self, model: Any, trainer: Any, step: int | None) -> None:
        if model is None or model is self._stage_done:
            return
        schedule = stage_schedule(trainer)
        stage = self.stage if schedule is None else int(schedule.stage_of(self._model_step))
        size = grid_size(model)
        tag = f"stage{stage}" + (f"_G{size}" if size is not None else "")
        self._snap(model, tag, trainer, step)
        self._stage_done = model
        self.stage = stage + 1

    def _watch(self, pl_module: Any, trainer: Any, step: int | None) -> None:
        model = current_model(pl_module)
        if model is self._model:
            return
        if self._model is not None:
            self._stage_end(self._model, trainer, step)
        self._model, self._model_step = model, int(trainer.global_step)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        # A model replaced between the last batch end and now still gets its stage end.
        self._watch(pl_module, trainer, None)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        step = trainer.global_step
        self._watch(pl_module, trainer, None)
        if self.every_n_steps > 0 and step > 0 and step % self.every_n_steps == 0:
            # on the last step the stage-end snapshot (on_train_end) goes to W&B instead
            last = 0 < (trainer.max_steps or 0) <= step
            self._snap(current_model(pl_module), f"step{step:06d}", trainer, None, log=not last)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._watch(pl_module, trainer, None)
        model = current_model(pl_module)
        if trainer.global_step > self._model_step:  # else: not trained yet, no stage end
            self._stage_end(model, trainer, None)
        # the same picture as the stage end just logged: files only, no second W&B image
        self._snap(model, "final", trainer, None, log=False)

    def state_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "tags": list(self.tags)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.stage = int(state_dict.get("stage", 0))
        self.tags = list(state_dict.get("tags", []))


class StepAxisCallback(pl.Callback):
    """Binds tracking's W&B logger to each trainer so W&B steps are ``trainer.global_step``.

    Then the W&B history uses the same steps as ``history.csv`` and ``metrics.json`` (one
    trainer runs every grid stage, so they are monotone).
    """

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, SafeWandbLogger):
                logger.bind(trainer)


def make_callbacks(cfg: Any, run_dir: str | Path) -> list[pl.Callback]:
    """The Lightning callbacks tracking adds to a run's Trainer.

    Args:
        cfg: the resolved RunConfig; reads ``tracking.snapshot_every`` (steps between
            periodic spline snapshots, 0 = only at stage ends and at the end) and
            ``tracking.snapshot_points`` (points per curve, default 101).
        run_dir: the run directory.

    Returns:
        ``[SplineSnapshotCallback, StepAxisCallback, LiveProgress]`` — also when W&B is
        disabled: the figures and curves are always written to ``run_dir/figures``, the
        progress so far to ``run_dir/live.json`` (what a live report reads). Reuse the same list
        for every Trainer of one run (one per grid stage is fine) so stages are counted
        across them.
    """
    every = tracking_option(cfg, "snapshot_every") or 0
    points = tracking_option(cfg, "snapshot_points") or 101
    from kanplatform.tracking.progress import LiveProgress

    return [SplineSnapshotCallback(run_dir, every_n_steps=int(every), n_points=int(points)),
            StepAxisCallback(), LiveProgress(run_dir)]
