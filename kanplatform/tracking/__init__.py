"""Experiment tracking: W&B runs (offline by default), spline snapshots, scaling plots, reports.

Everything here is imported lazily, so ``import kanplatform.tracking`` does not import W&B,
Lightning or matplotlib.

Example:
    >>> from kanplatform import tracking
    >>> loggers = tracking.make_loggers(cfg, run_dir)     # doctest: +SKIP
    >>> callbacks = tracking.make_callbacks(cfg, run_dir)  # doctest: +SKIP
    >>> trainer = pl.Trainer(logger=loggers, callbacks=callbacks)  # doctest: +SKIP
    >>> tracking.finish(loggers)                           # doctest: +SKIP

Offline runs are uploaded later with ``wandb sync --yes RUN_DIR/wandb/offline-run-*``
(see :mod:`kanplatform.tracking.wandb_run`).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "make_loggers": "kanplatform.tracking.loggers",
    "SafeWandbLogger": "kanplatform.tracking.loggers",
    "make_callbacks": "kanplatform.tracking.callbacks",
    "SplineSnapshotCallback": "kanplatform.tracking.callbacks",
    "StepAxisCallback": "kanplatform.tracking.callbacks",
    "snapshot": "kanplatform.tracking.snapshots",
    "spline_curves": "kanplatform.tracking.figures",
    "load_curves": "kanplatform.tracking.figures",
    "plot_scaling": "kanplatform.tracking.figures",
    "log_scaling": "kanplatform.tracking.figures",
    "resolve_mode": "kanplatform.tracking.wandb_run",
    "init_run": "kanplatform.tracking.wandb_run",
    "run_config": "kanplatform.tracking.wandb_run",
    "finish": "kanplatform.tracking.wandb_run",
    "TrackingWarning": "kanplatform.tracking.wandb_run",
    "write_report": "kanplatform.tracking.report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'kanplatform.tracking' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
