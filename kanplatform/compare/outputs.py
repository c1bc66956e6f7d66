"""What a study leaves behind: compare.json, compare.csv, runs.csv, figures, W&B, report.

``compare.json`` is the record the other outputs are drawn from; the HTML report
(:func:`kanplatform.tracking.write_report`) reads it back for its compare section.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kanplatform.compare.matching import FLOPS_CONVENTION, PARAMS_CONVENTION
from kanplatform.compare.plan import Plan

COMPARE_JSON = "compare.json"
COMPARE_CSV = "compare.csv"
RUNS_CSV = "runs.csv"
FIGURES = "figures"
ROW_COLUMNS = ("task", "arm", "budget", "matched_by", "params", "flops", "seeds", "metric",
               "mean", "ci_low", "ci_high", "n", "std", "label", "knob", "step", "statuses")
RUN_COLUMNS = ("task", "arm", "label", "seed", "status", "metric", "value", "test/rmse",
               "ood/rmse", "model/params", "model/flops", "tuned", "reason", "run_dir")
CONVENTIONS = {
    "params": f"kanplatform.nn.count_params(model, {PARAMS_CONVENTION!r}): the trainable "
              "scalars (KAN layer in*out*(G+k+2) + out, MLP layer (in+1)*out)",
    "flops": f"kanplatform.nn.count_flops(model, {FLOPS_CONVENTION!r}): forward FLOPs per "
             "sample, Yu et al.'s formula (KAN layer in*out*(9k(G+1.5k) + 2G - 2.5k + 1) "
             "+ base; MLP layer 2*in*out + F(act)*out)",
    "matching": "each arm's knob (hidden width or grid size) with the count closest to the "
                "budget; ties to the smaller model; |achieved - budget| <= step",
}
STATISTICS = {
    "cells": "mean over seeds; 95% Student-t interval, of the geometric mean on log(metric) for "
             "a positive error (ci_scale: log), of the mean otherwise, clipped to a metric's range",
    "verdict": "two-sided paired t-test over seeds (same seed = same data sample and init "
               "seed) on log(metric) for a min metric, on the metric for a max metric (the "
               "exact sign test, p = 2 * 0.5**n, where every seed differs by the same); a "
               "winner when p < alpha and |mean difference| >= min_effect, else a tie; each "
               "budget tested on its own (no multiple-comparison correction)",
    "n_eps": "measured: smallest size whose cell mean reaches eps; fit: the power law "
             "metric = a*N^-alpha fitted to every run of the arm, inverted at eps, with the "
             "bootstrap interval of that size",
}


def write_figures(plan: Plan, result: Any) -> dict[str, Path]:
    """Save every figure under ``EXP_DIR/figures``; returns ``{name: path}``."""
    from kanplatform.compare import figures

    out_dir = result.exp_dir / FIGURES
    out_dir.mkdir(exist_ok=True)
    arms = list(plan.spec.arms)
    plots: dict[str, Path] = {}

    def save(name: str, fig: Any) -> None:
        path = out_dir / f"{name}.png"
        fig.savefig(path, format="png")
        plots[name] = path

    for task, tp in plan.tasks.items():
        log_y = tp.mode == "min"
        for axis in tp.budgets:
            save(f"{task}_{axis}", figures.metric_vs_size(result.rows, task, axis, arms, log_y))
        for axis in plan.spec.n_eps.axes:
            if any(r["task"] == task and r["axis"] == axis for r in result.n_eps):
                save(f"{task}_n_eps" + ("" if axis == "params" else f"_{axis}"),
                     figures.n_eps_bars(result.n_eps, task, arms, axis))
        if tp.ood:
            axis = "params" if "params" in tp.budgets else next(iter(tp.budgets))
            save(f"{task}_ood", figures.ood_vs_size(result.extrapolation, task, arms, axis))
    return plots


def tuning_counts(plan: Plan, result: Any) -> dict[str, dict[str, int]]:
    """``{task: {arm: tuning trials}}`` for every task and arm (0 with ``tuning.trials: 0``,
    not an empty mapping): equal across arms by construction, shown anyway."""
    out = {task: dict.fromkeys(plan.spec.arms, 0) for task in plan.tasks}
    for entry in result.tuning:
        out[entry["task"]][entry["arm"]] += len(entry["trials"])
    return out


def document(plan: Plan, result: Any) -> dict[str, Any]:
    """The ``compare.json`` document."""
    tasks = {name: {"metric": t.metric, "mode": t.mode, "io": list(t.io), "ood": t.ood,
                    "dataset": str(t.cfg.data.dataset), "budgets": t.budgets}
             for name, t in plan.tasks.items()}
    return {
        "name": plan.spec.name,
        "tasks": tasks,
        "arms": list(plan.spec.arms),
        "pairs": [list(p) for p in plan.spec.pairs()],
        "conventions": CONVENTIONS,
        "statistics": {**STATISTICS, "alpha": plan.spec.verdict.alpha,
                       "min_effect": plan.spec.verdict.min_effect},
        "summary": result.summary,
        "rows": result.rows,
        "verdicts": result.verdicts,
        "n_eps": result.n_eps,
        "extrapolation": result.extrapolation,
        "tuning": result.tuning,
        "tuning_trials_per_arm": tuning_counts(plan, result),
        "runs": result.runs,
        "plots": {k: str(p.relative_to(result.exp_dir)) for k, p in result.plots.items()},
        "trainings_run": result.trainings_run,
        "wall_time_s": result.wall_time_s,
        "study": plan.spec.to_dict(),
    }


def _clean(obj: Any) -> Any:
    """Non-finite floats to None, recursively (JSON has no nan or inf)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return _clean(obj.item())
    return obj


def _csv(path: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: json.dumps(row.get(k)) if isinstance(row.get(k), list | dict)
                             else row.get(k) for k in columns})


def write_files(plan: Plan, result: Any) -> None:
    """Write ``compare.json``, ``compare.csv`` (cells) and ``runs.csv`` (trainings)."""
    result.json_path = result.exp_dir / COMPARE_JSON
    text = json.dumps(_clean(document(plan, result)), indent=2, default=str, allow_nan=False)
    tmp = result.json_path.with_suffix(".json.tmp")
    tmp.write_text(text + "\n")
    tmp.replace(result.json_path)  # a reader never sees half a file
    _csv(result.exp_dir / COMPARE_CSV, result.rows, ROW_COLUMNS)
    _csv(result.exp_dir / RUNS_CSV, result.runs, RUN_COLUMNS)


def _table(rows: Sequence[Mapping[str, Any]]) -> Any:
    import wandb

    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]

    def cell(v: Any) -> Any:
        return json.dumps(v) if isinstance(v, list | dict) else v

    return wandb.Table(columns=cols, data=[[cell(r.get(c)) for c in cols] for r in rows])


def log_wandb(plan: Plan, result: Any) -> None:
    """One W&B run for the study (in ``EXP_DIR/wandb``): the tables, figures and summary."""
    from kanplatform.config import to_dict
    from kanplatform.tracking import finish, init_run

    base = to_dict(plan.base)
    cfg = {"name": plan.spec.name,
           "tracking": {**base["tracking"], "group": base["tracking"].get("group")
                        or plan.spec.name, "name": f"compare-{plan.spec.name}"},
           "study": plan.spec.to_dict()}
    mode = None if plan.spec.wandb == "auto" else plan.spec.wandb
    run = init_run(cfg, result.exp_dir, mode=mode)
    if run is None:
        return
    try:
        import wandb

        logged: dict[str, Any] = {}
        for name in ("rows", "verdicts", "n_eps", "extrapolation", "runs"):
            rows = getattr(result, name)
            if rows:
                logged[f"compare/{name}"] = _table(rows)
        for name, path in result.plots.items():
            logged[f"figures/{name}"] = wandb.Image(str(path))
        run.log(logged)
        for task, lines in result.summary.items():
            run.summary[f"compare/{task}/summary"] = " | ".join(lines)
        for v in result.verdicts:
            key = f"compare/{v['task']}/{v['matched_by']}/{v['budget']:g}/winner"
            run.summary[key] = v["winner"] or "none"
        run.summary["compare/trainings_run"] = result.trainings_run
        run.summary["compare/wall_time_s"] = result.wall_time_s
    finally:
        finish(None)


def write_html(result: Any) -> Path | None:
    """``report.html`` of the experiment directory (with its compare section)."""
    import sys

    from kanplatform.tracking import write_report

    try:
        return write_report(result.exp_dir)
    except Exception as err:  # noqa: BLE001 - the study's results are already written
        print(f"warning: HTML report not written ({type(err).__name__}: {err})",
              file=sys.stderr)
        return None


def summary_text(plan: Plan, result: Any) -> str:
    """What the command prints at the end: per task its lines, then where to look."""
    lines = [f"compare study {plan.spec.name}: {len(result.rows)} cells, "
             f"{len(result.runs)} compared trainings, {result.trainings_run} trained now, "
             f"{result.wall_time_s:.0f} s"]
    for task, task_lines in result.summary.items():
        lines += [f"  {task}: {line}" for line in task_lines]
    if result.missing:
        lines.append(f"  {len(result.missing)} training(s) without a result (see runs.csv)")
    lines.append(f"  compare.json: {result.json_path}")
    lines.append(f"  table:        {result.exp_dir / COMPARE_CSV}")
    if result.report:
        lines.append(f"  report:       {result.report}")
    return "\n".join(lines)
