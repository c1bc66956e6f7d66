"""``kanplatform report``: one self-contained HTML page for a run or an experiment directory.

The page embeds everything (PNG figures as base64 data URIs, inline CSS and a few lines of
inline JS to sort the run table); it loads nothing from the network — its
Content-Security-Policy forbids it — so it can be mailed, archived or opened on a cluster.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kanplatform.tracking.figures import plain_log_y
from kanplatform.tracking.livefile import write_atomic
from kanplatform.tracking.rundata import (
    METRIC_KEYS,
    Run,
    find_runs,
    read_run,
    runs_from_tables,
)
from kanplatform.tracking.sweep import is_sweep, read_sweep

MAX_RUN_SECTIONS = 24  # runs shown with curves and snapshots (best first)
MAX_OVERLAY_RUNS = 20  # runs overlaid in the experiment loss-curve figure
MAX_SWEEP_RUN_SECTIONS = 3  # a search's best trials shown with curves and splines
SINGLE_RUN_KEYS = ("model.kind", "model.width", "model.grid_size", "grid.schedule",
                   "data.dataset", "optim.name", "seed")

CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1400px}
h1{font-size:1.4em} h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:12px} td,th{border:1px solid #ddd;padding:3px 6px}
th{background:#f3f3f3;cursor:pointer;white-space:nowrap;user-select:none}
th.asc::after{content:" \\25B2"} th.desc::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.wrap{overflow-x:auto} figure{display:inline-block;margin:.4em;vertical-align:top}
figcaption{font-size:11px;color:#555} img{max-width:100%;border:1px solid #eee}
.muted{color:#777;font-size:12px}
pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:11px}
"""

# Click a header to sort by that column; numbers sort numerically, empty cells last.
SORT_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var asc = !th.classList.contains("asc");
      table.querySelectorAll("th").forEach(function (h) { h.classList.remove("asc", "desc"); });
      th.classList.add(asc ? "asc" : "desc");
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var key = function (r) { var c = r.cells[col]; return c ? c.getAttribute("data-v") : ""; };
      rows.sort(function (a, b) {
        var x = key(a), y = key(b), nx = parseFloat(x), ny = parseFloat(y);
        if (x === "" || y === "") { return x === y ? 0 : (x === "" ? 1 : -1); }
        var d = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return asc ? d : -d;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def write_report(path: str | Path, out: str | Path | None = None,
                 title: str | None = None, live_every: float | None = None) -> Path:
    """Write the HTML dashboard of a run directory or an experiment directory.

    A search experiment (``search.json``) gets the sweep page (:mod:`.sweep_page`); it may
    hold no run yet. The file is replaced atomically: a browser reloading it never reads
    half a page.

    Args:
        path: a run directory (``config.yaml``/``metrics.json``/``history.csv``) or a folder
            holding run directories at any depth up to 4 (a search or scaling study).
        out: the HTML file; default ``path/report.html``.
        title: page title; default the directory's name.
        live_every: the experiment is still running and the page is rewritten every this
            many seconds: it says so and reloads itself as often.

    Returns:
        The path of the HTML file written.

    Raises:
        FileNotFoundError: if ``path`` is not a directory or holds no run.

    Example:
        >>> write_report("runs/exp1")  # doctest: +SKIP
        PosixPath('runs/exp1/report.html')
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory")
    run_dirs = find_runs(root)
    if not is_single(root, run_dirs):
        resolved = {d.resolve() for d in run_dirs}
        run_dirs += [d for d in runs_from_tables(root) if d.resolve() not in resolved]
    if not run_dirs and not is_sweep(root) and not live_every:  # live: it is starting
        raise FileNotFoundError(
            f"{root} holds no run directory (a folder with config.yaml, metrics.json or "
            "history.csv, as `kanplatform train` writes)")
    runs = [read_run(d, root) for d in run_dirs]
    runs.sort(key=_rank)
    out = Path(out) if out is not None else root / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, render(root, runs, title or root.resolve().name, live_every))
    return out


def is_single(root: Path, run_dirs: list[Path]) -> bool:
    """Whether the report is about one run directory (``root`` itself)."""
    return len(run_dirs) == 1 and run_dirs[0] == root


def _rank(run: Run) -> tuple[float, str]:
    for key in ("test/rmse", "val/rmse", "train/loss"):
        v = _num(run.metrics.get(key))
        if v is not None and math.isfinite(v):
            return (v, run.name)
    return (math.inf, run.name)


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def render(root: Path, runs: list[Run], title: str, live_every: float | None = None) -> str:
    """The whole page as a string (see :func:`write_report`)."""
    single = is_single(root, [r.path for r in runs])
    sweep = None if single else read_sweep(root, runs, live=bool(live_every))
    parts = [
        f"<h1>{_e(title)}</h1>",
        f"<p class=muted>{len(runs)} run(s) under <code>{_e(str(root))}</code> · generated "
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')} by kanplatform report</p>",
    ]
    if live_every:
        parts.append(f"<p class=live id=live>Live: the experiment is running. This page is "
                     f"rewritten while it runs (at most every {live_every:g} s) and reloads "
                     f"itself; last written {time.strftime('%H:%M:%S')}.</p>")
    extra_css = ""
    if sweep is not None:
        from kanplatform.tracking.sweep_page import CSS as SWEEP_CSS
        from kanplatform.tracking.sweep_page import sweep_sections

        extra_css = SWEEP_CSS
        parts += sweep_sections(sweep)
        shown = [t.run for t in sweep.trials if t.run is not None][:MAX_SWEEP_RUN_SECTIONS]
        if shown:
            parts.append("<h2 id=best-runs>The best trials' runs</h2>")
        parts += [_run_section(run, False) for run in shown]
    elif not runs and not (root / "compare.json").is_file():
        parts.append("<p id=starting>Nothing has started yet: no run directory so far.</p>")
    else:
        from kanplatform.tracking.report_compare import compare_section

        compare, shown = compare_section(root)
        if compare:  # the answer before the runs
            parts += ["<h2 id=compare>Compare</h2>", compare]
        parts += ["<h2 id=runs-heading>Runs</h2>", runs_table(runs, single)]
        if not single:
            overlay = _overlay_figure(runs)
            if overlay:
                parts += ["<h2>Loss curves</h2>", overlay]
        scaling = _scaling_section(root, runs, exclude=shown)
        if scaling:
            parts += ["<h2>Scaling</h2>", scaling]
        for run in runs[:MAX_RUN_SECTIONS]:
            parts.append(_run_section(run, single))
        if len(runs) > MAX_RUN_SECTIONS:
            parts.append(f"<p class=muted>{len(runs) - MAX_RUN_SECTIONS} more runs are in the "
                         "table only (sections show the best runs).</p>")
    body = "\n".join(parts)
    reload = (f"setTimeout(function () {{ location.reload(); }}, {int(live_every * 1000)});"
              if live_every else "")
    csp = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
           "script-src 'unsafe-inline'")
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        '<link rel=icon href="data:,">'
        f"<title>{_e(title)}</title><style>{CSS}{extra_css}</style></head>\n<body>\n{body}\n"
        f"<script>{SORT_JS}{reload}</script>\n</body></html>\n"
    )


# -- tables ---------------------------------------------------------------------------------

def _config_columns(runs: list[Run], single: bool) -> list[str]:
    keys = sorted({k for r in runs for k in r.config})
    if single or len(runs) == 1:
        return [k for k in SINGLE_RUN_KEYS if k in keys]
    varying = [k for k in keys if len({_fmt(r.config.get(k)) for r in runs}) > 1]
    shown = [k for k in ("model.kind",) if k in keys and k not in varying]
    return shown + [k for k in varying if k not in ("name", "output_dir")]


def runs_table(runs: list[Run], single: bool = False) -> str:
    """The sortable table of runs: name, status, metrics, then config keys."""
    metric_cols = [k for k in METRIC_KEYS if any(k in r.metrics for r in runs)]
    config_cols = _config_columns(runs, single)
    has_status = any("status" in r.metrics for r in runs)
    head = ["run"] + (["status"] if has_status else []) + metric_cols + config_cols
    rows = []
    for r in runs:
        cells = [_cell(r.name)]
        if has_status:
            cells.append(_cell(r.metrics.get("status")))
        cells += [_cell(r.metrics.get(k)) for k in metric_cols]
        cells += [_cell(r.config.get(k)) for k in config_cols]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    ths = "".join(f"<th title='click to sort'>{_e(h)}</th>" for h in head)
    return (f"<div class=wrap><table id=runs class=sortable><thead><tr>{ths}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _cell(v: Any) -> str:
    n = _num(v)
    if n is not None:
        return f"<td class=num data-v='{n!r}'>{_e(_fmt(v))}</td>"
    text = _fmt(v)
    return f"<td data-v='{_e(text)}'>{_e(text)}</td>"


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v)
    return str(v)


def _kv_table(d: dict[str, Any]) -> str:
    rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(_fmt(v))}</td></tr>" for k, v in sorted(d.items()))
    return f"<table class=kv>{rows}</table>"


# -- figures ----------------------------------------------------------------------------------

def _img(png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f"<figure><img alt='{_e(caption)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _img_file(path: Path, caption: str | None = None) -> str:
    try:
        return _img(path.read_bytes(), caption or path.name)
    except OSError:
        return ""


def _fig_png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


# Figures drawn from data alone, by a digest of that data: a live page (rewritten every few
# seconds while a study trains) redraws only the curves that changed; drawing costs ~0.4 s
# a figure, which for a study's 20+ runs outweighed the trainings themselves.
_PNG_CACHE: dict[str, bytes | None] = {}
_PNG_CACHE_MAX = 512
_PNG_LOCK = threading.Lock()  # a live page's thread and the driver may both write pages


def _cached_png(data: Any, draw: Callable[[], Any | None]) -> bytes | None:
    """The PNG of ``draw()`` (a Figure or None), drawn once per distinct ``data`` (JSON) in
    this process: the same data gives the same bytes as drawing again."""
    key = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
    with _PNG_LOCK:
        if key in _PNG_CACHE:
            return _PNG_CACHE[key]
    fig = draw()
    png = None if fig is None else _fig_png(fig)
    with _PNG_LOCK:
        if len(_PNG_CACHE) >= _PNG_CACHE_MAX:
            _PNG_CACHE.pop(next(iter(_PNG_CACHE)))  # the oldest entry
        _PNG_CACHE[key] = png
    return png


def _curve_keys(history: dict[str, list[float]]) -> list[str]:
    keys = [k for k in ("train/loss", "val/rmse", "train/rmse", "test/rmse") if k in history]
    return [k for k in keys if any(math.isfinite(v) and v > 0 for v in history[k])]


def curves_figure(run: Run) -> Any | None:
    """Loss curves of one run vs step (log y), grid-stage boundaries as dotted lines."""
    from matplotlib.figure import Figure

    h = run.history
    keys = _curve_keys(h)
    if "step" not in h or not keys:
        return None
    # fixed margins: a constrained layout measured every tick label twice (~1/3 of the cost)
    fig = Figure(figsize=(6.0, 3.4), dpi=90)
    fig.subplots_adjust(left=0.12, right=0.98, bottom=0.14, top=0.91)
    ax = fig.subplots()
    for key in keys:
        pts = [(s, v) for s, v in zip(h["step"], h[key]) if math.isfinite(v) and v > 0]
        if pts:
            ax.plot(*zip(*pts), label=key, lw=1.2, marker="." if len(pts) < 30 else None)
    sizes = h.get("grid/size")
    if sizes:
        last = None
        for s, g in zip(h["step"], sizes):
            if math.isfinite(g) and last is not None and g != last:
                ax.axvline(s, color="grey", ls=":", lw=0.8)
                ax.text(s, 1, f" G={g:g}", transform=ax.get_xaxis_transform(), fontsize=7,
                        va="top", color="grey")
            if math.isfinite(g):
                last = g
    plain_log_y(ax)
    ax.set_xlabel("step")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(run.name, fontsize=9)
    return fig


def _overlay_figure(runs: list[Run]) -> str:
    out = []
    for key in ("val/rmse", "train/loss"):
        shown = [r for r in runs[:MAX_OVERLAY_RUNS] if key in r.history and "step" in r.history]
        if not shown:
            continue
        data = ["overlay", key, [(r.name, r.history["step"], r.history[key]) for r in shown]]
        png = _cached_png(data, lambda key=key, shown=shown: _overlay(key, shown))
        out.append(_img(png, f"{key} of the {len(shown)} best runs"))
    return "".join(out)


def _overlay(key: str, shown: list[Run]) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 3.8), dpi=90)  # fixed margins, as curves_figure
    fig.subplots_adjust(left=0.13, right=0.98, bottom=0.13, top=0.97)
    ax = fig.subplots()
    for r in shown:
        pts = [(s, v) for s, v in zip(r.history["step"], r.history[key])
               if math.isfinite(v) and v > 0]
        if pts:
            ax.plot(*zip(*pts), lw=1.0, label=r.name)
    plain_log_y(ax)
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    ax.grid(True, which="both", alpha=0.3)
    if len(shown) <= 12:
        ax.legend(fontsize=6)
    return fig


def _scaling_section(root: Path, runs: list[Run], exclude: frozenset[Path] = frozenset()) -> str:
    parts = []
    pngs = sorted({*root.glob("*.png"), *(root / "figures").glob("*.png")} - exclude)
    parts += [_img_file(p, str(p.relative_to(root))) for p in pngs
              if not p.name.startswith("splines_")]
    scaling_json = root / "scaling.json"
    if scaling_json.is_file():
        text = scaling_json.read_text()
        parts.append(_fits_table(text))
        parts.append(f"<details><summary>scaling.json</summary><pre>{_e(text[:20000])}</pre>"
                     "</details>")
    best = root / "best_config.yaml"
    if best.is_file():
        parts.append(f"<details><summary>best_config.yaml</summary>"
                     f"<pre>{_e(best.read_text()[:20000])}</pre></details>")
    if not pngs and len(runs) > 1 and not exclude:
        fig = _auto_scaling(runs)
        if fig is not None:
            parts.append(_img(_fig_png(fig), "test/rmse vs model/params of the runs (no fit)"))
    return "".join(parts)


def _fits_table(text: str) -> str:
    """The fitted exponents of a ``scaling.json`` (``families.<f>.fits.<axis>``), if any."""
    try:
        families = json.loads(text).get("families", {})
    except (ValueError, AttributeError):
        return ""
    rows = []
    for fam, info in sorted(families.items()) if isinstance(families, dict) else ():
        fits = info.get("fits", {}) if isinstance(info, dict) else {}
        for axis, fit in sorted(fits.items()) if isinstance(fits, dict) else ():
            if not isinstance(fit, dict) or "alpha" not in fit:
                continue
            ci = fit.get("alpha_ci") or [None, None]
            rows.append("<tr>" + "".join(_cell(v) for v in (
                fam, axis, fit.get("alpha"), ci[0], ci[1], info.get("theory_alpha"),
                fit.get("n_points"))) + "</tr>")
    if not rows:
        return ""
    head = "".join(f"<th>{h}</th>" for h in ("family", "x", "alpha", "CI low", "CI high",
                                             "theory alpha", "points"))
    return (f"<div class=wrap><table class='sortable fits'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _auto_scaling(runs: list[Run]) -> Any | None:
    from kanplatform.tracking.figures import plot_scaling

    rows = []
    for r in runs:
        n, loss = _num(r.metrics.get("model/params")), _num(r.metrics.get("test/rmse"))
        if n and loss and n > 0 and loss > 0:
            rows.append({"kind": r.config.get("model.kind", "runs"), "n": n, "loss": loss})
    if len({row["n"] for row in rows}) < 2:
        return None
    return plot_scaling(rows, x="n", y="loss", series="kind",
                        title="test/rmse vs model/params")


def _run_section(run: Run, single: bool) -> str:
    parts = [f"<h2 id='run-{_e(run.name)}'>Run {_e(run.name)}</h2>" if not single
             else "<h2>Curves and splines</h2>"]
    png = _cached_png(["curves", run.name, run.history], lambda: curves_figure(run))
    if png is not None:
        parts.append(_img(png, "loss curves"))
    for p in run.snapshot_pngs():
        parts.append(_img_file(p, p.stem.replace("splines_", "splines: ")))
    for p in run.other_pngs():
        parts.append(_img_file(p))
    stages = run.metrics_raw.get("stages")
    if isinstance(stages, list) and stages and all(isinstance(s, dict) for s in stages):
        cols = list(dict.fromkeys(k for s in stages for k in s))
        head = "".join(f"<th>{_e(c)}</th>" for c in cols)
        body = "".join("<tr>" + "".join(_cell(s.get(c)) for c in cols) + "</tr>"
                       for s in stages)
        parts.append(f"<h3>Grid stages</h3><div class=wrap><table class='sortable stages'>"
                     f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")
    if run.config:
        parts.append(f"<details><summary>config</summary>{_kv_table(run.config)}</details>")
    extra = {k: v for k, v in run.metrics.items() if k not in METRIC_KEYS}
    versions = run.metrics_raw.get("versions")
    if isinstance(versions, dict):
        extra.update({f"versions.{k}": v for k, v in versions.items()})
    if extra:
        parts.append(f"<details><summary>run metadata</summary>{_kv_table(extra)}</details>")
    return "\n".join(parts)


def _e(s: str) -> str:
    return html.escape(str(s), quote=True)

