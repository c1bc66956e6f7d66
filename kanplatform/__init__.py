"""kanplatform: train, search and compare Kolmogorov-Arnold Networks and MLPs.

Heavy parts (Lightning, Ray, W&B) are imported lazily so that ``import kanplatform``
and ``kanplatform --help`` stay fast.

Example:
    >>> import kanplatform
    >>> model = kanplatform.load("runs/my-run")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "load"]


def load(run_dir: str | Path) -> Any:
    """Return the trained model (a ``torch.nn.Module``) of a finished run directory.

    Args:
        run_dir: the directory ``kanplatform train`` printed.

    Returns:
        The model in eval mode, on the CPU, with its trained weights and grids.

    Raises:
        FileNotFoundError: if ``run_dir`` holds no checkpoint.
    """
    from kanplatform.train.checkpoint import load_model

    return load_model(run_dir)
