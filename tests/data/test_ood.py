"""The out-of-domain split lies in the shell outside the training box, uniformly."""

import numpy as np
import pytest
import torch

from kanplatform.config import ConfigError, load_config
from kanplatform.data import box_radius, dataset_from_config, get_target, ood_split, shell_inputs
from kanplatform.train.resolve import load_run_config


@pytest.mark.parametrize("name", ["exp_sin_sq", "j0_20x", "feynman_I_6_2", "nested_4",
                                  "exp_mean_sin_sq_100"])
def test_ood_points_lie_outside_the_training_box_within_the_shell(name):
    target = get_target(name)
    split = ood_split(name, 2000, shell=(1.0, 1.5), seed=3, dtype=torch.float64)
    x = split.x.numpy()
    low, high = np.array(target.ranges).T
    half = (high - low) / 2
    outside = (x < low) | (x > high)
    assert outside.any(axis=1).all()  # every point has an input outside the training range
    assert (x >= low - 0.5 * half - 1e-12).all() and (x <= high + 0.5 * half + 1e-12).all()
    r = box_radius(x, target.ranges)
    assert r.min() >= 1.0 and r.max() <= 1.5
    assert torch.isfinite(split.y).all() and split.y.shape == (2000, target.n_outputs)
    # clean targets: the function itself at those inputs
    np.testing.assert_allclose(split.y.numpy(), target(x), rtol=1e-12)


def test_ood_points_are_uniform_in_the_shell():
    ranges = [(-1.0, 1.0), (0.0, 4.0)]
    x = shell_inputs(ranges, 40000, (1.0, 1.5), np.random.default_rng(0))
    r = box_radius(x, ranges)
    # the max-norm radius of a uniform point in the shell has CDF (r^2 - 1) / (1.5^2 - 1)
    for q in (1.1, 1.25, 1.4):
        assert np.mean(r <= q) == pytest.approx((q**2 - 1) / 1.25, abs=0.01)
    # each of the 4 faces (which coordinate attains the max, and its sign) equally often
    z = (x - [0.0, 2.0]) / [1.0, 2.0]
    face = np.argmax(np.abs(z), axis=1) * 2 + (z[np.arange(len(z)), np.argmax(np.abs(z),
                                                                              axis=1)] > 0)
    assert np.bincount(face) / len(face) == pytest.approx([0.25] * 4, abs=0.01)


def test_ood_split_is_seeded_and_drops_undefined_targets():
    a, b = ood_split("xy", 100, seed=1), ood_split("xy", 100, seed=1)
    assert torch.equal(a.x, b.x) and a.n_dropped == 0
    assert not torch.equal(a.x, ood_split("xy", 100, seed=2).x)
    jv = ood_split("jv", 500)  # J_x(y) is undefined for y < 0 with a fractional order x
    assert jv.n_dropped > 0 and torch.isfinite(jv.y).all() and len(jv.x) == 500


def test_data_config_builds_the_split_and_refuses_it_without_a_box(tmp_path):
    cfg = load_config([], {"data.dataset": "xy", "data.n_ood": 50, "data.ood_shell": [1.0, 2.0],
                           "model.width": [2, 2, 1]})
    splits = dataset_from_config(cfg.data)
    assert splits.ood.x.shape == (50, 2) and splits.ood.shell == (1.0, 2.0)
    assert dataset_from_config(load_config([], {"data.dataset": "xy"}).data).ood is None
    with pytest.raises(ConfigError, match=r"data\.ood_shell: must be \[r_lo, r_hi\]"):
        load_config([], {"data.n_ood": 5, "data.ood_shell": [0.5, 1.5]})
    csv = tmp_path / "d.csv"
    csv.write_text("a,b,y\n" + "\n".join(f"{i},{i},{i}" for i in range(9)) + "\n")
    with pytest.raises(ConfigError, match=r"data\.n_ood: an out-of-domain split needs a "
                                          r"registered target"):
        load_run_config([], {"data.dataset": "file", "data.path": str(csv),
                             "data.inputs": ["a", "b"], "data.targets": ["y"], "data.n_ood": 5})
