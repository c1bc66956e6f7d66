"""Datasets: samples of a registered target, or columns of a user's .csv/.npz file.

Sampling uses local NumPy generators seeded per split (``[seed, split]``), so the test set
does not depend on ``n_train`` and nothing touches global random state.
"""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kanplatform.data.ood import OODSplit, ood_split
from kanplatform.data.targets import get_target

SPLITS = ("train", "val", "test")


class DataError(ValueError):
    """A dataset that cannot be built: missing file, missing column, too few rows."""


@dataclass(frozen=True)
class Splits:
    """Train/validation/test tensors of one dataset.

    Attributes:
        train, val, test: ``(x, y)`` with ``x: (n, n_inputs)`` and ``y: (n, n_outputs)``.
        input_names, target_names: column names.
        name: the dataset name (or file path).
        ranges: the input domain, one ``(low, high)`` per input (``None`` for file data).
        ood: the out-of-domain split (``data.n_ood > 0``), or ``None``.
    """

    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    input_names: tuple[str, ...]
    target_names: tuple[str, ...]
    name: str
    ranges: tuple[tuple[float, float], ...] | None = None
    ood: OODSplit | None = None

    @property
    def n_inputs(self) -> int:
        """Input dimension."""
        return self.train[0].shape[1]

    @property
    def n_outputs(self) -> int:
        """Output dimension."""
        return self.train[1].shape[1]

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the ``(x, y)`` pair of split ``name`` (train, val or test)."""
        return getattr(self, name)

    def to(self, device: Any = None, dtype: torch.dtype | None = None) -> Splits:
        """Return a copy with every tensor moved/cast."""
        def move(pair):
            return tuple(t.to(device=device, dtype=dtype) for t in pair)

        ood = self.ood.to(device=device, dtype=dtype) if self.ood is not None else None
        return Splits(move(self.train), move(self.val), move(self.test),
                      self.input_names, self.target_names, self.name, self.ranges, ood)

    def domain_points(self, n: int = 10000, seed: int = 0) -> torch.Tensor | None:
        """Unlabelled inputs covering the input domain: ``(m, n_inputs)``, or ``None``.

        The domain's corners (up to 10 inputs, else the centre of every face) plus ``n``
        uniform samples. Grid updates add them to the training inputs so adapted grids span
        the whole domain and the range of every hidden activation over it, not just the
        training samples' extremes (test points beyond those meet a clamped spline: at G=20
        on exp_sin_sq this alone cost a factor ~10 in test RMSE). ``None`` for file data.
        """
        if self.ranges is None:
            return None
        x = self.train[0]
        low = torch.tensor([r[0] for r in self.ranges], dtype=torch.float64)
        high = torch.tensor([r[1] for r in self.ranges], dtype=torch.float64)
        d = len(self.ranges)
        if d <= 10:
            bits = torch.tensor([[(i >> j) & 1 for j in range(d)] for i in range(2**d)],
                                dtype=torch.float64)
        else:
            eye = torch.eye(d, dtype=torch.float64)
            bits = torch.cat([0.5 + 0.5 * eye, 0.5 - 0.5 * eye])
        rng = np.random.default_rng([seed, 4])
        uniform = torch.as_tensor(rng.random((n, d)))
        points = low + (high - low) * torch.cat([bits, uniform])
        return points.to(dtype=x.dtype, device=x.device)


def make_dataset(
    name: str,
    n_train: int = 1000,
    n_val: int = 1000,
    n_test: int = 1000,
    noise: float = 0.0,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Splits:
    """Sample a registered target uniformly in its input ranges.

    Args:
        name: a key of :data:`kanplatform.data.TARGETS`, e.g. ``"exp_sin_sq"``.
        n_train, n_val, n_test: samples per split.
        noise: std of Gaussian noise added to train and validation targets (test stays clean).
        seed: the same seed gives the same tensors, bit for bit.
        dtype: torch dtype of the returned tensors (targets are computed in float64).

    Returns:
        :class:`Splits`.

    Example:
        >>> d = make_dataset("exp_sin_sq", n_train=1000, n_val=100, n_test=1000)
        >>> d.train[0].shape, d.train[1].shape
        (torch.Size([1000, 2]), torch.Size([1000, 1]))
    """
    target = get_target(name)
    low = np.array([r[0] for r in target.ranges])
    high = np.array([r[1] for r in target.ranges])
    pairs = []
    for index, (split, n) in enumerate(zip(SPLITS, (n_train, n_val, n_test))):
        rng = np.random.default_rng([seed, index])
        x = low + (high - low) * rng.random((n, target.n_inputs))
        y = target(x)
        if noise and split != "test":
            y = y + noise * rng.standard_normal(y.shape)
        pairs.append((torch.as_tensor(x, dtype=dtype), torch.as_tensor(y, dtype=dtype)))
    return Splits(*pairs, target.input_names, tuple(f"y{i + 1}" for i in range(target.n_outputs)),
                  name, target.ranges)


def read_columns(path: str | Path) -> dict[str, np.ndarray]:
    """Read a .csv (header row of names) or .npz (one 1-D array per name) as columns.

    Raises:
        DataError: the file is missing, of another type, empty, non-numeric (the column and
            line are named) or ragged.
    """
    from kanplatform.data.checks import read_table

    return read_table(path)


def column_names(path: str | Path) -> list[str]:
    """Return the column names of a .csv/.npz file (a CSV's header row only).

    Raises:
        DataError: missing, unreadable or empty file.
    """
    path = Path(path)
    if path.suffix == ".csv" and path.is_file():
        try:
            with path.open(newline="") as f:
                header = [h.strip() for h in next(csv.reader(f), [])]
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            raise DataError(f"data.path: cannot read {path} ({type(err).__name__}: {err})") \
                from None
        if not any(header):
            raise DataError(f"data.path: {path} is empty; expected a header row of column "
                            "names and one row of numbers per sample")
        return header
    return list(read_columns(path))


def load_file(
    path: str | Path,
    inputs: list[str],
    targets: list[str],
    n_train: int,
    n_val: int,
    n_test: int,
    noise: float = 0.0,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    drop_nonfinite: bool = False,
) -> Splits:
    """Split the rows of a user's file into train/val/test after a seeded shuffle.

    Args:
        drop_nonfinite: leave out rows with NaN/inf values (with a warning) instead of
            refusing the file.

    Raises:
        DataError: missing file or column, non-numeric or non-finite values (see
            :func:`kanplatform.data.checks.file_table`), or fewer rows than
            ``n_train + n_val + n_test``.
    """
    from kanplatform.data.checks import file_table, warn_dropped

    table = file_table(path, list(inputs), list(targets), drop_nonfinite,
                       need=n_train + n_val + n_test)
    warn_dropped(path, table)
    x, y = table.x, table.y
    rng = np.random.default_rng([seed, 3])
    order = rng.permutation(len(x))
    bounds = np.cumsum([0, n_train, n_val, n_test])
    pairs = []
    for index, split in enumerate(SPLITS):
        rows = order[bounds[index]:bounds[index + 1]]
        ys = y[rows]
        if noise and split != "test":
            ys = ys + noise * np.random.default_rng([seed, index]).standard_normal(ys.shape)
        pairs.append((torch.as_tensor(x[rows], dtype=dtype), torch.as_tensor(ys, dtype=dtype)))
    return Splits(*pairs, tuple(inputs), tuple(targets), str(path))


def dataset_dims(data_cfg: Any) -> tuple[int, int]:
    """Return ``(n_inputs, n_outputs)`` of a ``data`` config section without sampling."""
    if data_cfg.dataset == "file":
        return len(data_cfg.inputs), len(data_cfg.targets)
    target = get_target(data_cfg.dataset)
    return target.n_inputs, target.n_outputs


def dataset_from_config(data_cfg: Any, dtype: torch.dtype = torch.float32) -> Splits:
    """Build the :class:`Splits` a ``data`` config section describes."""
    common = dict(n_train=data_cfg.n_train, n_val=data_cfg.n_val, n_test=data_cfg.n_test,
                  noise=data_cfg.noise, seed=data_cfg.seed, dtype=dtype)
    if data_cfg.dataset == "file":
        return load_file(data_cfg.path, list(data_cfg.inputs), list(data_cfg.targets),
                         drop_nonfinite=bool(data_cfg.get("drop_nonfinite", False)), **common)
    splits = make_dataset(data_cfg.dataset, **common)
    n_ood = int(getattr(data_cfg, "n_ood", 0) or 0)
    if n_ood > 0:
        shell = tuple(float(r) for r in data_cfg.ood_shell)
        ood = ood_split(data_cfg.dataset, n_ood, shell, seed=data_cfg.seed, dtype=dtype)
        splits = dataclasses.replace(splits, ood=ood)
    return splits
