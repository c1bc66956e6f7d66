"""From finished runs to the study's tables: cells, verdicts, summaries, N(eps), extrapolation.

Pure functions of the plan and one dict per compared run (``run_rows``), so the statistics
are tested on hand-made results without training anything. The statistics themselves
(t intervals, the paired test and its tie rule, N(eps)) are in :mod:`kanplatform.compare.stats`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from kanplatform.compare.plan import Plan
from kanplatform.compare.spec import AXIS_KEYS
from kanplatform.compare.stats import (
    default_eps,
    finite_or_none,
    mean_ci,
    metric_bounds,
    n_measured,
    paired_verdict,
    to_error,
)

Row = dict[str, Any]


def _by_size(runs: Sequence[Mapping[str, Any]]) -> dict[tuple, list[Mapping[str, Any]]]:
    out: dict[tuple, list[Mapping[str, Any]]] = {}
    for r in runs:
        out.setdefault((r["task"], r["arm"], r["label"]), []).append(r)
    return out


def cell_rows(plan: Plan, runs: Sequence[Mapping[str, Any]]) -> list[Row]:
    """One row per cell: the metric's mean over seeds with its 95% t interval.

    Keys (``compare.json`` ``rows``): task, arm, budget, matched_by, params, flops, seeds,
    metric, mean, ci_low, ci_high, plus n, std, gmean and ci_scale (``log``: the interval
    is the geometric mean's, for a positive error; ``linear``), values (per seed), statuses,
    label, knob, width, grid_size, step (the match's resolution), mode.
    """
    groups = _by_size(runs)
    rows = []
    for cell in plan.cells:
        task = plan.tasks[cell.task]
        got = groups.get(cell.size_key, [])
        values = {r["seed"]: r.get("value") for r in got}
        s = mean_ci(list(values.values()), log_scale=task.mode == "min",
                    bounds=metric_bounds(task.metric))
        rows.append({
            "task": cell.task, "arm": cell.arm, "budget": cell.budget, "matched_by": cell.axis,
            "params": cell.sized.params, "flops": cell.sized.flops,
            "seeds": sorted(k for k, v in values.items() if finite_or_none(v) is not None),
            "metric": task.metric, "mode": task.mode, "mean": finite_or_none(s.mean),
            "ci_low": finite_or_none(s.ci_low), "ci_high": finite_or_none(s.ci_high),
            "n": s.n, "std": finite_or_none(s.std), "gmean": finite_or_none(s.gmean),
            "ci_scale": "log" if s.log_scale else "linear",
            "values": {str(k): finite_or_none(v) for k, v in sorted(values.items())},
            "statuses": sorted({str(r.get("status")) for r in got}),
            "label": cell.sized.label, "knob": cell.sized.knob,
            "width": list(cell.sized.model["width"]),
            "grid_size": cell.sized.model.get("grid_size"), "step": cell.sized.step,
        })
    return rows


def verdict_rows(plan: Plan, runs: Sequence[Mapping[str, Any]]) -> list[Row]:
    """One verdict per (task, matched_by, budget, arm pair): the paired test over seeds.

    Keys (``compare.json`` ``verdicts``): task, budget, matched_by, winner, p_value, plus
    arms, n_pairs, effect, effect_ci, ratio, log_scale, reason, excluded_seeds.
    """
    groups = _by_size(runs)
    cells = {(c.task, c.axis, c.budget, c.arm): c for c in plan.cells}
    v = plan.spec.verdict
    out = []
    for c in plan.cells:
        for a, b in plan.spec.pairs():
            if c.arm != a or (c.task, c.axis, c.budget, b) not in cells:
                continue
            other = cells[(c.task, c.axis, c.budget, b)]
            va = {r["seed"]: r.get("value") for r in groups.get(c.size_key, [])}
            vb = {r["seed"]: r.get("value") for r in groups.get(other.size_key, [])}
            res = paired_verdict(va, vb, (a, b), plan.tasks[c.task].mode, v.alpha,
                                 v.min_effect)
            out.append({
                "task": c.task, "budget": c.budget, "matched_by": c.axis, "winner": res.winner,
                "p_value": res.p_value, "arms": [a, b], "n_pairs": res.n_pairs,
                "effect": res.effect, "effect_ci": list(res.effect_ci) if res.effect_ci else None,
                "ratio": res.ratio, "log_scale": res.log_scale, "reason": res.reason,
                "excluded_seeds": res.excluded,
                "achieved": {a: c.sized.achieved, b: other.sized.achieved},
            })
    return out


def _count(verdicts: Sequence[Mapping[str, Any]], winner: str | None, axis: str) -> int:
    return sum(v["winner"] == winner for v in verdicts if v["matched_by"] == axis)


def summaries(plan: Plan, verdicts: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Per task, one line per arm pair: at how many budgets each arm won, by each matching.

    Example line: ``kan vs mlp: kan better at 2 of 3 budgets matched by params, 0 of 3 by
    FLOPs; mlp better at 0 / 2; ties 1 / 1``.
    """
    names = {"params": "params", "flops": "FLOPs"}
    out: dict[str, list[str]] = {}
    for task in plan.tasks:
        lines = []
        for a, b in plan.spec.pairs():
            mine = [v for v in verdicts if v["task"] == task and v["arms"] == [a, b]]
            axes = [ax for ax in AXIS_KEYS if any(v["matched_by"] == ax for v in mine)]
            if not axes:
                continue
            n = {ax: sum(v["matched_by"] == ax for v in mine) for ax in axes}
            wins = [f"{_count(mine, a, ax)} of {n[ax]} " + ("budgets matched by " if i == 0
                                                           else "by ") + names[ax]
                    for i, ax in enumerate(axes)]
            line = (f"{a} vs {b}: {a} better at {', '.join(wins)}; {b} better at "
                    f"{' / '.join(str(_count(mine, b, ax)) for ax in axes)}; ties "
                    f"{' / '.join(str(_count(mine, 'tie', ax)) for ax in axes)}")
            none = sum(_count(mine, None, ax) for ax in axes)
            if none:
                line += f"; {none} without a verdict (too few finished seeds)"
            lines.append(line)
        out[task] = lines
    return out


def _fit_settings(plan: Plan) -> Any:
    from kanplatform.scaling.spec import FitSpec

    return dataclasses.replace(FitSpec(), **plan.spec.n_eps.fit)


def n_eps_rows(plan: Plan, runs: Sequence[Mapping[str, Any]],
               cells: Sequence[Mapping[str, Any]]) -> list[Row]:
    """N(eps) per task, arm, size axis and eps: measured and from a power-law fit.

    Keys (``compare.json`` ``n_eps``): task, arm, eps, n_measured, n_fit, n_fit_ci, plus
    axis, alpha, alpha_ci, extrapolated (``n_fit`` outside the fitted sizes), fit_error.
    """
    from kanplatform.scaling import fit_power_law

    f = _fit_settings(plan)
    out = []
    for tname, task in plan.tasks.items():
        mode = task.mode
        eps_list = (plan.spec.tasks[tname].eps or plan.spec.n_eps.eps
                    or default_eps([c["mean"] for c in cells if c["task"] == tname
                                    and c["mean"] is not None], plan.spec.n_eps.quantiles, mode))
        for axis in plan.spec.n_eps.axes:
            key = AXIS_KEYS[axis]
            for arm in plan.spec.arms:
                mine = {(c["label"]): c for c in cells if c["task"] == tname and c["arm"] == arm}
                sizes = [c[axis] for c in mine.values()]
                means = [c["mean"] for c in mine.values()]
                pts = [r for r in runs if r["task"] == tname and r["arm"] == arm]
                n = [r.get(key) for r in pts]
                err = [to_error(r.get("value"), mode) for r in pts]
                train = [r.get("train") for r in pts] if f.gap_factor is not None else None
                fit, why = None, None
                try:
                    fit = fit_power_law(
                        [math.nan if v is None else v for v in n],
                        [math.nan if v is None else v for v in err],
                        seeds=[r["seed"] for r in pts], floor=f.floor, n_boot=f.n_boot,
                        ci_level=f.ci_level, drop_tail=f.drop_tail, tail_slope=f.tail_slope,
                        diverge_factor=f.diverge_factor, seed_factor=f.seed_factor,
                        train_loss=None if train is None or None in train or mode != "min"
                        else train, gap_factor=f.gap_factor or 2.0, min_sizes=f.min_sizes)
                except ValueError as e:
                    why = str(e)
                for eps in eps_list:
                    row = {"task": tname, "arm": arm, "axis": axis, "eps": eps,
                           "n_measured": n_measured(sizes, means, eps, mode),
                           "n_fit": None, "n_fit_ci": None, "alpha": None, "alpha_ci": None,
                           "extrapolated": None, "fit_error": why}
                    if fit is not None:
                        e = to_error(eps, mode)
                        nf = fit.n_at(e)
                        row.update(n_fit=finite_or_none(nf),
                                   n_fit_ci=[finite_or_none(x) for x in fit.n_at_ci(e)],
                                   alpha=fit.alpha, alpha_ci=list(fit.alpha_ci),
                                   extrapolated=not (fit.n_range[0] <= nf <= fit.n_range[1]))
                    out.append(row)
    return out


def extrapolation_rows(plan: Plan, runs: Sequence[Mapping[str, Any]]) -> list[Row]:
    """Per cell of a task with an OOD split: ``ood/rmse`` beside ``test/rmse`` (mean, CI).

    Keys (``compare.json`` ``extrapolation``): task, arm, budget, matched_by, ood_metric,
    ood_mean, ood_ci_low, ood_ci_high (the geometric mean's interval, on log), test_mean, ratio
    (ood / test), params, flops.
    """
    groups = _by_size(runs)
    out = []
    for cell in plan.cells:
        if not plan.tasks[cell.task].ood:
            continue
        got = groups.get(cell.size_key, [])
        ood = mean_ci([r.get("ood/rmse") for r in got], log_scale=True)
        test = mean_ci([r.get("test/rmse") for r in got])
        ratio = ood.mean / test.mean if test.n and ood.n and test.mean > 0 else math.nan
        out.append({
            "task": cell.task, "arm": cell.arm, "budget": cell.budget,
            "matched_by": cell.axis, "ood_metric": "ood/rmse",
            "ood_mean": finite_or_none(ood.mean), "ood_ci_low": finite_or_none(ood.ci_low),
            "ood_ci_high": finite_or_none(ood.ci_high), "test_mean": finite_or_none(test.mean),
            "ratio": finite_or_none(ratio), "n": ood.n, "params": cell.sized.params,
            "flops": cell.sized.flops, "shell": list(plan.spec.ood.shell),
        })
    return out
