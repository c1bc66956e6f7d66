"""Training: the LightningModule, grid-schedule callbacks, ``fit(cfg)`` and checkpoints.

Example:
    >>> from kanplatform.config import load_config
    >>> from kanplatform.train import fit
    >>> result = fit(load_config("configs/experiment/quick.yaml"))  # doctest: +SKIP
    >>> result.run_dir, result.metrics["final"]["test/rmse"]          # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "fit": "kanplatform.train.fitting",
    "FitResult": "kanplatform.train.fitting",
    "fit_stacked": "kanplatform.train.stacked",
    "stack_reason": "kanplatform.train.stacked",
    "ResumeError": "kanplatform.train.checkpoint",
    "RegressionModule": "kanplatform.train.module",
    "GridSchedule": "kanplatform.train.callbacks",
    "RunRecorder": "kanplatform.train.callbacks",
    "load_model": "kanplatform.train.checkpoint",
    "save_model": "kanplatform.train.checkpoint",
    "make_optimizer": "kanplatform.train.optim",
    "build_model_from_config": "kanplatform.train.models",
    "model_spec": "kanplatform.train.models",
    "new_run_dir": "kanplatform.train.rundir",
    "apply_run_overrides": "kanplatform.train.resolve",
    "check_run_config": "kanplatform.train.resolve",
    "load_run_config": "kanplatform.train.resolve",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    # Lightning is heavy: import the submodules only when a name is used
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'kanplatform.train' has no attribute {name!r}")
