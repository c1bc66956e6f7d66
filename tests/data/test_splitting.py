"""Splits: sizes from fractions or counts, seeded order, stratified by class."""

import numpy as np
import pytest

from kanplatform.data import DataError
from kanplatform.data.splitting import encode_labels, split_counts, split_rows


def test_every_row_by_default_and_counts_replace_fractions():
    assert split_counts(20_000, [0.8, 0.1, 0.1]) == (16_000, 2_000, 2_000)
    assert split_counts(1797, [0.8, 0.1, 0.1]) == (1437, 180, 180)
    assert split_counts(1000, [0.8, 0.1, 0.1], n_train=100) == (100, 100, 100)
    assert split_counts(1000, [0.8, 0.1, 0.1], n_val=10, n_test=20) == (970, 10, 20)
    with pytest.raises(DataError, match=r"has 10 data rows, fewer than n_train 20 \+ n_val 1"):
        split_counts(10, [0.8, 0.1, 0.1], n_train=20)
    with pytest.raises(DataError, match="too few to split"):
        split_counts(2, [0.8, 0.1, 0.1])


def test_stratified_split_keeps_class_proportions_and_is_seeded():
    labels = np.array(["a"] * 600 + ["b"] * 300 + ["c"] * 100)
    train, val, test = split_rows(1000, (800, 100, 100), seed=3, labels=labels)
    assert len(set(train) | set(val) | set(test)) == 1000  # a partition
    for rows in (val, test):
        counts = {c: int((labels[rows] == c).sum()) for c in "abc"}
        assert counts == {"a": 60, "b": 30, "c": 10}
    again = split_rows(1000, (800, 100, 100), seed=3, labels=labels)
    assert all(np.array_equal(u, v) for u, v in zip((train, val, test), again))
    other = split_rows(1000, (800, 100, 100), seed=4, labels=labels)
    assert not np.array_equal(other[1], val)
    # validation and test rows do not depend on the training size
    assert np.array_equal(split_rows(1000, (300, 100, 100), 3, labels)[2], test)


def test_labels_are_counted_from_the_training_split():
    classes, (a, b) = encode_labels(np.array(["x", "z", "y", "x"]), np.array(["z", "x"]))
    assert classes == ("x", "y", "z") and a.tolist() == [0, 2, 1, 0] and b.tolist() == [2, 0]
    with pytest.raises(DataError, match="class 'q' is not in the training split"):
        encode_labels(np.array(["x", "y"]), np.array(["q"]))
    with pytest.raises(DataError, match="single class"):
        encode_labels(np.array([1, 1, 1]))
