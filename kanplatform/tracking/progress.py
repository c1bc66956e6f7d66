"""A run's progress while it trains: ``RUN_DIR/live.json``, rewritten atomically every few seconds.

``metrics.json`` and ``history.csv`` are written when a run ends; until then a watcher (the
live report of a search, ``kanplatform report --watch`` on another machine) would see only
``config.yaml``. :class:`LiveProgress` keeps ``live.json`` current instead: the step, the latest
metrics, the curve so far and the grid stages done. Readers (:mod:`.livefile`, no Lightning
needed) prefer ``metrics.json`` once it exists: ``live.json`` never overrides what a run
recorded at its end.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from pathlib import Path
from typing import Any

from kanplatform._util.lightning import pl
from kanplatform.tracking.livefile import LIVE_FILE, read_live, write_atomic

MAX_POINTS = 1000  # per curve: halved (every other point kept) beyond this


def _float(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


class LiveProgress(pl.Callback):
    """Keep ``run_dir/live.json`` current while the run trains.

    Written after each validation, at most every ``every_s`` seconds between them, and once
    more at the end of training (``status: ended``; ``metrics.json`` says how it ended).

    Args:
        run_dir: the run directory.
        every_s: least seconds between two writes during training.
    """

    def __init__(self, run_dir: str | Path, every_s: float = 2.0) -> None:
        self.path = Path(run_dir) / LIVE_FILE
        self.every_s = float(every_s)
        self.started = time.time()
        self.history: dict[str, list[float | None]] = {"step": []}
        self._last_write = 0.0
        self._rank0 = True

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._rank0 = trainer.is_global_zero
        step = int(trainer.global_step)
        previous = read_live(self.path.parent) if step else None  # a resumed run: its curve
        if previous and isinstance(previous.get("history"), dict):
            old = previous["history"]
            keep = [i for i, s in enumerate(old.get("step", [])) if isinstance(s, int | float)
                    and s < step]
            self.history = {k: [v[i] for i in keep] for k, v in old.items()
                            if isinstance(v, list) and len(v) == len(old.get("step", []))}
            self.history.setdefault("step", [])
            self.started = float(previous.get("started") or self.started)
        self.write(trainer, "running", force=True)

    def _point(self, trainer: pl.Trainer, keys: tuple[str, ...]) -> None:
        metrics = trainer.callback_metrics
        row = {k: _float(metrics[k]) for k in keys if k in metrics}
        if not any(v is not None for v in row.values()):
            return
        step = int(trainer.global_step)
        steps = self.history["step"]
        if steps and steps[-1] == step:  # the same step: fill in its cells
            for k, v in row.items():
                self.history.setdefault(k, [None] * len(steps))[-1] = v
            return
        steps.append(step)
        for k in set(self.history) - {"step"} | set(row):
            col = self.history.setdefault(k, [None] * (len(steps) - 1))
            col.append(row.get(k))
        if len(steps) > MAX_POINTS:
            self.history = {k: v[::2] for k, v in self.history.items()}

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        self.on_inner_step(trainer, pl_module)

    def on_inner_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """After every optimiser step, between those of a multi-step batch too."""
        every = max(1, int(getattr(trainer, "log_every_n_steps", 1) or 1))
        if trainer.global_step % every == 0 or trainer.global_step == 1:
            self._point(trainer, ("train/loss", "train/rmse", "grid/size"))
        self.write(trainer, "running")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self._point(trainer, ("val/rmse", "val/accuracy"))
        self.write(trainer, "running", force=True)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.write(trainer, "ended", force=True)

    def write(self, trainer: pl.Trainer, status: str, force: bool = False) -> None:
        """Write ``live.json`` now (``force``), or if ``every_s`` passed since the last write."""
        now = time.time()
        if not self._rank0 or (not force and now - self._last_write < self.every_s):
            return
        self._last_write = now
        latest = {k: _float(v) for k, v in trainer.callback_metrics.items()
                  if "/" in k and _float(v) is not None}
        doc = {
            "status": status,
            "step": int(trainer.global_step),
            "max_steps": int(trainer.max_steps or 0) or None,
            "started": self.started,
            "updated": now,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "latest": latest,
            "history": self.history,
            "stages": _stages(trainer),
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, json.dumps(doc, default=str))
        except OSError:  # a watcher's convenience: never a reason to stop training
            pass


def _stages(trainer: pl.Trainer) -> list[dict[str, Any]]:
    """The grid stages done so far (the rows ``metrics.json`` will hold as ``stages``)."""
    for cb in trainer.callbacks:
        stages = getattr(cb, "stages", None)
        if type(cb).__name__ == "GridSchedule" and isinstance(stages, list):
            return [{k: v for k, v in s.items() if isinstance(v, int | float | str | None)}
                    for s in stages if isinstance(s, dict)]
    return []
