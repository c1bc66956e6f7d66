"""Datasets: samples of a registered target, a real dataset, or a user's file.

Sampling uses local NumPy generators seeded per split (``[seed, split]``), so the test set
does not depend on ``n_train`` and nothing touches global random state. Real and file data
are split by :mod:`kanplatform.data.splitting` (every row by default) and normalised by
:mod:`kanplatform.data.normalize` (fitted on the training split).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
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
        train, val, test: ``(x, y)`` with ``x: (n, n_inputs)`` and ``y: (n, n_outputs)``
            (regression) or ``y: (n,)`` int64 class indices (classification).
        input_names, target_names: column names.
        name: the dataset name (or file path).
        ranges: the input domain, one ``(low, high)`` per input (``None`` for file data), in
            model units.
        task: ``regression`` or ``classification``.
        classes: the class labels (index ``i`` of ``y`` is ``classes[i]``), or None.
        normalizer: the fitted normalisation already applied to these tensors, or None.
        ood: the out-of-domain split (``data.n_ood > 0``), or ``None``.
    """

    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    input_names: tuple[str, ...]
    target_names: tuple[str, ...]
    name: str
    ranges: tuple[tuple[float, float], ...] | None = None
    task: str = "regression"
    classes: tuple[Any, ...] | None = None
    normalizer: Any = None
    ood: OODSplit | None = None

    @property
    def n_inputs(self) -> int:
        """Input dimension."""
        return self.train[0].shape[1]

    @property
    def n_outputs(self) -> int:
        """Output dimension (the number of classes for classification)."""
        if self.classes is not None:
            return len(self.classes)
        return self.train[1].shape[1]

    @property
    def sizes(self) -> dict[str, int]:
        """``{"data/n_train": ..., "data/n_val": ..., "data/n_test": ...}``."""
        return {f"data/n_{s}": int(self.split(s)[0].shape[0]) for s in SPLITS}

    def info(self) -> dict[str, Any]:
        """What predicting needs besides the weights (``model.pt``, ``RUN_DIR/data.json``)."""
        norm = self.normalizer
        return {"task": self.task, "input_names": list(self.input_names),
                "target_names": list(self.target_names),
                "classes": None if self.classes is None else list(self.classes),
                "normalizer": None if norm is None else norm.to_dict(), **self.sizes}

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the ``(x, y)`` pair of split ``name`` (train, val or test)."""
        return getattr(self, name)

    def to(self, device: Any = None, dtype: torch.dtype | None = None) -> Splits:
        """Return a copy with every tensor moved, floating ones cast (labels stay int64)."""
        def move(pair):
            return tuple(t.to(device=device, dtype=dtype if t.is_floating_point() else None)
                         for t in pair)

        ood = self.ood.to(device=device, dtype=dtype) if self.ood is not None else None
        return replace(self, train=move(self.train), val=move(self.val), test=move(self.test),
                       ood=ood)

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
    """Every column of a .csv/.npz/.parquet file as float64 (non-numeric columns refused).

    Raises:
        DataError: the file is missing, of another type, empty, non-numeric (the column and
            line are named) or ragged.
    """
    from kanplatform.data.checks import file_table, read_table

    names = [n for n in read_table(path) if not n.startswith("__")]
    table = file_table(path, names[:1], names[1:] or names[:1], drop_nonfinite=False)
    values = np.concatenate([table.x, table.y], axis=1)
    return {n: values[:, i] for i, n in enumerate(names[:1] + (names[1:] or names[:1]))}


def column_names(path: str | Path) -> list[str]:
    """The column names of a data file (a CSV's header row only).

    Raises:
        DataError: missing, unreadable or empty file.
    """
    from kanplatform.data.checks import column_list

    return column_list(path)


def _as_splits(parts: list[tuple[np.ndarray, np.ndarray]], input_names: tuple[str, ...],
               target_names: tuple[str, ...], name: str, task: str, dtype: torch.dtype,
               noise: float = 0.0, seed: int = 0) -> Splits:
    """Tensors from ``[(x, y)]`` of train/val/test; labels encoded from the training split."""
    from kanplatform.data.splitting import encode_labels

    classes = None
    if task == "classification":
        classes, codes = encode_labels(*(y for _, y in parts), where=f"data.targets ({name})")
        ys = [torch.as_tensor(c, dtype=torch.int64) for c in codes]
    else:
        ys = []
        for index, (_, y) in enumerate(parts):
            y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
            if noise and SPLITS[index] != "test":
                y = y + noise * np.random.default_rng([seed, index]).standard_normal(y.shape)
            ys.append(torch.as_tensor(y, dtype=dtype))
    pairs = [(torch.as_tensor(np.asarray(x, dtype=np.float64), dtype=dtype), y)
             for (x, _), y in zip(parts, ys)]
    return Splits(*pairs, tuple(input_names), tuple(target_names), name, None, task, classes)


def load_file(
    path: str | Path,
    inputs: list[str],
    targets: list[str],
    n_train: int | None = None,
    n_val: int | None = None,
    n_test: int | None = None,
    noise: float = 0.0,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    drop_nonfinite: bool = False,
    task: str = "regression",
    split: tuple[float, float, float] = (0.8, 0.1, 0.1),
) -> Splits:
    """Split the rows of a user's file into train/val/test after a seeded shuffle.

    Args:
        path: a ``.csv``, ``.npz`` or ``.parquet`` file.
        inputs, targets: column names (classification: one label column).
        n_train, n_val, n_test: rows per split; None takes the fraction in ``split`` (every
            row when all three are None). Validation and test rows do not depend on
            ``n_train``.
        noise: std of Gaussian noise added to train/val regression targets.
        seed: the shuffle (stratified by class for classification).
        drop_nonfinite: leave out rows with NaN/inf values (with a warning) instead of
            refusing the file.
        task: ``regression`` or ``classification``.
        split: fractions for the sizes left None.

    Raises:
        DataError: missing file or column, non-numeric or non-finite values (see
            :func:`kanplatform.data.checks.file_table`), a single class, or fewer rows than
            the sizes need.
    """
    from kanplatform.data.checks import file_table, warn_dropped
    from kanplatform.data.splitting import split_counts, split_rows

    sizes = (n_train, n_val, n_test)
    need = sum(sizes) if all(s is not None for s in sizes) else None
    table = file_table(path, list(inputs), list(targets), drop_nonfinite, need, task)
    warn_dropped(path, table)
    counts = split_counts(len(table.x), split, *sizes, where=f"data.path: {path}")
    labels = table.y if task == "classification" else None
    rows = split_rows(len(table.x), counts, seed, labels)
    parts = [(table.x[r], table.y[r]) for r in rows]
    return _as_splits(parts, tuple(inputs), tuple(targets), str(path), task, dtype, noise, seed)


def _load_real(data_cfg: Any, spec: Any, dtype: torch.dtype) -> Splits:
    from kanplatform.config.validate import size_value
    from kanplatform.data.splitting import split_counts, split_rows

    table = spec.load(data_cfg)
    sizes = [size_value(data_cfg.get(k)) for k in ("n_train", "n_val", "n_test")]
    split = [float(f) for f in data_cfg.get("split", (0.8, 0.1, 0.1))]
    seed = int(data_cfg.get("seed", 0))
    where = f"data.dataset {spec.name}"
    classify = spec.task == "classification"
    if table.x_test is None:
        counts = split_counts(len(table.x), split, *sizes, where=where)
        rows = split_rows(len(table.x), counts, seed, table.y if classify else None)
        parts = [(table.x[r], table.y[r]) for r in rows]
    else:  # the official test part is the test split; validation comes from training rows
        n_train, n_val, n_test = sizes
        counts = split_counts(len(table.x), [split[0], split[1], 0.0], n_train, n_val, 0,
                              where=where)
        train, val, _ = split_rows(len(table.x), counts, seed, table.y if classify else None)
        n_test = len(table.x_test) if n_test is None else n_test
        if n_test > len(table.x_test):
            raise DataError(f"data.n_test: {spec.name} has {len(table.x_test)} test rows, "
                            f"fewer than {n_test}")
        test = split_rows(len(table.x_test), (0, 0, n_test), seed,
                          table.y_test if classify else None, stream=5)[2]
        parts = [(table.x[train], table.y[train]), (table.x[val], table.y[val]),
                 (table.x_test[test], table.y_test[test])]
    return _as_splits(parts, table.input_names, table.target_names, spec.name, spec.task,
                      dtype, float(data_cfg.get("noise", 0.0) or 0.0), seed)


def dataset_task(data_cfg: Any, task: str | None = None) -> str:
    """The task a ``data`` section trains: a real dataset's own, else ``task`` (the run's)."""
    from kanplatform.data.real import get_real

    spec = get_real(data_cfg.dataset)
    return spec.task if spec is not None else (task or "regression")


def dataset_dims(data_cfg: Any, task: str = "regression") -> tuple[int, int]:
    """``(n_inputs, n_outputs)`` of a ``data`` section without building the splits.

    ``n_outputs`` is the number of classes for classification (a file's label column is
    read, checked and cached for that).
    """
    from kanplatform.data.checks import file_classes
    from kanplatform.data.real import get_real

    if data_cfg.dataset == "file":
        if task == "classification":
            return len(data_cfg.inputs), file_classes(data_cfg)
        return len(data_cfg.inputs), len(data_cfg.targets)
    spec = get_real(data_cfg.dataset)
    if spec is not None:
        return spec.n_inputs(data_cfg), spec.n_outputs
    target = get_target(data_cfg.dataset)
    return target.n_inputs, target.n_outputs


def dataset_from_config(data_cfg: Any, dtype: torch.dtype = torch.float32,
                        task: str = "regression",
                        grid_range: tuple[float, float] | Any = (-1.0, 1.0)) -> Splits:
    """Build the :class:`Splits` a ``data`` config section describes, normalised.

    Args:
        data_cfg: the ``data`` section.
        dtype: floating dtype of the tensors.
        task: the run's task (``regression``/``classification``; real datasets have their own).
        grid_range: where ``normalize: minmax`` (and ``auto`` for file and real data) puts the
            inputs (the model's ``grid_range``).

    Returns:
        Normalised splits; ``splits.normalizer`` is the map fitted on the training split.
    """
    from kanplatform.config.validate import size_value
    from kanplatform.data.real import get_real

    spec = get_real(data_cfg.dataset)
    if data_cfg.dataset == "file":
        sizes = {k: size_value(data_cfg.get(k)) for k in ("n_train", "n_val", "n_test")}
        splits = load_file(data_cfg.path, list(data_cfg.inputs), list(data_cfg.targets),
                           noise=data_cfg.noise, seed=data_cfg.seed, dtype=dtype,
                           drop_nonfinite=bool(data_cfg.get("drop_nonfinite", False)),
                           task=task, split=tuple(data_cfg.get("split", (0.8, 0.1, 0.1))),
                           **sizes)
        synthetic = False
    elif spec is not None:
        splits = _load_real(data_cfg, spec, dtype)
        synthetic = False
    else:
        sizes = {k: size_value(data_cfg.get(k)) or 1000 for k in ("n_train", "n_val", "n_test")}
        splits = make_dataset(data_cfg.dataset, noise=data_cfg.noise, seed=data_cfg.seed,
                              dtype=dtype, **sizes)
        synthetic = True
        n_ood = int(data_cfg.get("n_ood", 0) or 0)
        if n_ood > 0:  # inputs in a shell outside the training box (kanplatform.data.ood)
            shell = tuple(float(r) for r in data_cfg.ood_shell)
            splits = replace(splits, ood=ood_split(data_cfg.dataset, n_ood, shell,
                                                   seed=data_cfg.seed, dtype=dtype))
    method = str(data_cfg.get("normalize", "auto"))
    if method == "auto":
        method = "none" if synthetic else "minmax"
    return normalize_splits(splits, method, tuple(float(v) for v in grid_range))


def normalize_splits(splits: Splits, method: str,
                     grid_range: tuple[float, float] = (-1.0, 1.0)) -> Splits:
    """Fit a :class:`~kanplatform.data.normalize.Normalizer` on the training split and apply
    it to every split (and to the input domain)."""
    from kanplatform.data.normalize import Normalizer

    x, y = splits.train
    norm = Normalizer.fit(x, y if splits.task == "regression" else None, method, grid_range)
    if norm.identity:
        return replace(splits, normalizer=norm)

    def apply(pair: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        px, py = pair
        return norm.transform_x(px), norm.transform_y(py) if py.is_floating_point() else py

    ood = splits.ood
    if ood is not None:  # the out-of-domain split is test data: the same map
        ood = replace(ood, x=norm.transform_x(ood.x), y=norm.transform_y(ood.y))
    return replace(splits, train=apply(splits.train), val=apply(splits.val),
                   test=apply(splits.test), ranges=norm.transform_ranges(splits.ranges),
                   normalizer=norm, ood=ood)


def dataset_for_run(cfg: Any, dtype: torch.dtype = torch.float32) -> Splits:
    """The normalised splits a run config trains on (its data, task and grid range)."""
    task = dataset_task(cfg.data, cfg.get("task", "regression"))
    grid_range = tuple(cfg.model.get("grid_range", (-1.0, 1.0)) or (-1.0, 1.0))
    return dataset_from_config(cfg.data, dtype=dtype, task=task, grid_range=grid_range)
