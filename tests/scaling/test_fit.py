"""Power-law fits: recovery of a known exponent, CI behaviour, dropping rules."""

from __future__ import annotations

import numpy as np
import pytest

from kanplatform.scaling import PowerLawFit, fit_power_law


def synthetic(n_sizes, n_seeds=1, alpha=4.0, a=50.0, noise=0.2, seed=0, lo=10, hi=1e4):
    """Points from loss = a N^-alpha with log-normal noise (noise in natural-log units)."""
    rng = np.random.default_rng(seed)
    sizes = np.geomspace(lo, hi, n_sizes)
    n = np.repeat(sizes, n_seeds)
    seeds = np.tile(np.arange(n_seeds), n_sizes)
    loss = a * n**-alpha * np.exp(noise * rng.standard_normal(n.size))
    return n, loss, seeds


def test_exact_power_law():
    n = np.array([10.0, 30, 100, 300, 1000])
    fit = fit_power_law(n, 2.0 * n**-1.5, n_boot=50)
    assert isinstance(fit, PowerLawFit)
    assert fit.alpha == pytest.approx(1.5)
    assert fit.a == pytest.approx(2.0)
    assert fit.c == 0.0
    assert fit.n_range == (10.0, 1000.0)
    assert fit.used_mask.all() and not fit.dropped
    assert fit.alpha_ci[0] == pytest.approx(1.5) and fit.alpha_ci[1] == pytest.approx(1.5)
    assert fit.predict(100.0) == pytest.approx(2.0 * 100**-1.5)


@pytest.mark.parametrize("seed", range(5))
def test_noisy_recovers_alpha_within_ci(seed):
    n, loss, _ = synthetic(12, noise=0.3, seed=seed)
    fit = fit_power_law(n, loss, drop_tail="none", n_boot=500, rng=seed)
    lo, hi = fit.alpha_ci
    assert lo < 4.0 < hi
    assert lo < fit.alpha < hi


def test_coverage_of_ci_on_many_draws():
    # A 90% interval should cover the truth in roughly 90% of independent data sets.
    hits = 0
    for seed in range(40):
        n, loss, _ = synthetic(10, noise=0.3, seed=100 + seed)
        fit = fit_power_law(n, loss, drop_tail="none", n_boot=300, ci_level=0.9, rng=seed)
        hits += fit.alpha_ci[0] <= 4.0 <= fit.alpha_ci[1]
    assert hits >= 30  # 40 draws x 0.9 = 36 expected; the percentile bootstrap runs a bit narrow


def test_ci_narrows_with_more_points():
    widths = {}
    for k in (6, 24, 96):
        w = []
        for seed in range(5):
            n, loss, _ = synthetic(k, noise=0.3, seed=seed)
            fit = fit_power_law(n, loss, drop_tail="none", n_boot=400, rng=seed)
            w.append(fit.alpha_ci[1] - fit.alpha_ci[0])
        widths[k] = np.median(w)
    assert widths[24] < widths[6]
    assert widths[96] < widths[24]
    assert widths[96] < 0.6 * widths[6]


def test_seed_bootstrap_recovers_alpha_and_ci_narrows_with_seeds():
    widths = []
    for n_seeds in (2, 8):
        n, loss, seeds = synthetic(8, n_seeds=n_seeds, noise=0.3, seed=3)
        fit = fit_power_law(n, loss, seeds=seeds, drop_tail="none", n_boot=400)
        assert fit.alpha_ci[0] < 4.0 < fit.alpha_ci[1]
        widths.append(fit.alpha_ci[1] - fit.alpha_ci[0])
    assert widths[1] < widths[0]


def test_diverged_points_dropped_and_reported():
    n, loss, _ = synthetic(10, noise=0.05)
    loss[2] = np.nan
    loss[5] = np.inf
    loss[7] = 1e6  # "huge": a run that blew up
    loss[8] = -1.0
    fit = fit_power_law(n, loss, drop_tail="none", n_boot=200)
    assert fit.alpha == pytest.approx(4.0, abs=0.15)
    assert fit.alpha_ci[0] < 4.0 < fit.alpha_ci[1]
    assert {d.index for d in fit.dropped} == {2, 5, 7, 8}
    assert not fit.used_mask[[2, 5, 7, 8]].any() and fit.used_mask.sum() == 6
    reasons = {d.index: d.reason for d in fit.dropped}
    assert "not finite" in reasons[2] and "not finite" in reasons[5]
    assert "diverged" in reasons[7]
    assert "not positive" in reasons[8]
    js = fit.to_dict()
    assert len(js["dropped"]) == 4 and js["n_points"] == 6


def test_diverged_seed_at_smallest_size_is_caught_and_masks_nothing():
    n, loss, seeds = synthetic(8, n_seeds=2, noise=0.05)
    loss[1] = 1e9  # smallest size, seed 1
    loss[9] = 1e3  # a later size, seed 1: still caught although a huge loss came before
    fit = fit_power_law(n, loss, seeds=seeds, drop_tail="none", n_boot=100)
    assert [d.index for d in fit.dropped] == [1, 9]
    assert fit.alpha == pytest.approx(4.0, abs=0.15)


def test_overfitting_tail_dropped_by_rise_rule():
    # KAN-like: loss falls as G^-4 then rises when the grid overfits.
    n = np.array([30.0, 50, 100, 200, 500, 1000, 2000])
    loss = 1e3 * n**-4.0
    loss[5] = loss[4] * 3
    loss[6] = loss[4] * 10
    fit = fit_power_law(n, loss, drop_tail="rise", n_boot=0)
    assert fit.alpha == pytest.approx(4.0)
    assert fit.n_range == (30.0, 500.0)
    assert [d.index for d in fit.dropped] == [5, 6]
    assert all("overfitting tail" in d.reason for d in fit.dropped)
    # Without a rule the tail pulls alpha down.
    assert fit_power_law(n, loss, drop_tail="none", n_boot=0).alpha < 3.0


def test_plateau_rule_drops_trailing_flat_points():
    n = np.array([10.0, 20, 40, 80, 160, 320])
    loss = 5.0 * n**-2.0
    loss[4] = loss[3] * 0.9  # almost no gain for 2x size: the start of a plateau
    loss[5] = loss[3] * 0.85
    plateau = fit_power_law(n, loss, n_boot=0)  # default rule
    assert plateau.n_range == (10.0, 80.0)
    assert plateau.alpha == pytest.approx(2.0)
    rise = fit_power_law(n, loss, drop_tail="rise", n_boot=0)
    assert rise.n_range == (10.0, 320.0)


def test_tail_rule_keeps_min_sizes_and_custom_rule():
    n = np.array([10.0, 20, 40, 80])
    loss = np.array([1.0, 0.5, 0.6, 0.7])  # rises after the second size
    fit = fit_power_law(n, loss, n_boot=0, min_sizes=3)
    assert fit.n_sizes == 3
    custom = fit_power_law(n, loss, n_boot=0, drop_tail=lambda s, m: s <= 20)
    assert custom.n_sizes == 2 and "custom" in custom.dropped[0].reason


def test_floor_fit_recovers_alpha_and_floor():
    n = np.geomspace(10, 1e5, 15)
    loss = 10.0 * n**-1.0 + 1e-3
    plain = fit_power_law(n, loss, drop_tail="none", n_boot=0)
    fl = fit_power_law(n, loss, floor=True, drop_tail="none", n_boot=100)
    assert fl.alpha == pytest.approx(1.0, rel=1e-3)
    assert fl.c == pytest.approx(1e-3, rel=1e-2)
    assert plain.alpha < 0.8  # the floor bends the plain log-log fit
    assert fl.alpha_ci[0] <= 1.0 <= fl.alpha_ci[1] + 1e-6


def test_errors_are_clear():
    with pytest.raises(ValueError, match="loss has"):
        fit_power_law([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="distinct usable sizes"):
        fit_power_law([1, 2, 3], [np.nan, np.nan, 1.0])
    with pytest.raises(ValueError, match="drop_tail"):
        fit_power_law([1, 2, 3], [3, 2, 1], drop_tail="sometimes")


def test_str_and_dict_are_readable():
    n, loss, seeds = synthetic(6, n_seeds=2)
    fit = fit_power_law(n, loss, seeds=seeds, n_boot=100)
    assert "alpha =" in str(fit) and "CI" in str(fit)
    import json

    json.dumps(fit.to_dict())


def test_failed_seed_dropped_even_when_not_huge():
    # one seed of a grid-extension run that never trained: 50x its siblings at every size
    n, loss, seeds = synthetic(6, n_seeds=3, alpha=4.0, a=1e4, noise=0.1, lo=26, hi=170)
    bad = seeds == 1
    loss[bad] = np.geomspace(0.66, 0.3, bad.sum())
    fit = fit_power_law(n, loss, seeds=seeds, drop_tail="none", n_boot=200)
    assert set(np.flatnonzero(~fit.used_mask)) == set(np.flatnonzero(bad))
    assert all("failed run" in d.reason or "diverged" in d.reason for d in fit.dropped)
    assert fit.alpha_ci[0] < 4.0 < fit.alpha_ci[1]


def test_overfitted_sizes_dropped_by_train_test_gap():
    # test loss still creeps down at the last size, but it fits its training points 3x better
    n = np.array([26.0, 32, 47, 77, 167, 317])
    test = np.array([1.4e-2, 6.7e-3, 4.5e-4, 5e-5, 1.5e-5, 1.1e-5])
    train = test / np.array([1.0, 1.0, 1.2, 1.3, 1.7, 2.6])
    plain = fit_power_law(n, test, n_boot=0, tail_slope=0.3)
    assert plain.n_range[1] == 317.0
    gap = fit_power_law(n, test, train_loss=train, n_boot=0, tail_slope=0.3)
    assert gap.n_range == (26.0, 167.0)
    assert [d.index for d in gap.dropped] == [5] and "overfitting" in gap.dropped[0].reason
    assert gap.alpha > plain.alpha
