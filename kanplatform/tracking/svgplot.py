"""Inline SVG charts of a search: parallel coordinates and metric-vs-key scatter plots.

Drawn here rather than with matplotlib so that the page stays crisp at any zoom, every line
and point carries its trial and values (``data-*`` attributes and a hover title), and a test
can read back exactly what was plotted. No script and nothing fetched: plain SVG markup.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from typing import Any

# viridis at 9 stops (matplotlib's colormap, sampled): the best metric is the brightest
VIRIDIS = ["#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962",
           "#addc30", "#fde725"]
STATUS_COLOURS = {"completed": "#1f77b4", "stopped": "#ff7f0e", "running": "#2ca02c",
                  "pending": "#bbbbbb"}
OTHER_COLOUR = "#d62728"  # diverged, failed, interrupted


def _e(s: Any) -> str:
    return html.escape(str(s), quote=True)


def label(v: Any) -> str:
    """A value as a short axis label (lists as JSON, floats with 4 significant digits)."""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list | tuple | dict):
        return json.dumps(v)
    return "" if v is None else str(v)


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def colour(t: float) -> str:
    """``t`` in [0, 1] on viridis (linear between the stops)."""
    t = min(1.0, max(0.0, t)) * (len(VIRIDIS) - 1)
    i = min(int(t), len(VIRIDIS) - 2)
    a, b = VIRIDIS[i], VIRIDIS[i + 1]
    f = t - i
    rgb = [round(int(a[k:k + 2], 16) * (1 - f) + int(b[k:k + 2], 16) * f) for k in (1, 3, 5)]
    return "#" + "".join(f"{c:02x}" for c in rgb)


class Axis:
    """Maps the values of one key (or of the metric) to [0, 1].

    Numbers: linear, or log when the domain is ``loguniform`` or the positive values span
    more than a factor 20 (5 for the metric, which has no domain). A ``choice`` or
    ``grid_search`` key, and anything not a number (lists, strings, booleans): categories,
    evenly spaced in the domain's order (numbers sorted), else in order of appearance.
    """

    def __init__(self, name: str, values: Sequence[Any], domain: tuple[str, Any] | None = None):
        self.name = name
        known = [v for v in values if v is not None]
        listed = bool(domain and domain[0] in ("choice", "grid_search")
                      and isinstance(domain[1], list))
        if listed:  # the listed values, numbers in order: no ticks between them
            opts = list(domain[1])
            if all(_number(v) for v in opts):
                opts.sort()
            known = [*opts, *known]
        self.numeric = bool(known) and not listed and all(_number(v) for v in known)
        self.log = False
        self.categories: list[str] = []
        if not self.numeric:
            for v in known:
                if label(v) not in self.categories:
                    self.categories.append(label(v))
            return
        lo, hi = min(map(float, known)), max(map(float, known))
        if domain and domain[0] in ("uniform", "loguniform", "randint"):
            lo, hi = min(lo, float(domain[1][0])), max(hi, float(domain[1][1]))
        self.log = lo > 0 and ((domain is not None and domain[0] == "loguniform")
                               or hi / lo > (20 if domain else 5))
        self.lo, self.hi = (math.log10(lo), math.log10(hi)) if self.log else (lo, hi)

    def __call__(self, v: Any) -> float | None:
        if v is None:
            return None
        if not self.numeric:
            text = label(v)
            if text not in self.categories:
                return None
            n = len(self.categories)
            return 0.5 if n == 1 else self.categories.index(text) / (n - 1)
        if not _number(v) or (self.log and v <= 0):
            return None
        x = math.log10(v) if self.log else float(v)
        return 0.5 if self.hi == self.lo else (x - self.lo) / (self.hi - self.lo)

    def ticks(self, n: int = 5) -> list[tuple[float, str]]:
        """``(position in [0, 1], label)`` of a few ticks."""
        if not self.numeric:
            return [(self(c) or 0.0, c) for c in self.categories] if self.categories else []
        if self.hi == self.lo:
            return [(0.5, label(10 ** self.lo if self.log else self.lo))]
        out = []
        for i in range(n):
            x = self.lo + (self.hi - self.lo) * i / (n - 1)
            out.append((i / (n - 1), label(10 ** x if self.log else x)))
        return out


def _svg(width: int, height: int, body: str, cls: str, title: str) -> str:
    return (f"<svg class='{cls}' width='{width}' "
            f"height='{height}' viewBox='0 0 {width} {height}' role='img' "
            f"aria-label='{_e(title)}'><title>{_e(title)}</title>{body}</svg>")


def _metric_colour(value: float | None, axis: Axis, mode: str) -> str:
    pos = axis(value)
    if pos is None:
        return "#bbbbbb"
    return colour(1 - pos if mode == "min" else pos)  # the best end is bright


def parallel_coordinates(trials: Sequence[dict[str, Any]], keys: Sequence[str], metric: str,
                         mode: str, domains: dict[str, tuple[str, Any] | None],
                         best: str | None = None, width: int = 960, height: int = 340) -> str:
    """One vertical axis per sampled key plus the metric; one polyline per trial.

    Args:
        trials: ``{"trial_id", "status", "params": {key: value}, "metric"}`` each.
        keys: the sampled keys (axes, left to right; the metric is the last axis).
        metric / mode: the search metric (colours the lines: bright is best).
        domains: ``{key: (kind, argument)}`` of the search space (axis order and scale).
        best: the trial drawn on top, thicker.
    """
    axes = [Axis(k, [t["params"].get(k) for t in trials], domains.get(k)) for k in keys]
    maxis = Axis(metric, [t.get("metric") for t in trials])
    all_axes = [*axes, maxis]
    left, right, top, bottom = 70, 90, 40, 30
    step = (width - left - right) / max(1, len(all_axes) - 1)
    xs = [left + i * step for i in range(len(all_axes))]

    def y(pos: float) -> float:
        return top + (1 - pos) * (height - top - bottom)

    parts = []
    order = sorted(trials, key=lambda t: t.get("trial_id") == best)  # the best one last
    for t in order:
        values = [t["params"].get(k) for k in keys] + [t.get("metric")]
        pts = [(x, a(v)) for x, a, v in zip(xs, all_axes, values)]
        coords = " ".join(f"{x:.1f},{y(p):.1f}" for x, p in pts if p is not None)
        data = json.dumps({"trial_id": t["trial_id"], "status": t["status"],
                           "params": {k: t["params"].get(k) for k in keys},
                           "metric": t.get("metric")}, default=str)
        hover = f"{t['trial_id']} ({t['status']}): " + ", ".join(
            f"{k}={label(v)}" for k, v in zip([*keys, metric], values))
        dash = "" if t.get("metric") is not None else " stroke-dasharray='4 3'"
        w = 3.2 if t.get("trial_id") == best else 1.6
        parts.append(
            f"<polyline class=trial data-trial='{_e(t['trial_id'])}' data-values='{_e(data)}' "
            f"points='{coords}' fill='none' stroke='{_metric_colour(t.get('metric'), maxis, mode)}'"
            f" stroke-width='{w}' stroke-opacity='0.85'{dash}><title>{_e(hover)}</title>"
            "</polyline>")
    for i, (x, a) in enumerate(zip(xs, all_axes)):
        last = i == len(all_axes) - 1  # the metric: ticks on the right, clear of the lines
        parts.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{top}' y2='{height - bottom}' "
                     "stroke='#555' stroke-width='1'/>")
        name = a.name + (" (log)" if a.numeric and a.log else "")
        parts.append(f"<text class=axis x='{x:.1f}' y='{top - 18}' text-anchor='middle' "
                     f"font-size='12' font-weight='bold'>{_e(name)}</text>")
        for pos, text in a.ticks():
            parts.append(f"<text x='{x + 5 if last else x - 5:.1f}' y='{y(pos) + 4:.1f}' "
                         f"text-anchor='{'start' if last else 'end'}' font-size='10' "
                         f"fill='#444'>{_e(text)}</text>")
    return _svg(width, height, "".join(parts), "parcoords",
                f"parallel coordinates of {len(trials)} trials; colour: {metric} ({mode})")


def scatter(trials: Sequence[dict[str, Any]], key: str, metric: str,
            domain: tuple[str, Any] | None, width: int = 300, height: int = 230) -> str:
    """``metric`` against one sampled key, one point per trial with a value, by status."""
    shown = [t for t in trials if t.get("metric") is not None
             and t["params"].get(key) is not None]
    xa = Axis(key, [t["params"].get(key) for t in trials], domain)
    ya = Axis(metric, [t["metric"] for t in shown])
    left, right, top, bottom = 58, 12, 22, 42
    w, h = width - left - right, height - top - bottom
    parts = [f"<rect x='{left}' y='{top}' width='{w}' height='{h}' fill='none' stroke='#999'/>"]
    jitter = 0.0 if xa.numeric else 0.02
    for i, t in enumerate(shown):
        px, py = xa(t["params"][key]), ya(t["metric"])
        if px is None or py is None:
            continue
        px = min(1.0, max(0.0, px + jitter * ((i % 5) - 2)))
        cx, cy = left + 8 + px * (w - 16), top + 6 + (1 - py) * (h - 12)
        fill = STATUS_COLOURS.get(t["status"], OTHER_COLOUR)
        hover = f"{t['trial_id']} ({t['status']}): {key}={label(t['params'][key])}, " \
                f"{metric}={label(t['metric'])}"
        parts.append(f"<circle class=point data-trial='{_e(t['trial_id'])}' "
                     f"data-x='{_e(json.dumps(t['params'][key], default=str))}' "
                     f"data-y='{t['metric']!r}' cx='{cx:.1f}' cy='{cy:.1f}' r='4.5' "
                     f"fill='{fill}' fill-opacity='0.8' stroke='#333' stroke-width='0.6'>"
                     f"<title>{_e(hover)}</title></circle>")
    for pos, text in xa.ticks(4):
        parts.append(f"<text x='{left + 8 + pos * (w - 16):.1f}' y='{top + h + 14}' "
                     f"text-anchor='middle' font-size='9' fill='#444'>{_e(text)}</text>")
    for pos, text in ya.ticks(4):
        parts.append(f"<text x='{left - 4}' y='{top + 6 + (1 - pos) * (h - 12) + 3:.1f}' "
                     f"text-anchor='end' font-size='9' fill='#444'>{_e(text)}</text>")
    xname = key + (" (log)" if xa.numeric and xa.log else "")
    parts.append(f"<text x='{left + w / 2:.1f}' y='{height - 6}' text-anchor='middle' "
                 f"font-size='11'>{_e(xname)}</text>")
    yname = metric + (" (log)" if ya.numeric and ya.log else "")
    parts.append(f"<text x='{left + w / 2:.1f}' y='14' text-anchor='middle' "
                 f"font-size='11'>{_e(yname)}</text>")
    return _svg(width, height, "".join(parts), "scatter",
                f"{metric} against {key} ({len(shown)} trials)")


def legend(statuses: Sequence[str]) -> str:
    """An HTML legend of the scatter plots' status colours."""
    items = [f"<span class=dot style='background:{STATUS_COLOURS.get(s, OTHER_COLOUR)}'>"
             f"</span>{_e(s)}" for s in statuses]
    return "<p class=legend>" + " &nbsp; ".join(items) + "</p>"
