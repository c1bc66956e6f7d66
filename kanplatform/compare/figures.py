"""The study's figures: metric vs size with CI bands, N(eps) bars, in- vs out-of-domain error.

Every function returns a matplotlib ``Figure`` (no pyplot state), drawn from the
``compare.json`` tables, so the report and W&B show exactly what the JSON holds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

Rows = Sequence[Mapping[str, Any]]


def _colors(arms: Sequence[str]) -> dict[str, str]:
    return {arm: f"C{i % 10}" for i, arm in enumerate(arms)}


def _positive(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f if math.isfinite(f) and f > 0 else math.nan


def metric_vs_size(rows: Rows, task: str, axis: str, arms: Sequence[str],
                   log_y: bool = True) -> Any:
    """Cell means vs the achieved size (cells matched on ``axis``), a band per arm for the
    95% CI, each seed's value as a dot, the budgets as dotted verticals."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.4), dpi=110, layout="constrained")
    ax = fig.subplots()
    colors = _colors(arms)
    mine = [r for r in rows if r["task"] == task and r["matched_by"] == axis]
    for budget in sorted({r["budget"] for r in mine}):
        ax.axvline(budget, color="0.8", ls=":", lw=0.8)
    for arm in arms:
        pts = sorted((r for r in mine if r["arm"] == arm), key=lambda r: r[axis])
        if not pts:
            continue
        x = np.array([float(r[axis]) for r in pts])
        mean = np.array([_positive(r["mean"]) if log_y else float(r["mean"] or math.nan)
                         for r in pts])
        lo = np.array([_positive(r["ci_low"]) for r in pts])
        hi = np.array([_positive(r["ci_high"]) for r in pts])
        if log_y:  # a t interval can reach below 0: draw the band from the smallest seed
            floor = [min((v for v in r["values"].values() if v), default=math.nan) for r in pts]
            lo = np.where(np.isfinite(lo), lo, np.array(floor, float))
        c = colors[arm]
        ax.plot(x, mean, marker="o", color=c, lw=1.6, label=f"{arm} (mean of seeds)")
        ok = np.isfinite(lo) & np.isfinite(hi)
        if ok.any():
            ax.fill_between(x[ok], lo[ok], hi[ok], color=c, alpha=0.18, lw=0,
                            label=f"{arm} 95% CI")
        for xi, r in zip(x, pts):
            vals = [v for v in r["values"].values() if v is not None]
            ax.scatter([xi] * len(vals), vals, color=c, s=8, alpha=0.6)
    metric = mine[0]["metric"] if mine else "metric"
    ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    name = {"params": "model/params", "flops": "model/flops"}[axis]
    ax.set_xlabel(f"{name} (achieved; dotted: budgets)")
    ax.set_ylabel(metric)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"{task}: {metric} vs {name}, matched by {axis}", fontsize=9)
    return fig


def n_eps_bars(rows: Rows, task: str, arms: Sequence[str], axis: str = "params") -> Any:
    """N(eps) per eps and arm: measured (solid) and fitted (hatched, with its 95% CI)."""
    from matplotlib.figure import Figure

    mine = [r for r in rows if r["task"] == task and r["axis"] == axis]
    eps = list(dict.fromkeys(r["eps"] for r in mine))
    fig = Figure(figsize=(6.4, 4.0), dpi=110, layout="constrained")
    ax = fig.subplots()
    colors = _colors(arms)
    width = 0.8 / max(1, 2 * len(arms))
    for j, arm in enumerate(arms):
        for i, e in enumerate(eps):
            r = next((r for r in mine if r["arm"] == arm and r["eps"] == e), None)
            if r is None:
                continue
            x = i + (2 * j - len(arms) + 0.5) * width
            if r["n_measured"]:
                ax.bar(x, r["n_measured"], width, color=colors[arm],
                       label=f"{arm} measured" if i == 0 else None)
            if r["n_fit"]:
                ci = r["n_fit_ci"] or [None, None]
                lo = r["n_fit"] - ci[0] if ci[0] else 0
                hi = ci[1] - r["n_fit"] if ci[1] else 0
                ax.bar(x + width, r["n_fit"], width, color="none", edgecolor=colors[arm],
                       hatch="//", label=f"{arm} fit (95% CI)" if i == 0 else None)
                ax.errorbar(x + width, r["n_fit"], yerr=[[max(lo, 0)], [max(hi, 0)]],
                            color=colors[arm], capsize=3, lw=1)
    ax.set_xticks(range(len(eps)), [f"{e:.3g}" for e in eps])
    ax.set_yscale("log")
    sizes = [v for r in mine for v in (r["n_measured"], r["n_fit"]) if v and v > 0]
    if sizes:  # a wide fit interval must not squash the bars: it runs off the bottom instead
        ax.set_ylim(bottom=max(min(sizes) / 10, 0.5))
    ax.set_xlabel("eps (metric level to reach)")
    ax.set_ylabel(f"N(eps): {axis} needed")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"{task}: smallest model reaching eps (missing bar: not reached)", fontsize=9)
    return fig


def ood_vs_size(rows: Rows, task: str, arms: Sequence[str], axis: str = "params") -> Any:
    """Out-of-domain (solid, with CI) and in-domain test RMSE (dashed) vs size, per arm."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), dpi=110, layout="constrained")
    ax = fig.subplots()
    colors = _colors(arms)
    mine = [r for r in rows if r["task"] == task and r["matched_by"] == axis]
    for arm in arms:
        pts = sorted((r for r in mine if r["arm"] == arm), key=lambda r: r[axis])
        if not pts:
            continue
        x = np.array([float(r[axis]) for r in pts])
        c = colors[arm]
        ax.plot(x, [_positive(r["ood_mean"]) for r in pts], marker="o", color=c,
                label=f"{arm} ood/rmse")
        lo = np.array([_positive(r["ood_ci_low"]) for r in pts])
        hi = np.array([_positive(r["ood_ci_high"]) for r in pts])
        ok = np.isfinite(lo) & np.isfinite(hi)
        if ok.any():
            ax.fill_between(x[ok], lo[ok], hi[ok], color=c, alpha=0.15, lw=0)
        ax.plot(x, [_positive(r["test_mean"]) for r in pts], ls="--", marker=".", color=c,
                label=f"{arm} test/rmse")
    ax.set_xscale("log")
    ax.set_yscale("log")
    shell = mine[0]["shell"] if mine else [1.0, 1.5]
    ax.set_xlabel(f"model/{axis} (achieved)")
    ax.set_ylabel("RMSE")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"{task}: out-of-domain (shell {shell[0]:g}-{shell[1]:g}x the box) vs test",
                 fontsize=9)
    return fig
