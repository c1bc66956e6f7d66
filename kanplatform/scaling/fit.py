"""Power-law fits of loss against model size, with bootstrap confidence intervals.

The model is ``loss = a * N**-alpha`` (optionally ``+ c``, an irreducible floor), fitted in
log-log space so every decade of N weighs the same. Real sweeps are messy, so before fitting
the points go through three stated rules, and every point removed is reported with its reason:

1. **not usable**: N or loss not finite, or not positive (NaN/inf from a diverged run).
2. **diverged**: loss more than ``diverge_factor`` (default 100) times the lowest loss of any
   other point at the same or a smaller size. A model two orders of magnitude worse than a
   smaller (or equal) one did not train. A single-seed point at the smallest size has nothing
   to compare with and is only caught when not finite. Also **failed**: a point more than
   ``seed_factor`` (default 10) times the median loss of the other points at its size (other
   seeds) -- a run that did not train while its siblings did.
3. **overfitting tail** (``drop_tail``): the paper notes KAN test loss stops falling once the
   grid overfits. With ``"rise"`` every size after the one with the lowest median loss is
   dropped; ``"plateau"`` (default) additionally drops trailing sizes whose local log-log slope
   from the previous size is below ``tail_slope`` (default 0.5: less than a 2x gain for 4x
   the size counts as a plateau). ``"none"`` keeps all sizes. At least ``min_sizes`` sizes
   are always kept. Given the training loss too (``train_loss``), both rules also drop
   trailing sizes whose median test/train ratio exceeds ``gap_factor`` (default 2): sizes
   that fit their training points much better than new points have overfitted.

The tail rules look at the median over seeds at each size, and drop whole sizes.

Example:
    >>> import numpy as np
    >>> n = np.array([10, 20, 40, 80, 160, 320])
    >>> fit = fit_power_law(n, 3.0 * n**-2.0, n_boot=200)
    >>> round(fit.alpha, 3)
    2.0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["DroppedPoint", "PowerLawFit", "fit_power_law", "tail_mask"]

TailRule = str | Callable[[np.ndarray, np.ndarray], np.ndarray] | None


@dataclass(frozen=True)
class DroppedPoint:
    """One input point left out of a fit, and why."""

    index: int
    n: float
    loss: float
    reason: str


@dataclass(frozen=True)
class PowerLawFit:
    """Result of :func:`fit_power_law`: ``loss ≈ a * N**-alpha + c``.

    Attributes:
        alpha: fitted exponent (positive when the loss falls with N).
        alpha_ci: (low, high) bootstrap percentile interval of alpha at ``ci_level``.
        a: prefactor.
        c: fitted floor (0.0 unless ``floor=True``).
        n_range: (min, max) of the N actually used by the fit.
        used_mask: boolean array, one entry per input point, True when used by the fit.
        dropped: every point not used, with the rule that dropped it.
        floor: whether a floor c was fitted.
        n_points: number of points used.
        n_sizes: number of distinct N used.
        n_boot: bootstrap replicates that produced a fit.
        ci_level: confidence level of ``alpha_ci``.
        rms_log_residual: RMS of log10(loss / fitted loss) over used points (scatter, decades).
        a_ci: bootstrap interval of ``a``.
        rule: the dropping rules applied, in words.
    """

    alpha: float
    alpha_ci: tuple[float, float]
    a: float
    c: float
    n_range: tuple[float, float]
    used_mask: np.ndarray
    dropped: tuple[DroppedPoint, ...]
    floor: bool = False
    n_points: int = 0
    n_sizes: int = 0
    n_boot: int = 0
    ci_level: float = 0.95
    rms_log_residual: float = float("nan")
    a_ci: tuple[float, float] = (float("nan"), float("nan"))
    rule: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def predict(self, n: np.ndarray | float) -> np.ndarray:
        """Fitted loss at size(s) ``n``."""
        return self.a * np.asarray(n, dtype=float) ** -self.alpha + self.c

    def n_at(self, loss: float) -> float:
        """The size at which the fitted curve reaches ``loss``: ``(a / (loss - c))**(1/alpha)``.

        ``inf`` when it never does (``loss`` at or below the floor ``c``, or ``alpha <= 0``).

        Example:
            >>> fit = fit_power_law([10, 100, 1000], [1e-1, 1e-3, 1e-5], n_boot=0)
            >>> round(fit.n_at(1e-4), 6)
            316.227766
        """
        return _invert(self.a, self.alpha, self.c, loss)

    def n_at_ci(self, loss: float) -> tuple[float, float]:
        """Bootstrap percentile interval (at ``ci_level``) of :meth:`n_at`.

        Each bootstrap replicate ``(alpha_b, a_b)`` is inverted on its own, so the strong
        correlation of ``a`` and ``alpha`` is kept (the intervals of the two alone would
        give a far too wide range). ``(nan, nan)`` without replicates; an end is ``inf``
        when that share of replicates never reaches ``loss``.
        """
        alphas = self.extra.get("boot_alpha")
        logas = self.extra.get("boot_log_a")
        if alphas is None or len(alphas) == 0:
            return (float("nan"), float("nan"))
        n = np.array([_invert(np.exp(la), al, self.c, loss) for al, la in zip(alphas, logas)])
        q = [(1 - self.ci_level) / 2 * 100, (1 + self.ci_level) / 2 * 100]
        # nearest-rank ends: interpolating between a finite and an infinite replicate is nan
        return (float(np.percentile(n, q[0], method="lower")),
                float(np.percentile(n, q[1], method="higher")))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (lists and floats only)."""
        return {
            "alpha": self.alpha,
            "alpha_ci": list(self.alpha_ci),
            "a": self.a,
            "a_ci": list(self.a_ci),
            "c": self.c,
            "floor": self.floor,
            "n_range": list(self.n_range),
            "n_points": self.n_points,
            "n_sizes": self.n_sizes,
            "n_boot": self.n_boot,
            "ci_level": self.ci_level,
            "rms_log_residual": self.rms_log_residual,
            "used_mask": [bool(u) for u in self.used_mask],
            "dropped": [
                {"index": d.index, "n": d.n, "loss": d.loss, "reason": d.reason}
                for d in self.dropped
            ],
            "rule": self.rule,
        }

    def __str__(self) -> str:
        lo, hi = self.alpha_ci
        return (
            f"alpha = {self.alpha:.3g} [{lo:.3g}, {hi:.3g}] ({self.ci_level:.0%} CI), "
            f"N in [{self.n_range[0]:.4g}, {self.n_range[1]:.4g}], "
            f"{self.n_points} points used, {len(self.dropped)} dropped"
        )


def _invert(a: float, alpha: float, c: float, loss: float) -> float:
    """Solve ``a * n**-alpha + c = loss`` for ``n`` (inf when no positive solution)."""
    if not (np.isfinite(alpha) and alpha > 0 and loss > c and a > 0):
        return float("inf")
    return float((a / (loss - c)) ** (1.0 / alpha))


def _size_medians(n: np.ndarray, loss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct sizes (ascending) and the median loss at each."""
    sizes = np.unique(n)
    med = np.array([np.median(loss[n == s]) for s in sizes])
    return sizes, med


def tail_mask(
    sizes: np.ndarray,
    med_loss: np.ndarray,
    rule: TailRule = "plateau",
    *,
    tail_slope: float = 0.5,
    min_sizes: int = 3,
    gap: np.ndarray | None = None,
    gap_factor: float = 2.0,
) -> np.ndarray:
    """Which sizes to keep under an overfitting-tail rule.

    Args:
        sizes: distinct sizes, ascending, shape (S,).
        med_loss: median loss at each size, shape (S,).
        rule: ``"none"``, ``"rise"``, ``"plateau"`` (see the module docstring), or a callable
            ``(sizes, med_loss) -> bool mask`` of sizes to keep.
        tail_slope: minimum local log-log slope for ``"plateau"``.
        min_sizes: never keep fewer than this many sizes (the smallest ones stay).
        gap: median test/train loss ratio at each size, shape (S,) (optional); with it,
            ``"rise"`` and ``"plateau"`` also drop trailing sizes whose ratio exceeds
            ``gap_factor`` (the model fits its training points much better than new ones).

    Returns:
        Boolean mask over sizes, shape (S,).

    Raises:
        ValueError: for an unknown rule name.
    """
    s = len(sizes)
    if rule is None or rule == "none":
        return np.ones(s, dtype=bool)
    if callable(rule):
        return np.asarray(rule(sizes, med_loss), dtype=bool)
    if rule not in ("rise", "plateau"):
        raise ValueError(f"drop_tail={rule!r}: use 'none', 'rise', 'plateau' or a callable")
    keep_until = int(np.argmin(med_loss))  # last kept index
    while keep_until > 0:
        overfit = gap is not None and gap[keep_until] > gap_factor
        gain = math.log(med_loss[keep_until - 1] / med_loss[keep_until])
        growth = math.log(sizes[keep_until] / sizes[keep_until - 1])
        flat = rule == "plateau" and gain / growth < tail_slope
        if not (overfit or flat):
            break
        keep_until -= 1
    keep_until = max(keep_until, min(min_sizes, s) - 1)
    return np.arange(s) <= keep_until


def _diverged(n: np.ndarray, loss: np.ndarray, usable: np.ndarray, factor: float) -> np.ndarray:
    """Points whose loss is ``factor`` above the best other usable point with N <= theirs."""
    out = np.zeros(n.size, dtype=bool)
    idx = np.flatnonzero(usable)
    for i in idx:
        others = idx[(idx != i) & (n[idx] <= n[i])]
        if others.size and loss[i] > factor * loss[others].min():
            out[i] = True
    return out


def _failed(n: np.ndarray, loss: np.ndarray, usable: np.ndarray, factor: float) -> np.ndarray:
    """Points ``factor`` above the median of the other usable points at the same size."""
    out = np.zeros(n.size, dtype=bool)
    idx = np.flatnonzero(usable)
    for i in idx:
        same = idx[(idx != i) & (n[idx] == n[i])]
        if same.size and loss[i] > factor * np.median(loss[same]):
            out[i] = True
    return out


def _ols_loglog(logn: np.ndarray, logl: np.ndarray, w: np.ndarray | None = None):
    """Weighted least squares of log loss on log N. Returns (alpha, log_a)."""
    if w is None:
        w = np.ones_like(logn)
    xm = np.average(logn, weights=w)
    ym = np.average(logl, weights=w)
    sxx = np.sum(w * (logn - xm) ** 2)
    if sxx <= 0:
        return float("nan"), float("nan")
    slope = np.sum(w * (logn - xm) * (logl - ym)) / sxx
    return float(-slope), float(ym - slope * xm)


def _fit_floor(n: np.ndarray, loss: np.ndarray, w: np.ndarray | None = None):
    """Fit log(loss) = log(a N^-alpha + c) with c >= 0. Returns (alpha, log_a, c)."""
    from scipy.optimize import least_squares

    logn, logl = np.log(n), np.log(loss)
    alpha0, loga0 = _ols_loglog(logn, logl, w)
    if not np.isfinite(alpha0):
        return float("nan"), float("nan"), float("nan")
    sw = np.ones_like(logn) if w is None else np.sqrt(w)
    cmax = float(np.min(loss))

    def resid(p):
        loga, alpha, c = p
        return sw * (np.log(np.exp(loga - alpha * logn) + c) - logl)

    best = None
    for c0 in (0.0, 0.1 * cmax, 0.5 * cmax):
        try:
            r = least_squares(
                resid,
                x0=[loga0, max(alpha0, 1e-6), c0],
                bounds=([-np.inf, -np.inf, 0.0], [np.inf, np.inf, cmax]),
                method="trf",
            )
        except ValueError:
            continue
        if best is None or r.cost < best.cost:
            best = r
    if best is None:
        return float("nan"), float("nan"), float("nan")
    loga, alpha, c = best.x
    return float(alpha), float(loga), float(c)


def _fit_once(n, loss, floor, w=None):
    if floor:
        return _fit_floor(n, loss, w)
    alpha, loga = _ols_loglog(np.log(n), np.log(loss), w)
    return alpha, loga, 0.0


def _bootstrap(
    n: np.ndarray,
    loss: np.ndarray,
    seeds: np.ndarray | None,
    floor: bool,
    n_boot: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap replicates of (alpha, log_a).

    Without seeds, points are resampled with replacement. With two or more seeds the
    resampling is two-way: seeds (whole curves) and sizes are each drawn with replacement,
    and every point at a drawn (seed, size) pair enters with the product of the multiplicities,
    so both seed-to-seed spread and the choice of sizes show in the interval.
    """
    sizes = np.unique(n)
    size_idx = np.searchsorted(sizes, n)
    useeds = None if seeds is None else np.unique(seeds)
    if useeds is not None and len(useeds) < 2:
        useeds = None
    seed_idx = None if useeds is None else np.searchsorted(useeds, seeds)
    alphas, logas = [], []
    tries = 0
    while len(alphas) < n_boot and tries < 5 * n_boot:
        tries += 1
        if useeds is None:
            w = np.bincount(rng.integers(0, len(n), len(n)), minlength=len(n)).astype(float)
        else:
            ws = np.bincount(rng.integers(0, len(useeds), len(useeds)), minlength=len(useeds))
            wz = np.bincount(rng.integers(0, len(sizes), len(sizes)), minlength=len(sizes))
            w = (ws[seed_idx] * wz[size_idx]).astype(float)
        use = w > 0
        if len(np.unique(n[use])) < (3 if floor else 2):
            continue
        alpha, loga, _ = _fit_once(n[use], loss[use], floor, w[use])
        if np.isfinite(alpha):
            alphas.append(alpha)
            logas.append(loga)
    return np.array(alphas), np.array(logas)


def fit_power_law(
    n: Sequence[float] | np.ndarray,
    loss: Sequence[float] | np.ndarray,
    *,
    floor: bool = False,
    seeds: Sequence[Any] | np.ndarray | None = None,
    n_boot: int = 1000,
    ci_level: float = 0.95,
    drop_tail: TailRule = "plateau",
    tail_slope: float = 0.5,
    diverge_factor: float = 100.0,
    seed_factor: float = 10.0,
    min_sizes: int = 3,
    train_loss: Sequence[float] | np.ndarray | None = None,
    gap_factor: float = 2.0,
    rng: int | np.random.Generator | None = 0,
) -> PowerLawFit:
    """Fit ``loss = a * N**-alpha (+ c)`` in log-log space, with a bootstrap CI on alpha.

    Args:
        n: model sizes (parameters or FLOPs), one per point, shape (P,).
        loss: loss (e.g. test RMSE) at each point, shape (P,).
        floor: also fit an irreducible floor ``c >= 0`` (needs 3+ distinct sizes).
        seeds: seed of each point, shape (P,); with 2+ seeds the bootstrap resamples whole
            seeds as well as sizes.
        n_boot: bootstrap replicates (0 for none: the CI is then (nan, nan)).
        ci_level: confidence level of the percentile interval.
        drop_tail: overfitting-tail rule: ``"plateau"``, ``"rise"``, ``"none"`` or a callable
            ``(sizes, median_loss) -> keep mask`` (see the module docstring).
        tail_slope: minimum local slope for the ``"plateau"`` rule.
        diverge_factor: a point above this multiple of the best loss at the same or a
            smaller size counts as diverged.
        seed_factor: a point above this multiple of the median of the other points at its
            size (other seeds) counts as a failed run.
        min_sizes: the tail rule never keeps fewer sizes than this.
        train_loss: training loss at each point, shape (P,) (optional). With it the tail
            rules also drop trailing sizes whose median ``loss / train_loss`` exceeds
            ``gap_factor``: the overfitted grids of the paper.
        gap_factor: see ``train_loss``.
        rng: seed or generator for the bootstrap (default 0: reproducible).

    Returns:
        A :class:`PowerLawFit`. ``used_mask`` and ``dropped`` say which points took part.

    Raises:
        ValueError: if shapes differ, or fewer than two distinct usable sizes remain
            (three with ``floor=True``).

    Example:
        >>> fit = fit_power_law([10, 100, 1000], [1e-1, 1e-3, 1e-5], n_boot=0)
        >>> round(fit.alpha, 6), fit.n_range
        (2.0, (10.0, 1000.0))
    """
    n = np.asarray(n, dtype=float).reshape(-1)
    loss = np.asarray(loss, dtype=float).reshape(-1)
    if n.shape != loss.shape:
        raise ValueError(f"n has {n.size} points but loss has {loss.size}")
    seeds_arr = None if seeds is None else np.asarray(seeds).reshape(-1)
    if seeds_arr is not None and seeds_arr.shape != n.shape:
        raise ValueError(f"seeds has {seeds_arr.size} entries for {n.size} points")
    dropped: list[DroppedPoint] = []
    used = np.ones(n.size, dtype=bool)

    def drop(mask: np.ndarray, reason: str) -> None:
        for i in np.flatnonzero(mask & used):
            dropped.append(DroppedPoint(int(i), float(n[i]), float(loss[i]), reason))
        used[mask] = False

    with np.errstate(invalid="ignore"):
        drop(~np.isfinite(n) | (n <= 0), "size not finite or not positive")
        drop(~np.isfinite(loss), "loss not finite (diverged)")
        drop(loss <= 0, "loss not positive")
    drop(
        _failed(n, loss, used, seed_factor),
        f"failed run: loss above {seed_factor:g}x the median of the other seeds at this size",
    )
    drop(
        _diverged(n, loss, used, diverge_factor),
        f"diverged: loss above {diverge_factor:g}x the best loss at the same or a smaller size",
    )
    if used.any() and drop_tail not in (None, "none"):
        sizes, med = _size_medians(n[used], loss[used])
        gap = None
        if train_loss is not None:
            tr = np.asarray(train_loss, dtype=float).reshape(-1)
            if tr.shape != n.shape:
                raise ValueError(f"train_loss has {tr.size} points for {n.size}")
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(tr > 0, loss / tr, np.nan)
            gap = np.array([np.nanmedian(ratio[used & (n == z)])
                            if np.isfinite(ratio[used & (n == z)]).any() else np.nan
                            for z in sizes])
        keep = tail_mask(sizes, med, drop_tail, tail_slope=tail_slope, min_sizes=min_sizes,
                         gap=gap, gap_factor=gap_factor)
        if not keep.all():
            last = sizes[keep].max()
            name = drop_tail if isinstance(drop_tail, str) else "custom"
            why = f"{name} rule" + (f", test/train gap > {gap_factor:g}" if gap is not None else "")
            drop(n > last, f"overfitting tail ({why}): beyond N={last:.4g}")
    need = 3 if floor else 2
    n_sizes = len(np.unique(n[used]))
    if n_sizes < need:
        reasons = "; ".join(sorted({d.reason for d in dropped})) or "none dropped"
        raise ValueError(
            f"only {n_sizes} distinct usable sizes, a fit needs {need} (dropped: {reasons})"
        )
    nu, lu = n[used], loss[used]
    alpha, loga, c = _fit_once(nu, lu, floor)
    pred = np.exp(loga) * nu**-alpha + c
    rms = float(np.sqrt(np.mean(np.log10(lu / pred) ** 2)))
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    nan2 = (float("nan"), float("nan"))
    alpha_ci, a_ci, n_ok = nan2, nan2, 0
    boot: dict[str, Any] = {}
    if n_boot > 0:
        su = None if seeds_arr is None else seeds_arr[used]
        alphas, logas = _bootstrap(nu, lu, su, floor, n_boot, gen)
        boot = {"boot_alpha": alphas, "boot_log_a": logas}  # for n_at_ci
        n_ok = len(alphas)
        if n_ok:
            q = [(1 - ci_level) / 2 * 100, (1 + ci_level) / 2 * 100]
            alpha_ci = tuple(float(v) for v in np.percentile(alphas, q))
            a_ci = tuple(float(v) for v in np.exp(np.percentile(logas, q)))
    rule = (
        f"dropped: non-finite/non-positive; > {seed_factor:g}x other seeds' median at N; "
        f"> {diverge_factor:g}x best loss at N' <= N; "
        f"tail rule {drop_tail if isinstance(drop_tail, str) or drop_tail is None else 'custom'}"
        f" (tail_slope={tail_slope:g}, min_sizes={min_sizes}"
        f"{f', gap_factor={gap_factor:g}' if train_loss is not None else ''})"
    )
    dropped.sort(key=lambda d: d.index)
    return PowerLawFit(
        alpha=alpha,
        alpha_ci=alpha_ci,
        a=float(np.exp(loga)),
        c=c,
        n_range=(float(nu.min()), float(nu.max())),
        used_mask=used,
        dropped=tuple(dropped),
        floor=floor,
        n_points=int(used.sum()),
        n_sizes=n_sizes,
        n_boot=n_ok,
        ci_level=ci_level,
        rms_log_residual=rms,
        a_ci=a_ci,
        rule=rule,
        extra=boot,
    )
