"""Normalisation: fitted on the training split only, applied to every split, inverted exactly."""

import numpy as np
import pytest
import torch

from kanplatform.config import load_config
from kanplatform.data import Normalizer, dataset_for_run, load_file
from kanplatform.data.datasets import normalize_splits


def _scaled_csv(path, n=400):
    rng = np.random.default_rng(0)
    x = np.c_[rng.uniform(0, 1000, n), rng.uniform(0, 0.01, n)]
    y = np.sin(x[:, 0] / 300) + 50 * x[:, 1] + 3.0
    np.savetxt(path, np.c_[x, y], delimiter=",", header="big,small,y", comments="")
    return path


def test_fitted_on_train_only_and_inverted_exactly(tmp_path):
    raw = load_file(_scaled_csv(tmp_path / "d.csv"), ["big", "small"], ["y"],
                    dtype=torch.float64)
    norm_splits = normalize_splits(raw, "minmax", (-1.0, 1.0))
    norm = norm_splits.normalizer
    x, y = raw.train
    # the training split's extremes land on the grid range; nothing of val/test is used
    assert torch.allclose(norm_splits.train[0].min(0).values, torch.tensor([-1.0, -1.0],
                          dtype=torch.float64), atol=1e-12)
    assert torch.allclose(norm_splits.train[0].max(0).values, torch.ones(2, dtype=torch.float64))
    assert norm.y_shift == pytest.approx((float(y.mean()),))
    assert norm.y_scale == pytest.approx((float(y.std(unbiased=False)),))
    refit = Normalizer.fit(x, y, "minmax")
    assert refit == norm
    # every split through the same map; back to the original values exactly
    for split in ("train", "val", "test"):
        (xn, yn), (xo, yo) = norm_splits.split(split), raw.split(split)
        assert torch.allclose(norm.inverse_x(xn), xo, rtol=1e-13, atol=0)
        assert torch.allclose(norm.inverse_y(yn), yo, rtol=1e-13, atol=0)
    back = Normalizer.from_dict(norm.to_dict())
    assert back == norm and np.allclose(back.transform_x(x.numpy()), norm_splits.train[0].numpy())


def test_standard_and_constant_columns():
    x = np.c_[np.arange(10.0), np.full(10, 7.0)]
    norm = Normalizer.fit(x, None, "standard")
    z = norm.transform_x(x)
    assert np.allclose(z[:, 0].mean(), 0) and np.allclose(z[:, 0].std(), 1)
    assert np.allclose(z[:, 1], 0)  # a constant input maps to the centre, not to NaN
    assert np.allclose(Normalizer.fit(x, None, "minmax", (0, 4)).transform_x(x)[:, 1], 2.0)
    assert Normalizer.fit(x, None, "none").identity


def test_auto_keeps_synthetic_domains_and_scales_real_data():
    synthetic = dataset_for_run(load_config([], ["data.n_train=20", "data.n_val=5",
                                                 "data.n_test=5"]))
    assert synthetic.normalizer.identity and synthetic.ranges == ((-1.0, 1.0), (-1.0, 1.0))
    cfg = load_config([], ["data.dataset=diabetes", "model.width=[10,1]",
                           "model.grid_range=[-2,2]"], validate=False)
    real = dataset_for_run(cfg, dtype=torch.float64)
    x, y = real.train
    assert float(x.min()) == pytest.approx(-2.0) and float(x.max()) == pytest.approx(2.0)
    assert float(y.mean()) == pytest.approx(0.0, abs=1e-12)
    assert real.sizes == {"data/n_train": 354, "data/n_val": 44, "data/n_test": 44}
