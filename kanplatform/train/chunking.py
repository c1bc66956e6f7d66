"""How many optimiser steps one Lightning batch runs (K, ``trainer/steps_per_batch``).

Lightning's batch loop (fetch, hooks, progress tracking, logger connector) costs ~1 ms per
batch, as much as a small model's whole Adam step. With K > 1 the data module yields
:class:`~kanplatform.data.datamodule.Chunk` s of K index batches and the training step runs
them as K optimiser steps, each its own global step, so that loop runs once per K steps.

Exactness comes first: everything Lightning or a callback does at a batch boundary must
fall on a chunk boundary. K is the largest divisor of every step cadence of the run (the
step budget, an epoch's batches, validation, checkpoints, grid stages and updates, and
the ``step_cadence`` of each callback with batch hooks) up to :data:`MAX_STEPS_PER_BATCH`.
A callback whose batch hooks need every step either runs between the steps of a chunk
(it defines ``on_inner_step(trainer, module)``: the run's recorder, live progress) or, if
it declares neither, makes K = 1 (a user's callback we know nothing about).
Full-batch runs (LBFGS, or one batch) keep K = 1.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

MAX_STEPS_PER_BATCH = 16  # past ~16 the per-batch cost is already <10% of a tiny step's
_BATCH_HOOKS = ("on_train_batch_start", "on_train_batch_end")


def callback_cadence(callback: Any) -> int | None:
    """The steps ``callback``'s batch hooks must see: 0 (any chunk boundary will do), a
    cadence (multiples of it), or None (every step: K must be 1)."""
    from pytorch_lightning.utilities.model_helpers import is_overridden

    from kanplatform._util.lightning import pl

    if not any(is_overridden(hook, callback, pl.Callback) for hook in _BATCH_HOOKS):
        return 0
    cadence = getattr(callback, "step_cadence", None)
    if cadence is not None:
        return int(cadence)
    return 0 if hasattr(callback, "on_inner_step") else None


def steps_per_batch(cadences: Iterable[int | None], callbacks: Iterable[Any] = (),
                    limit: int = MAX_STEPS_PER_BATCH) -> int:
    """K: the largest divisor of every cadence (0 = none) that is at most ``limit``; 1 when
    a cadence is None or a callback needs every step (see :func:`callback_cadence`)."""
    g = 0
    for cadence in [*cadences, *(callback_cadence(cb) for cb in callbacks)]:
        if cadence is None:
            return 1
        g = math.gcd(g, int(cadence))
    if g <= 1:
        return 1
    return max(k for k in range(1, min(g, limit) + 1) if g % k == 0)
