"""The statistics of a comparison on hand-made results: intervals, verdicts and the tie rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from kanplatform.compare.stats import (
    default_eps,
    mean_ci,
    metric_bounds,
    n_measured,
    paired_verdict,
    to_error,
)

SEEDS = (0, 1, 2, 3, 4)


def test_mean_ci_is_the_student_t_interval():
    x = [0.012, 0.015, 0.011, 0.02]
    s = mean_ci(x)
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
    assert s.n == 4 and s.mean == pytest.approx(np.mean(x))
    assert (s.ci_low, s.ci_high) == pytest.approx((lo, hi))


def test_an_error_cells_interval_is_the_geometric_means_and_never_below_zero():
    # three seeds whose RMSEs differ by a factor 5: the linear t interval goes below zero
    x = [0.002, 0.010, 0.004]
    assert mean_ci(x).ci_low < 0
    s = mean_ci(x, log_scale=True)
    lo, hi = stats.t.interval(0.95, 2, loc=np.mean(np.log(x)), scale=stats.sem(np.log(x)))
    assert s.log_scale and s.gmean == pytest.approx(stats.gmean(x))
    assert (s.ci_low, s.ci_high) == pytest.approx((math.exp(lo), math.exp(hi)))
    assert 0 < s.ci_low < s.gmean <= s.mean < s.ci_high and s.mean == pytest.approx(np.mean(x))
    # a zero error cannot go on log: the plain interval
    assert not mean_ci([0.0, 0.01, 0.02], log_scale=True).log_scale
    # accuracies are clipped to [0, 1]
    acc = mean_ci([0.97, 1.0, 0.99], bounds=metric_bounds("test/accuracy"))
    assert acc.ci_high == 1.0 and 0 < acc.ci_low < acc.mean
    assert metric_bounds("test/rmse") is None


def test_mean_ci_skips_non_finite_values_and_needs_two_for_an_interval():
    s = mean_ci([0.1, math.nan, math.inf, None])
    assert s.n == 1 and s.mean == 0.1 and math.isnan(s.ci_low) and math.isnan(s.ci_high)
    assert mean_ci([]).n == 0


def test_clear_kan_win():
    # the KAN is ~10x better on every seed, with seed-to-seed noise shared by both arms
    noise = {s: 1 + 0.3 * math.sin(s) for s in SEEDS}
    kan = {s: 1e-4 * noise[s] * (1 + 0.05 * s) for s in SEEDS}
    mlp = {s: 1e-3 * noise[s] for s in SEEDS}
    v = paired_verdict(kan, mlp, ("kan", "mlp"), mode="min")
    assert v.winner == "kan" and v.p_value < 1e-4 and v.n_pairs == 5
    assert v.log_scale and v.ratio == pytest.approx(0.1, rel=0.15)
    assert v.effect_ci[1] < 0  # the whole interval of log(kan/mlp) is below 0


def test_clear_mlp_win_with_three_seeds():
    kan = {0: 0.020, 1: 0.031, 2: 0.026}
    mlp = {0: 0.010, 1: 0.014, 2: 0.012}
    v = paired_verdict(kan, mlp, ("kan", "mlp"))
    assert v.winner == "mlp" and v.p_value < 0.05
    assert v.ratio == pytest.approx(math.exp(np.mean(np.log([2.0, 31 / 14, 26 / 12]))))


def test_tie_when_the_intervals_overlap():
    kan = {0: 0.010, 1: 0.016, 2: 0.012, 3: 0.019}
    mlp = {0: 0.013, 1: 0.011, 2: 0.017, 3: 0.014}
    a, b = mean_ci(list(kan.values())), mean_ci(list(mlp.values()))
    assert a.ci_low < b.ci_high and b.ci_low < a.ci_high  # overlapping CIs
    v = paired_verdict(kan, mlp, ("kan", "mlp"))
    assert v.winner == "tie" and v.p_value >= 0.05
    assert "alpha" in v.reason


def test_paired_test_matches_scipy_on_log_errors():
    kan = {0: 0.02, 1: 0.05, 2: 0.03, 3: 0.04}
    mlp = {0: 0.03, 1: 0.04, 2: 0.05, 3: 0.06}
    v = paired_verdict(kan, mlp, ("kan", "mlp"))
    ref = stats.ttest_rel(np.log(list(kan.values())), np.log(list(mlp.values())))
    assert v.p_value == pytest.approx(ref.pvalue)


def test_max_metric_compares_differences_and_higher_wins():
    kan = {0: 0.91, 1: 0.93, 2: 0.92}
    mlp = {0: 0.95, 1: 0.965, 2: 0.96}
    v = paired_verdict(kan, mlp, ("kan", "mlp"), mode="max")
    assert not v.log_scale and v.ratio is None
    assert v.winner == "mlp" and v.effect == pytest.approx(-0.0383, abs=1e-3)


def test_min_effect_turns_a_significant_but_small_difference_into_a_tie():
    kan = {s: 1.00 * (1 + 0.01 * s) for s in SEEDS}
    mlp = {s: 1.02 * (1 + 0.01 * s) * (1 + 1e-4 * math.sin(s)) for s in SEEDS}  # ~2 % worse
    assert paired_verdict(kan, mlp, ("kan", "mlp")).winner == "kan"
    v = paired_verdict(kan, mlp, ("kan", "mlp"), min_effect=math.log(1.05))
    assert v.winner == "tie" and "min_effect" in v.reason


def test_seeds_without_results_are_left_out_and_too_few_pairs_give_no_verdict():
    kan = {0: 0.1, 1: math.nan, 2: 0.1}
    mlp = {0: 0.2, 1: 0.2, 2: None}
    v = paired_verdict(kan, mlp, ("kan", "mlp"))
    assert v.winner is None and v.p_value is None and v.n_pairs == 1
    assert v.excluded == [1, 2] and "needs 2" in v.reason


def test_identical_differences_on_every_seed():
    # the t statistic is undefined: the exact sign test's p (3 seeds: 0.25, a tie) -- as for
    # an accuracy one test sample apart on every seed (fair_small's breast_cancer)
    v = paired_verdict({0: 1.0, 1: 2.0, 2: 3.0}, {0: 2.0, 1: 4.0, 2: 6.0}, ("a", "b"))
    assert v.winner == "tie" and v.p_value == 0.25 and v.ratio == pytest.approx(0.5)
    acc = paired_verdict({0: 0.947, 1: 0.947, 2: 0.947}, {0: 0.965, 1: 0.965, 2: 0.965},
                         ("kan", "mlp"), mode="max")
    assert acc.winner == "tie" and acc.p_value == 0.25
    six = paired_verdict({s: 1.0 + s for s in range(6)}, {s: 2.0 * (1 + s) for s in range(6)},
                         ("a", "b"))
    assert six.winner == "a" and six.p_value == pytest.approx(2 * 0.5 ** 6)
    same = paired_verdict({0: 1.0, 1: 2.0}, {0: 1.0, 1: 2.0}, ("a", "b"))
    assert same.winner == "tie" and same.p_value == 1.0


def test_n_measured_is_the_smallest_size_that_reaches_eps():
    sizes, means = [10, 20, 40, 80], [0.1, 0.03, 0.02, 0.001]
    assert n_measured(sizes, means, 0.05, "min") == 20
    assert n_measured(sizes, means, 1e-4, "min") is None
    assert n_measured([10, 20], [0.8, 0.95], 0.9, "max") == 20


def test_default_eps_are_quantiles_of_the_observed_errors():
    eps = default_eps([1e-1, 1e-2, 1e-3], [0.5], "min")
    assert eps == [0.01]
    assert default_eps([0.9, 0.99], [0.5], "max") == [pytest.approx(0.968, abs=1e-3)]
    assert to_error(0.9, "max") == pytest.approx(0.1) and to_error(None, "min") is None
