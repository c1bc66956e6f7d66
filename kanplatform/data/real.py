"""Real datasets by name: scikit-learn's bundled tables and torchvision's image sets.

``digits``, ``wine``, ``breast_cancer``, ``iris`` (classification) and ``diabetes``
(regression) ship inside scikit-learn and are read by its own loaders (no network);
``mnist``, ``fashion_mnist`` and ``cifar10`` are read from ``data.root``
(:mod:`kanplatform.data.vision`). Each gives rows and, for the image sets, an official test
part; :func:`kanplatform.data.dataset_from_config` splits and normalises them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from kanplatform.data.datasets import DataError


@dataclass(frozen=True)
class RealTable:
    """Rows of a real dataset before splitting.

    Attributes:
        x, y: inputs ``(n, d)`` and targets (labels ``(n,)`` or values ``(n, k)``).
        x_test, y_test: an official test part, or None.
        input_names, target_names: column names.
    """

    x: np.ndarray
    y: np.ndarray
    input_names: tuple[str, ...]
    target_names: tuple[str, ...]
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None


@dataclass(frozen=True)
class RealDataset:
    """A registered real dataset: its task, sizes and loader."""

    name: str
    task: str
    description: str
    n_inputs: Callable[[Any], int]
    n_outputs: int  # classes for classification
    load: Callable[[Any], RealTable]
    n_rows: int | None = None  # known without loading (the bundled tables); None: read them


def _sklearn(loader_name: str, named_classes: bool) -> Callable[[Any], RealTable]:
    def load(data_cfg: Any) -> RealTable:
        try:
            from sklearn import datasets
        except ImportError:
            raise DataError(f"data.dataset: {data_cfg.dataset} ships with scikit-learn, which "
                            "is not installed (pip install scikit-learn)") from None
        bunch = getattr(datasets, loader_name)()
        x = np.asarray(bunch.data, dtype=np.float64)
        names = getattr(bunch, "feature_names", None)
        names = tuple(str(n) for n in (names if names is not None and len(names) else
                                       (f"x{i}" for i in range(x.shape[1]))))
        target = np.asarray(bunch.target)
        if named_classes:  # class names as labels: predict() says "setosa", not 0
            target = np.asarray(bunch.target_names)[target]
        if target.dtype.kind == "f":
            return RealTable(x, target.reshape(len(x), -1), names, ("target",))
        return RealTable(x, target, names, ("label",))

    return load


def _sklearn_dims(loader_name: str) -> Callable[[Any], int]:
    dims = {"load_digits": 64, "load_wine": 13, "load_breast_cancer": 30, "load_iris": 4,
            "load_diabetes": 10}
    return lambda data_cfg: dims[loader_name]


def _vision(name: str) -> Callable[[Any], RealTable]:
    def load(data_cfg: Any) -> RealTable:
        from kanplatform.data.vision import VISION, load_vision, pixel_names

        pool = int(data_cfg.get("pool", 1) or 1)
        x, y, xt, yt = load_vision(name, data_cfg.get("root"), bool(data_cfg.get("download")),
                                   pool)
        classes = VISION[name].classes
        if isinstance(classes[0], str):  # class names as labels: predict() says "Bag", not 8
            names = np.asarray(classes, dtype=str)
            y, yt = names[y], names[yt]
        return RealTable(x, y, pixel_names(name, pool), ("label",), xt, yt)

    return load


def _vision_dims(name: str) -> Callable[[Any], int]:
    def dims(data_cfg: Any) -> int:
        from kanplatform.data.vision import VISION

        return VISION[name].n_inputs(int(data_cfg.get("pool", 1) or 1))

    return dims


REAL_DATASETS: dict[str, RealDataset] = {}


def _add(name: str, task: str, description: str, n_inputs: Callable[[Any], int],
         n_outputs: int, load: Callable[[Any], RealTable], n_rows: int | None = None) -> None:
    REAL_DATASETS[name] = RealDataset(name, task, description, n_inputs, n_outputs, load,
                                      n_rows)


for _name, _loader, _classes, _named, _rows, _text in (
        ("digits", "load_digits", 10, False, 1797, "8x8 handwritten digits, 64 inputs"),
        ("wine", "load_wine", 3, True, 178, "wine cultivars, 13 inputs"),
        ("breast_cancer", "load_breast_cancer", 2, True, 569,
         "Wisconsin breast cancer, 30 inputs"),
        ("iris", "load_iris", 3, True, 150, "iris species, 4 inputs")):
    _add(_name, "classification", f"{_text}, {_rows} rows", _sklearn_dims(_loader), _classes,
         _sklearn(_loader, _named), _rows)
_add("diabetes", "regression", "disease progression, 10 inputs, 442 rows",
     _sklearn_dims("load_diabetes"), 1, _sklearn("load_diabetes", False), 442)
for _name, _text in (("mnist", "MNIST digits, 60000 + 10000 images 28x28"),
                     ("fashion_mnist", "Fashion-MNIST, 60000 + 10000 images 28x28"),
                     ("cifar10", "CIFAR-10, 50000 + 10000 colour images 32x32")):
    _add(_name, "classification", _text, _vision_dims(_name), 10, _vision(_name))


def get_real(name: str) -> RealDataset | None:
    """The registered real dataset ``name``, or None."""
    return REAL_DATASETS.get(name)
