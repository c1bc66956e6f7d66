"""Training callbacks: the grid schedule (update and extension by stage), the run recorder
and the periodic checkpoint.

One Trainer runs every stage, so the global step is monotone across grid extensions:
stage ``s`` covers steps ``[s * steps_per_stage, (s + 1) * steps_per_stage)``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from kanplatform._util.lightning import pl
from kanplatform.nn.registry import GridModel
from kanplatform.train.module import TaskModule as RegressionModule
from kanplatform.train.module import finite, model_grid_size


def _splits(trainer: pl.Trainer) -> Any:
    return trainer.datamodule.splits


def grid_samples(splits: Any) -> torch.Tensor:
    """Training inputs plus the domain's boundary points: what grids are fitted to."""
    x = splits.train[0]
    extra = splits.domain_points()
    return x if extra is None else torch.cat([x, extra.to(x)])


def _model_counts(model: torch.nn.Module) -> dict[str, int]:
    from kanplatform.nn import count_flops, count_params

    return {"model/params": int(count_params(model)), "model/flops": int(count_flops(model))}


class DivergenceGuard:
    """Decides, once per step, whether the training loss diverged.

    A loss diverges when it is NaN/inf, or when ``factor`` > 0 and it rises above ``factor``
    times the best (lowest) loss of the run so far -- e.g. Adam at lr 1e6 in float64 climbs
    to 1e48 without ever overflowing. Both callbacks that care (:class:`GridSchedule`,
    :class:`RunRecorder`) ask it, in either order; the answer is computed once per step.

    Args:
        factor: ``trainer.divergence_factor`` (0 or None: only non-finite losses count).

    Attributes:
        reason: None, or why the run diverged (the step and the loss are named).
        best: the lowest finite loss seen (kept in checkpoints, so a resume goes on with it).
    """

    def __init__(self, factor: float | None = 1e4) -> None:
        self.factor = float(factor or 0.0)
        self.best: float | None = None
        self.reason: str | None = None
        self._step = -1

    def check(self, step: int, loss: Any) -> bool:
        """Whether the run has diverged, given the loss of global step ``step``."""
        if self.reason is not None or step == self._step or loss is None:
            return self.reason is not None
        self._step = step
        value = float(loss)
        if not math.isfinite(value):
            self.reason = f"non-finite train/loss ({value}) at step {step}"
        elif self.factor > 0 and self.best is not None and value > self.factor * self.best \
                and value > 0:
            self.reason = (f"train/loss {value:.4g} at step {step} rose above "
                           f"{self.factor:g}x its best {self.best:.4g} "
                           "(trainer.divergence_factor)")
        elif self.best is None or value < self.best:
            self.best = value
        return self.reason is not None

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state.get("best", self.best)


class GridSchedule(pl.Callback):
    """Split training into stages; for KANs update and extend the grid as pykan's recipe does.

    Within each stage the grid is updated from the training inputs (plus the corners of
    the input domain, when known) before every
    ``update_every``-th step while the step within the stage is below ``update_until``
    (except before the very first step, see ``on_train_batch_start``). At the
    end of stage ``s`` the stage's metrics are recorded (train/val/test RMSE, params, FLOPs,
    grid size) and, if another grid size follows, the KAN is replaced by
    ``kan.extend_grid(schedule[s + 1], x_train)`` and the optimiser rebuilt. Models without a
    grid (MLPs) get the same stages with no grid operations, so budgets and tables compare.

    Args:
        schedule: grid sizes, one per stage (``[]`` = one stage of ``steps_per_stage``).
        steps_per_stage: optimiser steps per stage.
        update_every: steps between grid updates (0 = none).
        update_until: no updates at or after this step of a stage.
        guard: the run's :class:`DivergenceGuard` (a diverged model gets no stage row and no
            finer grid); default: non-finite losses only.

    Attributes:
        stages: one dict per finished stage, in order (the ``metrics.json`` table).
    """

    def __init__(
        self,
        schedule: Sequence[int],
        steps_per_stage: int,
        update_every: int = 5,
        update_until: int = 50,
        guard: DivergenceGuard | None = None,
    ) -> None:
        self.guard = guard or DivergenceGuard(0)
        self.schedule = list(schedule)
        self.steps_per_stage = int(steps_per_stage)
        self.update_every = int(update_every)
        self.update_until = int(update_until)
        self.stages: list[dict[str, Any]] = []

    @property
    def step_cadence(self) -> int:
        """The steps its batch hooks act at are multiples of this (stage ends, grid
        updates): chunks of optimiser steps must end on them (:mod:`.chunking`)."""
        updates = self.update_every > 0 and self.update_until > self.update_every
        return math.gcd(self.steps_per_stage, self.update_every if updates else 0)

    @property
    def n_stages(self) -> int:
        """Number of stages (at least one)."""
        return max(1, len(self.schedule))

    def stage_of(self, step: int) -> int:
        """Index of the stage that global step ``step`` belongs to."""
        return min(step // self.steps_per_stage, self.n_stages - 1)

    def stage_end(self, stage: int) -> int:
        """The global step at which stage ``stage`` ends."""
        return (stage + 1) * self.steps_per_stage

    def on_train_start(self, trainer: pl.Trainer, pl_module: RegressionModule) -> None:
        step = trainer.global_step
        if step == 0:
            return
        # Resumed from a checkpoint (the budget may have grown since it was written). A row
        # written before its stage ended (a run stopped mid-stage) is measured again at the
        # stage's end; a run stopped right at a stage end, before a finer grid followed, gets
        # that grid now, as an uninterrupted run would have at that step.
        self.stages = [r for r in self.stages if r["step"] == self.stage_end(r["stage"] - 1)]
        size = model_grid_size(pl_module.model)
        stage = self.stage_of(step)
        if self.schedule and size is not None and size < self.schedule[stage]:
            with torch.no_grad():
                finer = pl_module.model.extend_grid(self.schedule[stage],
                                                    grid_samples(_splits(trainer)))
            pl_module.replace_model(finer)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: RegressionModule,
                             batch: Any, batch_idx: int) -> None:
        # int compares first: off-cadence this is all a step costs (the GridModel check
        # on a model without grids goes through nn.Module.__getattr__'s error path)
        if self.update_every <= 0:
            return
        step = trainer.global_step
        in_stage = step - self.stage_of(step) * self.steps_per_stage
        # Not before the first step: a freshly initialised KAN's hidden activations span a
        # narrow range, and fitting the next layer's grid to it (splines are clamped outside
        # their grid) stalls training (test RMSE 0.56 instead of 0.013 at G=3 here).
        if step > 0 and in_stage < self.update_until and in_stage % self.update_every == 0:
            model = pl_module.model
            if isinstance(model, GridModel):
                with torch.no_grad():
                    model.update_grid(grid_samples(_splits(trainer)))

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: RegressionModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        step = trainer.global_step
        if step == 0 or step % self.steps_per_stage or len(self.stages) >= self.n_stages:
            return
        if self.guard.check(step, pl_module.last_loss):
            return  # diverged: RunRecorder stops the run
        stage = step // self.steps_per_stage - 1
        self.record_stage(trainer, pl_module, stage)
        if stage + 1 < len(self.schedule) and isinstance(pl_module.model, GridModel):
            x = grid_samples(_splits(trainer))
            with torch.no_grad():
                finer = pl_module.model.extend_grid(self.schedule[stage + 1], x)
            pl_module.replace_model(finer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: RegressionModule) -> None:
        # a run stopped early (max_steps not a stage multiple, divergence) still gets a row
        step = trainer.global_step
        done = len(self.stages) * self.steps_per_stage
        if step > done and finite(pl_module.last_loss) and self.guard.reason is None:
            self.record_stage(trainer, pl_module, self.stage_of(step - 1))

    def record_stage(self, trainer: pl.Trainer, pl_module: RegressionModule, stage: int) -> None:
        """Measure the current model on every split and log the row of stage index ``stage``.

        The row's ``stage`` (and the logged ``grid/stage``) is the stage's number counted from
        1, which at its end is the number of stages completed: the one meaning ``grid/stage``
        has everywhere (metrics.json, W&B, Tune's reports and ASHA's rungs).
        """
        splits = _splits(trainer)
        row: dict[str, Any] = {"stage": stage + 1, "grid_size": model_grid_size(pl_module.model),
                               "step": trainer.global_step}
        for split in ("train", "val", "test"):
            for name, value in pl_module.evaluate(*splits.split(split)).items():
                row[f"{split}/{name}"] = value
        row.update(_model_counts(pl_module.model))
        self.stages.append(row)
        metrics = {"grid/stage": stage + 1, **{k: v for k, v in row.items() if "/" in k}}
        if row["grid_size"] is not None:
            metrics["grid/size"] = row["grid_size"]
        for logger in trainer.loggers:
            logger.log_metrics({f"stage/{k}" if k.startswith(("train", "val", "test")) else k: v
                                for k, v in metrics.items()}, step=trainer.global_step)

    def state_dict(self) -> dict[str, Any]:
        return {"stages": list(self.stages)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.stages = list(state_dict.get("stages", []))


class RunRecorder(pl.Callback):
    """Log ``train/loss``, ``train/rmse`` (or ``train/accuracy``), ``grid/size`` every N steps;
    keep the history; stop on divergence.

    Nothing but the finiteness check of the loss runs per step (on a CUDA device even that
    waits for the cadence: reading the loss would synchronise every step).

    Args:
        every_n_steps: log every N steps (and at step 1).
        grid: the run's :class:`GridSchedule` (``grid/stage`` in the rows).
        guard: the run's :class:`DivergenceGuard` (default: the grid's, else non-finite only).

    Attributes:
        history: ``{step: {metric: value}}``, the rows of ``history.csv``.
    """

    def __init__(self, every_n_steps: int = 10, grid: GridSchedule | None = None,
                 guard: DivergenceGuard | None = None) -> None:
        self.every_n_steps = max(1, int(every_n_steps))
        self.grid = grid
        self.guard = guard or (grid.guard if grid is not None else DivergenceGuard(0))
        self.history: dict[int, dict[str, float]] = {}

    @property
    def diverged(self) -> str | None:
        """``None``, or why the run stopped: a non-finite loss, or one far above its best."""
        return self.guard.reason

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: RegressionModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        self.on_inner_step(trainer, pl_module)

    def on_inner_step(self, trainer: pl.Trainer, pl_module: RegressionModule) -> None:
        """After every optimiser step (between the steps of a chunk too: see
        :class:`kanplatform.data.datamodule.Chunk`)."""
        step = trainer.global_step
        loss = pl_module.last_loss
        due = step % self.every_n_steps == 0 or step == 1
        if loss is None or (not due and loss.device.type == "cuda"):
            return
        if self.guard.check(step, loss):
            trainer.should_stop = True
            return
        if not due:
            return
        row = {"train/loss": float(loss), **pl_module.train_metrics()}
        size = model_grid_size(pl_module.model)
        if size is not None:
            row["grid/size"] = size
        if self.grid is not None:
            row["grid/stage"] = self.grid.stage_of(max(step - 1, 0)) + 1  # from 1, as Tune's
        self.history.setdefault(step, {}).update(row)
        # Straight to the loggers: Lightning's own logging drops steps off its
        # ``log_every_n_steps`` grid (step 1 among them), and the W&B history must hold the
        # same steps as history.csv. Into ``callback_metrics`` (what Tune's reporter reads)
        # and the bar's metrics directly: ``LightningModule.log`` costs more than a whole
        # small-model step.
        for logger in trainer.loggers:
            logger.log_metrics(row, step=step)
        trainer.callback_metrics.update({k: torch.tensor(v) for k, v in row.items()})
        trainer.progress_bar_metrics["loss"] = row["train/loss"]

    def on_validation_end(self, trainer: pl.Trainer, pl_module: RegressionModule) -> None:
        if trainer.sanity_checking:
            return
        row = self.history.setdefault(trainer.global_step, {})
        for key, value in trainer.callback_metrics.items():
            if key.startswith("val/"):
                row[key] = float(value)

    # the history travels in checkpoints, so a resumed run's history.csv starts at step 1
    def state_dict(self) -> dict[str, Any]:
        return {"history": {step: dict(row) for step, row in self.history.items()},
                "divergence": self.guard.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for step, row in state_dict.get("history", {}).items():
            self.history.setdefault(int(step), {}).update(row)
        self.guard.load_state_dict(state_dict.get("divergence", {}))


def write_checkpoint(trainer: pl.Trainer, path: str | Path) -> None:
    """Write ``trainer``'s resumable checkpoint (weights, optimiser, loops, callback state) to
    ``path`` atomically: into ``.<name>.tmp`` in the same folder, flushed to disk, then
    ``os.replace``d, so ``path`` always holds a whole checkpoint, whenever the process dies.

    Call it on every process of a distributed run (Lightning's ``save_checkpoint`` has a
    barrier); only global rank 0 writes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    trainer.save_checkpoint(tmp, weights_only=False)  # optimiser state too: resumable
    if trainer.is_global_zero:
        with open(tmp, "rb+") as f:  # on disk before the rename: a lost node keeps one too
            os.fsync(f.fileno())
        os.replace(tmp, path)


def _validates_now(trainer: pl.Trainer) -> bool:
    """Whether Lightning runs validation right after the current batch (asked at batch end)."""
    loop = trainer.fit_loop.epoch_loop
    try:
        return bool(loop._should_check_val_fx(trainer.fit_loop._data_fetcher))
    except Exception:  # noqa: BLE001 - another Lightning: save at batch end, lose one val row
        return False


class PeriodicCheckpoint(pl.Callback):
    """Write the run's ``checkpoints/last.ckpt`` during training, so that a run killed without
    warning (SIGKILL, out of memory, a lost node) can be resumed (``--resume``) from it.

    The file is the one :func:`kanplatform.train.fit` writes when a run ends (see
    :func:`write_checkpoint`), written every ``every_n_steps`` global steps and at the end of
    every grid stage (after the grid extension, so a resume continues with the finer grid).
    At a step where Lightning validates, it is written once validation has ended (its
    ``val/rmse`` row is then in the checkpoint's history, and a resume does not validate
    again); otherwise at the end of the batch, after the other callbacks (keep it last in the
    callback list). Not at the last step: ``fit`` writes that checkpoint itself.

    Args:
        path: the checkpoint file (``RUN_DIR/checkpoints/last.ckpt``).
        every_n_steps: N > 0 writes every N steps and at stage ends; 0 (or less) never.
        grid: the run's :class:`GridSchedule` (stage ends); ``None``: every N steps only.

    Attributes:
        times: seconds each checkpoint took to write, in order.
    """

    def __init__(self, path: str | Path, every_n_steps: int, grid: GridSchedule | None = None
                 ) -> None:
        self.path = Path(path)
        self.every_n_steps = int(every_n_steps or 0)
        self.grid = grid
        self.times: list[float] = []
        self._pending: int | None = None

    @property
    def step_cadence(self) -> int:
        """Checkpoints fall on multiples of this (and on the grid's stage ends)."""
        return max(self.every_n_steps, 0)

    def due(self, step: int) -> bool:
        """Whether a checkpoint is written after global step ``step``."""
        if self.every_n_steps <= 0 or step <= 0:
            return False
        if step % self.every_n_steps == 0:
            return True
        return self.grid is not None and step % self.grid.steps_per_stage == 0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: RegressionModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        step = trainer.global_step
        self._pending = None
        if not self.due(step) or trainer.should_stop or 0 < (trainer.max_steps or 0) <= step:
            return
        if _validates_now(trainer):
            self._pending = step
        else:
            self.save(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: RegressionModule) -> None:
        if self._pending is not None and self._pending == trainer.global_step \
                and not trainer.sanity_checking:
            self._pending = None
            self.save(trainer)

    def save(self, trainer: pl.Trainer) -> None:
        """Write the checkpoint now (and time it)."""
        started = time.perf_counter()
        write_checkpoint(trainer, self.path)
        self.times.append(time.perf_counter() - started)


class LoopClock(pl.Callback):
    """Times the training loop itself: ``wall_time_s`` and ``cpu_time_s`` of ``metrics.json``.

    From the first ``on_train_start`` hook to the first ``on_train_end`` hook (keep it first
    in the callback list): the steps, their callbacks and the validations in between, not
    Lightning's set-up before the loop nor what runs at its end (the final spline snapshot,
    the final evaluation, the files), which ``total_time_s`` counts.

    Attributes:
        wall_s: seconds of the loop (perf_counter), None until it ended.
        cpu_s: CPU seconds of this process during the loop (process_time), None until then.
    """

    def __init__(self) -> None:
        self.wall_s: float | None = None
        self.cpu_s: float | None = None
        self._start: tuple[float, float] | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = (time.perf_counter(), time.process_time())

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._start is not None:
            self.wall_s = time.perf_counter() - self._start[0]
            self.cpu_s = time.process_time() - self._start[1]
