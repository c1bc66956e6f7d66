"""Callbacks that watch validation: early stopping, and one console line per validation.

:class:`ValidationLines` replaces the progress bar where stdout is not a terminal (cluster
logs, pipes, CI): a bar there writes a ``\\r`` frame per refresh (~3 MB per 10k steps);
one line per validation with the step, the epoch, the losses and metrics and the throughput
stays small (~150 bytes a line).
"""

from __future__ import annotations

import math
import sys
import time
from typing import IO, Any

from kanplatform._util.lightning import pl
from kanplatform.data.datamodule import batch_samples


class EarlyStopping(pl.Callback):
    """Stop when ``metric`` has not improved by more than ``min_delta`` for ``patience``
    validations in a row.

    Args:
        metric: a logged validation metric (``val/loss``, ``val/accuracy``, ``val/rmse``...).
        patience: validations without improvement before the run stops.
        mode: ``min`` or ``max`` (accuracies).
        min_delta: the improvement that counts.

    Attributes:
        reason: why the run was stopped (for ``metrics.json``), or None.
        best, best_step: the best value seen and its step.
    """

    def __init__(self, metric: str, patience: int, mode: str = "min", min_delta: float = 0.0
                 ) -> None:
        self.metric, self.patience, self.mode = metric, int(patience), mode
        self.min_delta = float(min_delta)
        self.best: float | None = None
        self.best_step: int | None = None
        self.wait = 0
        self.reason: str | None = None

    def _better(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.mode == "max":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.metric)
        if value is None:
            logged = sorted(k for k in trainer.callback_metrics if k.startswith("val/"))
            raise ValueError(f"trainer.early_stopping.metric: {self.metric!r} is not logged by "
                             f"this run; logged: {', '.join(logged)}")
        value = float(value)
        if math.isfinite(value) and self._better(value):
            self.best, self.best_step, self.wait = value, int(trainer.global_step), 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.reason = (f"early stopping at step {trainer.global_step}: {self.metric} did not "
                           f"improve for {self.patience} validations (best {self.best:.4g} at "
                           f"step {self.best_step})")
            trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_step": self.best_step, "wait": self.wait}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = state_dict.get("best")
        self.best_step = state_dict.get("best_step")
        self.wait = int(state_dict.get("wait", 0))


def _fmt(value: float) -> str:
    return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3e}"


class ValidationLines(pl.Callback):
    """One line per validation: ``step 400/2000 epoch 3 train/loss 0.12 val/loss 0.2 ...``.

    Args:
        max_steps: the step budget (shown as ``step N/BUDGET``).
        stream: where the lines go (default ``sys.stderr``, beside the run's other messages).
    """

    step_cadence = 0  # its batch hook counts samples at any step (kanplatform.train.chunking)

    def __init__(self, max_steps: int | None = None, stream: IO[str] | None = None) -> None:
        self.max_steps = max_steps
        self.stream = stream
        self._since: tuple[float, int] | None = None
        self._samples = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._since, self._samples = (time.perf_counter(), int(trainer.global_step)), 0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        self._samples += batch_samples(batch)  # shapes, not a device read

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        step = int(trainer.global_step)
        budget = f"/{self.max_steps}" if self.max_steps else ""
        # mini-batches: the epoch in progress by the step, as Lightning counts it (multi-step
        # batches may run on across epochs, Lightning's epoch then never ends)
        per_epoch = getattr(getattr(trainer, "datamodule", None), "steps_per_epoch", None)
        epoch = max(step - 1, 0) // per_epoch if isinstance(per_epoch, int) and per_epoch > 1 \
            else trainer.current_epoch
        parts = [f"step {step}{budget}", f"epoch {epoch}"]
        loss = getattr(pl_module, "last_loss", None)
        if loss is not None:
            parts.append(f"train/loss {_fmt(float(loss))}")
        for key in sorted(trainer.callback_metrics):
            if key.startswith("val/"):
                parts.append(f"{key} {_fmt(float(trainer.callback_metrics[key]))}")
        now = time.perf_counter()
        if self._since is not None and now > self._since[0] and self._samples:
            parts.append(f"samples/s {self._samples / (now - self._since[0]):,.0f}")
        self._since, self._samples = (now, step), 0
        print("  ".join(parts), file=self.stream or sys.stderr, flush=True)
