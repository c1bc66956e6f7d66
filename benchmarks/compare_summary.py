"""Markdown tables of a finished compare study, for a README: who wins where.

    .venv/bin/python benchmarks/compare_summary.py EXP_DIR/compare.json > table.md

One table per task: per matching (params, FLOPs) and budget, each arm's achieved count and
its mean metric over seeds with the 95% interval, and the verdict with its p-value; then
the out-of-domain errors of the synthetic tasks and N(eps). Everything is read from
``compare.json`` (nothing is recomputed).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _num(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e7:
        return str(int(v))
    if isinstance(v, float) and (abs(v) >= 1e4 or (v != 0 and abs(v) < 1e-2)):
        return f"{v:.{digits - 1}e}"
    return f"{v:.{digits}g}" if isinstance(v, float) else str(v)


def task_table(doc: Mapping[str, Any], task: str) -> list[str]:
    rows = [r for r in doc["rows"] if r["task"] == task]
    verdicts = {(v["matched_by"], v["budget"]): v for v in doc["verdicts"] if v["task"] == task}
    arms = list(doc["arms"])
    metric = rows[0]["metric"] if rows else "?"
    head = ["matched by", "budget"] + [f"{a} (count)" for a in arms] + \
        [f"{a} {metric} [95% CI]" for a in arms] + ["winner", "p"]
    out = [f"**{task}** ({metric}, {rows[0]['mode'] if rows else '?'})", "",
           "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    cells = {(r["matched_by"], r["budget"], r["arm"]): r for r in rows}
    for axis in ("params", "flops"):
        for budget in sorted({r["budget"] for r in rows if r["matched_by"] == axis}):
            got = [cells.get((axis, budget, a)) for a in arms]
            counts = [_num(r[axis]) if r else "-" for r in got]
            means = [f"{_num(r['mean'])} [{_num(r['ci_low'])}, {_num(r['ci_high'])}]"
                     if r and r["mean"] is not None else "-" for r in got]
            v = verdicts.get((axis, budget), {})
            line = [axis, _num(budget)] + counts + means + \
                [f"**{v.get('winner')}**" if v.get("winner") not in (None, "tie")
                 else str(v.get("winner")), _num(v.get("p_value"), 2)]
            out.append("| " + " | ".join(line) + " |")
    out += ["", "; ".join(doc["summary"].get(task, [])), ""]
    return out


def ood_table(doc: Mapping[str, Any]) -> list[str]:
    rows = doc.get("extrapolation") or []
    if not rows:
        return []
    out = ["**Out of domain** (inputs in the shell 1.0-1.5x the training box; params-matched "
           "budgets): mean test/rmse -> mean ood/rmse", "",
           "| task | budget | " + " | ".join(doc["arms"]) + " |", "|---|---|" +
           "---|" * len(doc["arms"])]
    by = {(r["task"], r["budget"], r["arm"]): r for r in rows if r["matched_by"] == "params"}
    for task, budget in sorted({(t, b) for t, b, _ in by}):
        vals = []
        for arm in doc["arms"]:
            r = by.get((task, budget, arm))
            vals.append(f"{_num(r['test_mean'])} -> {_num(r['ood_mean'])}" if r else "-")
        out.append(f"| {task} | {_num(budget)} | " + " | ".join(vals) + " |")
    return out + [""]


def n_eps_table(doc: Mapping[str, Any]) -> list[str]:
    rows = [r for r in doc.get("n_eps") or [] if r.get("axis", "params") == "params"]
    if not rows:
        return []
    out = ["**N(eps)** (parameters): smallest measured size reaching eps / power-law estimate",
           "", "| task | eps | " + " | ".join(doc["arms"]) + " |",
           "|---|---|" + "---|" * len(doc["arms"])]
    by = {(r["task"], r["eps"], r["arm"]): r for r in rows}
    for task, eps in sorted({(t, e) for t, e, _ in by}):
        vals = []
        for arm in doc["arms"]:
            r = by.get((task, eps, arm))
            vals.append(f"{_num(r['n_measured'])} / {_num(r['n_fit'])}" if r else "-")
        out.append(f"| {task} | {_num(eps)} | " + " | ".join(vals) + " |")
    return out + [""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("compare_json", type=Path)
    args = parser.parse_args(argv)
    doc = json.loads(args.compare_json.read_text())
    lines: list[str] = []
    for task in doc["tasks"]:
        lines += task_table(doc, task)
    lines += ood_table(doc) + n_eps_table(doc)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
