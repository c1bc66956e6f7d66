"""The sweep sections of ``report.html`` for a search experiment (see :mod:`.sweep`).

Best-trial banner with the command that reruns it, the search spec, the trials sorted by the
search's metric and mode (status, stop reason), parallel coordinates and scatter plots over
the sampled keys, a rank-correlation importance, the top trials' learning curves and ASHA's
rung decisions. A section appears only when it has data. The plotted values are also
embedded as JSON (``<script type=application/json id=sweep-data>``) for tools and tests.
"""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path
from typing import Any

from kanplatform.tracking import svgplot
from kanplatform.tracking.figures import plain_log_y
from kanplatform.tracking.report import _cell, _e, _fig_png, _img, _kv_table
from kanplatform.tracking.sweep import (
    BEST_CONFIG,
    IMPORTANCE_METHOD,
    Sweep,
    Trial,
    importance,
    rungs,
    stage_values,
)

TOP_CURVES = 6  # trials drawn in the learning-curve figure
VALUE_COLUMNS = ("grid/stage", "grid/size", "train/loss", "val/rmse", "test/rmse",
                 "model/params", "restores")

CSS = """
.banner{background:#f2f8ee;border:1px solid #b9d8a8;padding:.6em 1em;border-radius:6px}
.banner.none{background:#f7f7f7;border-color:#ddd}
.banner code{font-size:12px;background:#fff;padding:2px 4px;border:1px solid #ddd}
.live{background:#fff6d6;border:1px solid #e5c85c;padding:.3em .8em;border-radius:4px}
td.reason{max-width:420px;font-size:11px;color:#444}
tr.best td{background:#f2f8ee}
.scatters svg{margin:.3em;vertical-align:top}
.bar{display:inline-block;height:10px;background:#3b528b;vertical-align:middle}
.legend{font-size:12px} .dot{display:inline-block;width:10px;height:10px;border-radius:5px;
margin-right:4px;vertical-align:middle}
td.stop{background:#fde0d0} td.cont{background:#e4f1dc} td.done{background:#d8e7f7}
"""


def best_command(sweep: Sweep, trial: Trial) -> str:
    """``kanplatform train ...`` that reruns ``trial``: its resolved config (a run config
    ``train`` accepts), ``best_config.yaml`` once the search wrote it."""
    best_file = sweep.root / BEST_CONFIG
    if sweep.final and best_file.is_file() and trial is sweep.best:
        return f"kanplatform train {shlex.quote(str(best_file))}"
    if trial.run is not None and (trial.run.path / "config.yaml").is_file():
        return f"kanplatform train {shlex.quote(str(trial.run.path / 'config.yaml'))}"
    return ""


def _short_names(keys: list[str]) -> dict[str, str]:
    tails = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: t if tails.count(t) == 1 else k for k, t in zip(keys, tails)}


def trial_label(sweep: Sweep, t: Trial) -> str:
    """``trial-0003: lr=0.12, width=[2, 2, 1]`` (its sampled values)."""
    short = _short_names(sweep.keys)
    vals = ", ".join(f"{short[k]}={svgplot.label(t.params.get(k))}" for k in sweep.keys
                     if k in t.params)
    return f"{t.trial_id}: {vals}" if vals else t.trial_id


def banner(sweep: Sweep) -> str:
    best = sweep.best
    counts = ", ".join(f"{n} {s}" for s, n in sorted(sweep.counts().items()))
    planned = f"{sweep.planned} planned; " if sweep.planned else ""
    head = (f"<p class=muted>{len(sweep.trials)} trial(s) ({planned}{_e(counts)}) · metric "
            f"<b>{_e(sweep.metric)}</b> ({_e(sweep.mode)})</p>")
    if best is None:
        return head + ("<div class='banner none' id=best><b>No trial has completed yet.</b>"
                       "</div>")
    what = "Best trial" if sweep.final else "Best trial so far"
    command = best_command(sweep, best)
    params = {k: svgplot.label(v) for k, v in best.params.items()}
    cmd = (f"<p>Rerun it: <code id=best-command>{_e(command)}</code></p>" if command else "")
    return head + (
        f"<div class=banner id=best data-trial='{_e(best.trial_id)}' "
        f"data-metric='{best.metric!r}'><b>{what}: {_e(best.trial_id)}</b> · "
        f"{_e(sweep.metric)} = <b>{best.metric:.6g}</b> ({_e(sweep.mode)})"
        f"{_kv_table(params)}{cmd}</div>")


def _domain_text(value: Any) -> str:
    if isinstance(value, dict) and len(value) == 1:
        kind, arg = next(iter(value.items()))
        if kind in ("choice", "grid_search") and isinstance(arg, list):
            return f"{kind}: " + " | ".join(svgplot.label(a) for a in arg)
        if isinstance(arg, list) and len(arg) == 2:
            return f"{kind} [{svgplot.label(arg[0])}, {svgplot.label(arg[1])}]" + (
                " (high excluded)" if kind == "randint" else "")
    return f"constant {svgplot.label(value)}"


def spec_section(sweep: Sweep) -> str:
    s = sweep.search
    if not s:
        return ""
    space = {k: _domain_text(v) for k, v in (s.get("space") or {}).items()}
    sched = s.get("scheduler") or {}
    if sched.get("kind") == "asha":
        max_t = sched.get("max_t") or "the longest grid schedule"
        sched_text = (f"ASHA: rungs in {sched.get('time_attr') or 'grid/stage'}, grace_period "
                      f"{sched.get('grace_period')}, reduction_factor "
                      f"{sched.get('reduction_factor')}, max_t {max_t}, brackets "
                      f"{sched.get('brackets')}")
    else:
        sched_text = "FIFO: every trial runs its whole budget"
    res = s.get("resources") or {}
    budget = {
        "metric": f"{s.get('metric')} ({s.get('mode')})",
        "search algorithm": s.get("search_alg"),
        "scheduler": sched_text,
        "num_samples": s.get("num_samples"),
        "trials planned": sweep.planned if sweep.planned is not None else "decided as it goes",
        "max_concurrent_trials": s.get("max_concurrent_trials") or "as many as fit",
        "resources per trial": ", ".join(f"{k} {v}" for k, v in res.items() if v is not None),
        "max_failures": s.get("max_failures"),
        "report_on": s.get("report_on"),
        "seed": s.get("seed"),
    }
    return ("<h2 id=spec>Search</h2><div class=wrap style='display:flex;gap:2em'>"
            f"<div><h3>Space</h3>{_kv_table(space) if space else '<p>listed configs</p>'}</div>"
            f"<div><h3>Budget and scheduler</h3>{_ordered_kv(budget)}</div></div>"
            f"<details><summary>search.json</summary><pre>"
            f"{_e(json.dumps(s, indent=1, default=str)[:20000])}</pre></details>")


def _ordered_kv(d: dict[str, Any]) -> str:
    rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(svgplot.label(v))}</td></tr>"
                   for k, v in d.items() if v is not None)
    return f"<table class=kv>{rows}</table>"


def trials_table(sweep: Sweep) -> str:
    cols = [c for c in VALUE_COLUMNS if c != sweep.metric
            and any(c in t.values for t in sweep.trials)]
    head = ["#", "trial", "status", sweep.metric, *sweep.keys, *cols, "reason"]
    best = sweep.best
    rows = []
    for i, t in enumerate(sweep.trials, 1):
        status = t.status
        age = t.values.get("updated_s_ago")
        if status == "running" and isinstance(age, float) and age > 120:
            status = f"running (no news for {age / 60:.0f} min)"
        cells = [_cell(i), _cell(t.trial_id), _cell(status), _cell(t.metric)]
        cells += [_cell(t.params.get(k)) for k in sweep.keys]
        cells += [_cell(t.values.get(c)) for c in cols]
        cells.append(f"<td class=reason>{_e(t.reason or '')}</td>")
        cls = " class=best" if t is best else ""
        rows.append(f"<tr{cls} data-trial='{_e(t.trial_id)}'>" + "".join(cells) + "</tr>")
    ths = "".join(f"<th title='click to sort'>{_e(h)}</th>" for h in head)
    source = "trials.csv" if sweep.final else "the run directories (the search is running)"
    return (f"<h2 id=trials>Trials</h2><p class=muted>sorted by {_e(sweep.metric)} "
            f"({_e(sweep.mode)}), from {source}</p><div class=wrap><table id=trials-table "
            f"class=sortable><thead><tr>{ths}</tr></thead><tbody>{''.join(rows)}</tbody>"
            "</table></div>")


def _plot_rows(sweep: Sweep) -> list[dict[str, Any]]:
    return [{"trial_id": t.trial_id, "status": t.status, "params": t.params,
             "metric": t.metric} for t in sweep.trials if t.status != "pending"]


def charts(sweep: Sweep) -> str:
    rows = _plot_rows(sweep)
    if not sweep.keys or not rows:
        return ""
    domains = {k: sweep.domain(k) for k in sweep.keys}
    best = sweep.best.trial_id if sweep.best else None
    parts = []
    if len(rows) >= 2:
        parts += ["<h2 id=parallel>Parallel coordinates</h2>",
                  f"<p class=muted>one line per trial; colour: {_e(sweep.metric)}, bright = "
                  "best; dashed: no value yet; the best trial is drawn thicker</p>",
                  f"<div class=wrap>{svgplot.parallel_coordinates(rows, sweep.keys, sweep.metric, sweep.mode, domains, best)}</div>"]  # noqa: E501
    if any(r["metric"] is not None for r in rows):
        statuses = sorted({r["status"] for r in rows if r["metric"] is not None})
        plots = "".join(svgplot.scatter(rows, k, sweep.metric, domains[k]) for k in sweep.keys)
        parts += [f"<h2 id=scatter>{_e(sweep.metric)} against each sampled key</h2>",
                  svgplot.legend(statuses), f"<div class='wrap scatters'>{plots}</div>"]
    return "\n".join(parts)


def importance_section(sweep: Sweep) -> str:
    rows = importance(sweep)
    if not rows:
        return ""
    body = []
    for r in rows:
        sign = "" if r["sign"] is None else f"{r['sign']:+.2f}"
        bar = f"<span class=bar style='width:{200 * r['importance']:.0f}px'></span>"
        body.append(f"<tr data-key='{_e(r['key'])}'>{_cell(r['key'])}{_cell(r['importance'])}"
                    f"<td>{bar}</td>{_cell(sign)}{_cell(r['method'])}</tr>")
    method = IMPORTANCE_METHOD.format(metric=sweep.metric, n=rows[0]["n"])
    return ("<h2 id=importance>Parameter importance</h2>"
            f"<p class=muted>{_e(method)} A ranking from few trials is a hint, not a proof."
            "</p><table id=importance-table><thead><tr><th>key</th><th>importance</th>"
            "<th></th><th>sign</th><th>method</th></tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def curves_png(sweep: Sweep) -> tuple[bytes, str] | None:
    """The learning curves of the best trials as PNG ``(bytes, curve key)``; None if none."""
    from matplotlib.figure import Figure

    with_curves = [t for t in sweep.trials if t.run is not None and "step" in t.run.history]
    if not with_curves:
        return None
    key = sweep.metric if any(sweep.metric in t.run.history for t in with_curves) \
        else "train/loss"
    top = [t for t in with_curves if key in t.run.history][:TOP_CURVES]
    fig = Figure(figsize=(8.0, 4.0 + 0.18 * len(top)), dpi=90, layout="constrained")
    ax = fig.subplots()
    for t in top:
        pts = [(s, v) for s, v in zip(t.run.history["step"], t.run.history[key])
               if math.isfinite(v) and v > 0]
        if not pts:
            continue
        metric = f" ({sweep.metric} {t.metric:.3g})" if t.metric is not None else ""
        line, = ax.plot(*zip(*pts), lw=1.3, marker="." if len(pts) < 30 else None,
                        label=f"{trial_label(sweep, t)}{metric} [{t.status}]")
        if t.status == "stopped":
            ax.plot(*pts[-1], marker="x", ms=9, color=line.get_color())
    if not ax.lines:
        return None
    plain_log_y(ax)
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=1,
              frameon=False)
    ax.set_title(f"{key} of the {len(top)} best trials (x: stopped by the scheduler)",
                 fontsize=9)
    return _fig_png(fig), key


def curves_section(sweep: Sweep) -> str:
    found = curves_png(sweep)
    if found is None:
        return ""
    png, key = found
    return ("<h2 id=curves>Learning curves of the best trials</h2>"
            + _img(png, f"{key} vs step; legend: trial, sampled values, result"))


def write_figures(sweep: Sweep, folder: Path) -> dict[str, Path]:
    """The page's figures as files (``parallel_coordinates.svg``, ``scatter_<key>.svg``,
    ``learning_curves.png``) in ``folder``: ``{name: path}``."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = _plot_rows(sweep)
    domains = {k: sweep.domain(k) for k in sweep.keys}
    out: dict[str, Path] = {}
    if sweep.keys and len(rows) >= 2:
        out["parallel_coordinates"] = folder / "parallel_coordinates.svg"
        out["parallel_coordinates"].write_text(svgplot.parallel_coordinates(
            rows, sweep.keys, sweep.metric, sweep.mode, domains,
            sweep.best.trial_id if sweep.best else None))
    if any(r["metric"] is not None for r in rows):
        for k in sweep.keys:
            name = "scatter_" + "".join(c if c.isalnum() else "_" for c in k)
            out[name] = folder / f"{name}.svg"
            out[name].write_text(svgplot.scatter(rows, k, sweep.metric, domains[k]))
    found = curves_png(sweep)
    if found is not None:
        out["learning_curves"] = folder / "learning_curves.png"
        out["learning_curves"].write_bytes(found[0])
    return out


def rungs_section(sweep: Sweep) -> str:
    found = rungs(sweep)
    if found is None:
        return ""
    milestones, attr = found
    stopped = [t for t in sweep.trials if t.status == "stopped"]
    if not milestones:  # rungs in reports, not stages: the decisions as recorded
        if not stopped:
            return ""
        items = "".join(f"<li><b>{_e(t.trial_id)}</b>: {_e(t.reason or 'stopped')}</li>"
                        for t in stopped)
        return f"<h2 id=rungs>ASHA decisions ({_e(attr)})</h2><ul>{items}</ul>"
    head = "".join(f"<th>rung {attr}={m}</th>" for m in milestones)
    rows = []
    for t in sweep.trials:
        if t.status == "pending":
            continue
        values = stage_values(t, sweep.metric)
        reached = int(t.values.get("grid/stage") or len(values) or 0)
        cells = []
        for m in milestones:
            v = values[m - 1] if len(values) >= m else None
            if v is None and t.status == "stopped" and reached == m:
                v = t.metric  # the value it was stopped with (its run has no stage record)
            if reached < m:
                cells.append("<td></td>")
                continue
            if t.status == "stopped" and reached == m:
                cls, mark = "stop", "stopped here"
            elif reached > m or t.status == "completed":
                cls, mark = "cont", "continued"
            else:
                cls, mark = "", t.status
            text = f"{v:.4g} · {mark}" if v is not None else mark
            cells.append(f"<td class='{cls}'>{_e(text)}</td>")
        rows.append(f"<tr>{_cell(t.trial_id)}{_cell(t.status)}{''.join(cells)}"
                    f"<td class=reason>{_e(t.reason or '')}</td></tr>")
    sched = sweep.search.get("scheduler") or {}
    note = (f"ASHA compares each trial reaching a rung with those that reached it before; it "
            f"continues the top 1/{sched.get('reduction_factor')} ({_e(sweep.metric)}, "
            f"{_e(sweep.mode)}) and stops the rest. Cells: the metric at the rung.")
    return (f"<h2 id=rungs>ASHA rung decisions</h2><p class=muted>{note}</p><div class=wrap>"
            f"<table id=rungs-table><thead><tr><th>trial</th><th>status</th>{head}"
            f"<th>reason</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


def data_script(sweep: Sweep) -> str:
    """The plotted data as JSON inside the page (``</`` escaped so it cannot end the tag)."""
    doc = {"metric": sweep.metric, "mode": sweep.mode, "keys": sweep.keys,
           "final": sweep.final, "best": sweep.best.trial_id if sweep.best else None,
           "trials": _plot_rows(sweep)}
    text = json.dumps(doc, default=str).replace("</", "<\\/")
    return f"<script type='application/json' id=sweep-data>{text}</script>"


def sweep_sections(sweep: Sweep) -> list[str]:
    """Every section of the sweep page, in order (empty ones left out)."""
    parts = [banner(sweep), spec_section(sweep), trials_table(sweep), charts(sweep),
             importance_section(sweep), curves_section(sweep), rungs_section(sweep),
             data_script(sweep)]
    return [p for p in parts if p]
