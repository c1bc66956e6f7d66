"""Run-directory interpretation: prune a trained KAN, fit formulas, write and log them.

The algorithms are pure functions in :mod:`kanplatform.nn` (``prune``, ``auto_symbolic``,
``formula``); this package applies them to a run directory written by ``kanplatform train``.

Example:
    >>> from kanplatform.interpret import interpret_run
    >>> result = interpret_run("runs/exp_sin_sq-...")      # doctest: +SKIP
    >>> print(result.formula[0], result.metrics["symbolic/test_rmse"])  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

__all__ = ["InterpretResult", "interpret_run", "interpretable"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from kanplatform.interpret import run

        return getattr(run, name)
    raise AttributeError(f"module 'kanplatform.interpret' has no attribute {name!r}")
