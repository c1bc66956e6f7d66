"""The scaling plot: data, fitted power laws, dropped points and the theoretical slope.

The generic :func:`kanplatform.tracking.plot_scaling` draws data and fits (and
``log_scaling`` sends that to W&B as an image and a line plot); this figure adds what a study
knows: which points each fit left out (hollow markers), the fitted range (the fit line spans
it only), and the paper's reference slope -(k+1) for KAN families.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def scaling_figure(
    rows: Sequence[Mapping[str, Any]],
    fits: Mapping[str, Any],
    *,
    x: str = "model/params",
    y: str = "test/rmse",
    series: str = "family",
    theory: Mapping[str, float | None] | None = None,
    title: str | None = None,
) -> Any:
    """Log-log plot of a study.

    Args:
        rows: the study table (dicts with ``x``, ``y``, ``series``).
        fits: ``{series: PowerLawFit}`` fitted on that series' rows in table order.
        x, y, series: the keys plotted and grouped.
        theory: ``{series: alpha}``; a dotted reference line of slope ``-alpha`` is drawn
            through the middle of that series' fit (KAN: alpha = k + 1).
        title: figure title.

    Returns:
        A matplotlib ``Figure``.
    """
    from matplotlib.figure import Figure

    labels = sorted({str(r[series]) for r in rows} | set(fits))
    colors = {label: f"C{i % 10}" for i, label in enumerate(labels)}
    fig = Figure(figsize=(6.4, 4.6), dpi=110, layout="constrained")
    ax = fig.subplots()
    for label in labels:
        pts = [r for r in rows if str(r[series]) == label]
        n = np.array([_f(r.get(x)) for r in pts])
        loss = np.array([_f(r.get(y)) for r in pts])
        fit = fits.get(label)
        used = fit.used_mask if fit is not None else np.ones(len(pts), dtype=bool)
        ok = np.isfinite(n) & np.isfinite(loss) & (n > 0) & (loss > 0)
        c = colors[label]
        ax.scatter(n[ok & used], loss[ok & used], color=c, s=16, alpha=0.8, label=f"{label}")
        if (ok & ~used).any():
            ax.scatter(n[ok & ~used], loss[ok & ~used], facecolors="none", edgecolors=c,
                       s=22, label=f"{label} (not fitted)")
        if fit is None:
            continue
        lo, hi = fit.n_range
        grid = np.geomspace(lo, hi, 60)
        ci = f" [{fit.alpha_ci[0]:.2f}, {fit.alpha_ci[1]:.2f}]" if np.isfinite(
            fit.alpha_ci[0]) else ""
        ax.plot(grid, fit.predict(grid), color=c, lw=1.8,
                label=f"{label} fit: α = {fit.alpha:.2f}{ci}")
        alpha_t = (theory or {}).get(label)
        if alpha_t:
            mid = np.sqrt(lo * hi)
            anchor = float(fit.predict(mid))
            tgrid = np.geomspace(lo, hi, 20)
            ax.plot(tgrid, anchor * (tgrid / mid) ** -alpha_t, color="0.35", ls=":", lw=1.4,
                    label=f"theory N^-{alpha_t:g} (k+1)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_ticks(ax)
    ax.set_xlabel(f"{x} (N)")
    ax.set_ylabel(y)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title or f"{y} vs {x}", fontsize=9)
    return fig


def _plain_log_ticks(ax: Any) -> None:
    """Label 1-2-5 ticks as plain numbers when N spans under 3 decades (sizes are small)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    lo, hi = ax.get_xlim()
    if lo <= 0 or np.log10(hi / lo) >= 3:
        return
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _f(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")
