"""The statistics of a comparison: cell means with CIs, paired verdicts, N(eps).

**Cells.** The mean over seeds with a Student-t 95% interval, ``mean +- t_{0.975, n-1} *
s / sqrt(n)``. With 3-5 seeds a bootstrap interval would be built from 3-5 distinct values
and come out too narrow; the t interval is exact for normal errors and honest about how
little 3 seeds say. For an error to minimise whose values are all positive (RMSE, loss) the
interval is taken on the verdicts' scale, ``log(metric)``: ``exp(mean(log x) +- t * s_log /
sqrt(n))``, the interval of the *geometric* mean (``gmean``), which cannot go below zero (a
linear t interval over 3 seeds whose errors differ by a factor 5 does). ``mean`` stays the
arithmetic mean. A metric with a known range (``accuracy``, ``f1``: [0, 1]) has its interval
clipped to that range.

**Verdicts.** Two arms at one budget are compared by a two-sided *paired t-test over seeds*:
seed ``s`` trains both arms on the same data sample (``data.seed`` follows the seed) from
the same seed, so the per-seed difference removes the sample-to-sample variation the arms
share. For a metric to minimise (an error such as RMSE) the difference is taken of
``log(metric)``: errors of two models differ by factors, not by amounts, and log errors are
much closer to normal; ``exp(mean difference)`` is the geometric-mean ratio reported. For a
metric to maximise (accuracy) the plain difference is used. Why not Wilcoxon's signed-rank
test: with 3 seeds its smallest two-sided p-value is 0.25, so it could never find a winner.
Where every seed shows the same difference (a discrete metric: one more
test sample right on every seed) the t statistic is undefined and the exact sign test's ``p =
2 * 0.5**n`` is used instead (3 seeds: 0.25). **Tie rule**: an arm wins when ``p < alpha``
(default 0.05) *and* the effect is at least
``min_effect`` (default 0: significance alone); otherwise the budget is a tie. Seeds where
either arm has no finite result are left out of the pairs (and counted); with fewer than 2
pairs there is no verdict (``winner: null``) and the reason says so. Each budget is tested
on its own (no correction over budgets): a study of 5 budgets at alpha 0.05 can show a
spurious winner at one of them about 1 time in 5 -- read the overall summary with that in
mind.

**N(eps)**: for an error level eps, the smallest model (parameters) reaching it. Measured:
the smallest size whose cell mean is at or below eps (``None``: no size reached it).
Fitted: the size at which the power law ``metric = a * N**-alpha`` fitted to the arm's runs
(:func:`kanplatform.scaling.fit_power_law`) reaches eps, with the bootstrap interval of that
size (each replicate inverted on its own). For a metric to maximise, both use the error
``1 - metric`` and eps is read as a level of the metric (accuracy 0.9 = error 0.1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

CI_LEVEL = 0.95


@dataclass(frozen=True)
class CellStats:
    """Mean over seeds with its t interval (``ci_*`` nan with fewer than 2 values).

    ``log_scale``: the interval is the geometric mean's (``gmean``), taken on ``log``.
    """

    n: int
    mean: float
    ci_low: float
    ci_high: float
    std: float
    gmean: float = math.nan
    log_scale: bool = False


def mean_ci(values: Sequence[float], level: float = CI_LEVEL, log_scale: bool = False,
            bounds: tuple[float, float] | None = None) -> CellStats:
    """Mean of the finite ``values`` and its Student-t interval at ``level``.

    Args:
        log_scale: take the interval on ``log(values)`` (the geometric mean's interval),
            where every value is positive; otherwise the plain one.
        bounds: the metric's range; the interval is clipped to it.

    Example:
        >>> s = mean_ci([1.0, 2.0, 3.0])
        >>> s.mean, round(s.ci_low, 3), round(s.ci_high, 3)
        (2.0, -0.484, 4.484)
        >>> s = mean_ci([1.0, 2.0, 3.0], log_scale=True)
        >>> round(s.gmean, 3), round(s.ci_low, 3), round(s.ci_high, 3)
        (1.817, 0.457, 7.223)
    """
    from scipy import stats

    x = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if x.size == 0:
        return CellStats(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(x.mean())
    log_scale = bool(log_scale and np.all(x > 0))
    gmean = float(np.exp(np.log(x).mean())) if log_scale else math.nan
    if x.size < 2:
        return CellStats(1, mean, math.nan, math.nan, math.nan, gmean, log_scale)
    std = float(x.std(ddof=1))
    t = float(stats.t.ppf((1 + level) / 2, x.size - 1))
    if log_scale:
        logs = np.log(x)
        half = t * float(logs.std(ddof=1)) / math.sqrt(x.size)
        low, high = float(np.exp(logs.mean() - half)), float(np.exp(logs.mean() + half))
    else:
        half = t * std / math.sqrt(x.size)
        low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return CellStats(int(x.size), mean, low, high, std, gmean, log_scale)


def metric_bounds(metric: str) -> tuple[float, float] | None:
    """The range of a metric whose values are fractions (accuracy, F1), else None."""
    leaf = metric.rsplit("/", 1)[-1]
    return (0.0, 1.0) if leaf in ("accuracy", "f1") else None


@dataclass(frozen=True)
class Verdict:
    """The outcome of one paired comparison of arms ``a`` and ``b``.

    Attributes:
        winner: ``a``'s or ``b``'s name, ``"tie"``, or None (too few pairs).
        p_value: two-sided p of the paired t-test (None without a test).
        n_pairs: seeds with a finite result for both arms.
        effect: mean paired difference ``g(a) - g(b)`` (``g = log`` for a min metric).
        effect_ci: its t interval.
        ratio: ``exp(effect)`` on the log scale (geometric-mean ratio a/b), else None.
        log_scale: whether ``g = log``.
        reason: in words, why this winner.
        excluded: seeds left out (a non-finite result for either arm).
    """

    winner: str | None
    p_value: float | None
    n_pairs: int
    effect: float | None
    effect_ci: tuple[float, float] | None
    ratio: float | None
    log_scale: bool
    reason: str
    excluded: list[Any] = field(default_factory=list)


def paired_verdict(a: Mapping[Any, float], b: Mapping[Any, float], names: tuple[str, str],
                   mode: str = "min", alpha: float = 0.05, min_effect: float = 0.0,
                   log_scale: bool | None = None) -> Verdict:
    """Compare two arms over the seeds they share (see the module docstring).

    Args:
        a, b: ``{seed: metric}`` of each arm.
        names: the two arms' names (the winner is one of them).
        mode: ``min`` (lower is better) or ``max``.
        alpha: significance level.
        min_effect: smallest ``|effect|`` that counts as a win.
        log_scale: compare ``log(metric)``; default: for ``min`` with all values positive.

    Returns:
        The :class:`Verdict`.

    Example:
        >>> v = paired_verdict({0: 1e-3, 1: 2e-3, 2: 1.5e-3}, {0: 1e-2, 1: 3e-2, 2: 2e-2},
        ...                    ("kan", "mlp"))
        >>> v.winner, v.p_value < 0.05
        ('kan', True)
    """
    from scipy import stats

    def ok(v: Any) -> bool:
        return v is not None and math.isfinite(v)

    seeds = sorted(set(a) & set(b), key=str)
    pairs = [s for s in seeds if ok(a[s]) and ok(b[s])]
    excluded = [s for s in sorted(set(a) | set(b), key=str) if s not in pairs]
    va, vb = np.array([a[s] for s in pairs], float), np.array([b[s] for s in pairs], float)
    if log_scale is None:
        log_scale = mode == "min" and bool(np.all(va > 0) and np.all(vb > 0))
    if len(pairs) < 2:
        return Verdict(None, None, len(pairs), None, None, None, log_scale,
                       f"only {len(pairs)} seed(s) with results for both arms; a paired test "
                       "needs 2", excluded)
    d = (np.log(va) - np.log(vb)) if log_scale else (va - vb)
    mean, sd, n = float(d.mean()), float(d.std(ddof=1)), len(d)
    if sd <= 1e-12 * max(1.0, abs(mean)):  # the same difference on every seed (to rounding)
        # the t statistic is undefined (a discrete metric such as the accuracy on a small
        # test set: one more sample right on every seed); the exact sign test is what such
        # data supports: n same-signed differences have p = 2 * 0.5**n (3 seeds: 0.25)
        p = min(1.0, 2.0 * 0.5 ** n) if mean != 0 else 1.0
        half = 0.0
    else:
        t = mean / (sd / math.sqrt(n))
        p = float(2 * stats.t.sf(abs(t), n - 1))
        half = float(stats.t.ppf((1 + CI_LEVEL) / 2, n - 1)) * sd / math.sqrt(n)
    better_a = mean < 0 if mode == "min" else mean > 0
    scale = "log " if log_scale else ""
    if p >= alpha:
        winner, why = "tie", f"p = {p:.3g} >= alpha = {alpha:g}"
    elif abs(mean) < min_effect:
        winner, why = "tie", (f"p = {p:.3g} < {alpha:g} but the {scale}effect {abs(mean):.3g}"
                              f" < min_effect {min_effect:g}")
    else:
        winner = names[0] if better_a else names[1]
        why = f"p = {p:.3g} < {alpha:g}, mean {scale}difference {mean:+.3g} ({n} seeds)"
    return Verdict(winner, p, n, mean, (mean - half, mean + half),
                   math.exp(mean) if log_scale else None, log_scale, why, excluded)


def to_error(value: float | None, mode: str) -> float | None:
    """The error N(eps) is about: the metric itself (``min``) or ``1 - metric`` (``max``)."""
    if value is None or not math.isfinite(value):
        return None
    return float(value) if mode == "min" else 1.0 - float(value)


def default_eps(means: Sequence[float], quantiles: Sequence[float], mode: str) -> list[float]:
    """Eps levels at ``quantiles`` of the observed cell means (in the metric's own units),
    rounded to 3 significant digits; duplicates removed."""
    errors = [e for e in (to_error(m, mode) for m in means) if e is not None and e > 0]
    if not errors:
        return []
    qs = np.quantile(np.log(errors), list(quantiles))  # in log: errors span decades
    out = [float(f"{math.exp(q):.3g}") for q in qs]
    if mode == "max":
        out = [float(f"{1 - e:.3g}") for e in out]
    return sorted(set(out), reverse=(mode == "min"))


def n_measured(sizes: Sequence[float], means: Sequence[float], eps: float,
               mode: str) -> float | None:
    """The smallest size whose mean reaches ``eps`` (``<=`` for min, ``>=`` for max)."""
    hit = [s for s, m in zip(sizes, means) if m is not None and math.isfinite(m)
           and (m <= eps if mode == "min" else m >= eps)]
    return float(min(hit)) if hit else None


def finite_or_none(x: Any) -> float | None:
    """``float(x)`` when finite, else None (JSON has no inf or nan)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None
