"""kanplatform: train, search and compare Kolmogorov-Arnold Networks and MLPs.

Heavy parts (Lightning, Ray, W&B) are imported lazily so that ``import kanplatform``
and ``kanplatform --help`` stay fast. Importing it sets ``OMP_WAIT_POLICY=PASSIVE`` and
``GOMP_SPINCOUNT=10000`` where the environment has no ``OMP_WAIT_POLICY``
(:mod:`kanplatform._util.cpus`): effective when it comes before ``import torch``.

Example:
    >>> import kanplatform
    >>> model = kanplatform.load("runs/my-run")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kanplatform._util.cpus import passive_openmp

# before anything loads torch's OpenMP runtime, which reads these once: idle OpenMP threads
# sleep rather than spin, so under CPU contention 2 threads are not many times slower than 1
passive_openmp()

__version__ = "0.1.0"

__all__ = ["__version__", "load"]


def load(run_dir: str | Path) -> Any:
    """Return the trained model of a run directory, ready to predict in original units.

    Args:
        run_dir: the directory ``kanplatform train`` printed (or its ``model.pt`` /
            ``checkpoints/last.ckpt``).

    Returns:
        A :class:`kanplatform.train.predictor.TrainedModel` (a ``torch.nn.Module``) in eval
        mode, on the CPU: ``model(x)`` maps a tensor or array in original units to outputs in
        original units (logits for classification), ``model.predict(array_or_dataframe)``
        returns NumPy predictions (class labels for classification, ``predict_proba`` the
        probabilities); the network's own attributes (``width``, ``grid_size``...) are there.

    Raises:
        FileNotFoundError: if ``run_dir`` holds no checkpoint.

    Example:
        >>> model = kanplatform.load("runs/my-run")   # doctest: +SKIP
        >>> y = model.predict(x)                       # doctest: +SKIP
    """
    from kanplatform.train.predictor import load as load_trained

    return load_trained(run_dir)
