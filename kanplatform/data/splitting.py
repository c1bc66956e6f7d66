"""Splitting rows into train/validation/test: sizes from fractions or counts, seeded, stratified.

Every row is used by default: ``data.split: [0.8, 0.1, 0.1]`` sizes validation and test
(rounded, at least one row each) and the training split takes the rest; a count set in
``data.n_train``/``n_val``/``n_test`` replaces that split's share. The order is a seeded
shuffle; for classification it is interleaved by class, so that every prefix of it (and so
every split) holds each class in proportion — stratified without per-class bookkeeping.
Validation and test rows come first in that order, so they do not depend on ``n_train``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kanplatform.data.datasets import DataError


def split_counts(n_rows: int, split: Sequence[float], n_train: int | None = None,
                 n_val: int | None = None, n_test: int | None = None, *,
                 where: str = "data") -> tuple[int, int, int]:
    """Rows per split.

    Args:
        n_rows: rows available.
        split: fractions ``[train, val, test]`` for the sizes left ``None``.
        n_train, n_val, n_test: fixed sizes; ``None`` sizes validation and test by their
            fraction of ``n_rows`` and gives training every row the other two leave.
        where: names the data in messages (``data.path: FILE``).

    Raises:
        DataError: a split would be empty, or the sizes add up to more than ``n_rows``.

    Example:
        >>> split_counts(1000, [0.8, 0.1, 0.1])
        (800, 100, 100)
    """
    fractions = [float(f) for f in split]
    total = sum(fractions) or 1.0

    def part(count: int | None, index: int) -> int:
        if count is not None:
            return int(count)
        return max(1, int(round(n_rows * fractions[index] / total)))

    val, test = part(n_val, 1), part(n_test, 2)
    train = int(n_train) if n_train is not None else n_rows - val - test  # None: every row left
    need = train + val + test
    if need > n_rows:
        sizes = f"n_train {train} + n_val {val} + n_test {test}"
        raise DataError(f"{where} has {n_rows} data rows, fewer than {sizes} = {need}; lower "
                        "data.n_train/n_val/n_test (null = a fraction of the rows, data.split) "
                        "or add rows")
    if train < 1:
        raise DataError(f"{where} has {n_rows} data rows: too few to split by data.split "
                        f"{list(fractions)} (every split needs a row); add rows")
    return train, val, test


def split_order(n_rows: int, seed: int, labels: np.ndarray | None = None,
                stream: int = 3) -> np.ndarray:
    """A seeded permutation of ``range(n_rows)``; interleaved by class when ``labels`` given.

    Interleaving: the ``r``-th row (in shuffled order) of a class of ``n_k`` rows is placed at
    fractional position ``(r + 0.5) / n_k``, so any prefix holds each class in proportion
    (within one row) and a class of one or two rows lands in the training part.
    """
    order = np.random.default_rng([seed, stream]).permutation(n_rows)
    if labels is None:
        return order
    shuffled = np.asarray(labels)[order]
    _, codes, counts = np.unique(shuffled, return_inverse=True, return_counts=True)
    # rank of each row within its class, in shuffled order
    by_class = np.argsort(codes, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(n_rows, dtype=np.float64)
    rank[by_class] = np.arange(n_rows) - starts[codes[by_class]]
    position = (rank + 0.5) / counts[codes]
    return order[np.argsort(position, kind="stable")]


def split_rows(n_rows: int, counts: tuple[int, int, int], seed: int,
               labels: np.ndarray | None = None, stream: int = 3
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices ``(train, val, test)``: validation, then test, then training rows of
    :func:`split_order`."""
    train, val, test = counts
    order = split_order(n_rows, seed, labels, stream)
    return order[val + test:val + test + train], order[:val], order[val:val + test]


def encode_labels(train: np.ndarray, *others: np.ndarray, where: str = "data.targets"
                  ) -> tuple[tuple, list[np.ndarray]]:
    """Classes counted from the training labels, and every split's labels as class indices.

    Returns:
        ``(classes, [train_idx, *others_idx])``: sorted classes (ints or strings) and int64
        index arrays.

    Raises:
        DataError: fewer than two classes in the training split, or a label in another
            split that the training split lacks.
    """
    classes = np.unique(train)
    if len(classes) < 2:
        only = _plain(classes[0]) if len(classes) else None
        raise DataError(f"{where}: the training split holds a single class ({only!r}); "
                        "classification needs at least two")
    out = []
    for labels in (train, *others):
        index = np.searchsorted(classes, labels)
        index = np.clip(index, 0, len(classes) - 1)
        unknown = classes[index] != labels
        if unknown.any():
            raise DataError(f"{where}: class {_plain(labels[unknown][0])!r} is not in the training "
                            "split (too few rows of it to split); drop those rows or add more")
        out.append(index.astype(np.int64))
    return tuple(_plain(c) for c in classes), out


def _plain(value):
    """A NumPy scalar as the Python value (str, int) it holds."""
    return value.item() if hasattr(value, "item") else value
