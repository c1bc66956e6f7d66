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


def arm_table(title: str, key: str, rows: list[Mapping[str, Any]], arms: list[str],
              cell: Any) -> list[str]:
    """A table with one line per (task, ``key`` value) and one column per arm: ``cell(row)``."""
    if not rows:
        return []
    out = [title, "", f"| task | {key} | " + " | ".join(arms) + " |",
           "|---|---|" + "---|" * len(arms)]
    by = {(r["task"], r[key], r["arm"]): r for r in rows}
    for task, value in sorted({(t, v) for t, v, _ in by}):
        vals = [cell(by[(task, value, arm)]) if (task, value, arm) in by else "-" for arm in arms]
        out.append(f"| {task} | {_num(value)} | " + " | ".join(vals) + " |")
    return out + [""]


def ood_table(doc: Mapping[str, Any]) -> list[str]:
    rows = [r for r in doc.get("extrapolation") or [] if r["matched_by"] == "params"]
    return arm_table("**Out of domain** (inputs in the shell 1.0-1.5x the training box; "
                     "params-matched budgets): mean test/rmse -> mean ood/rmse", "budget", rows,
                     list(doc["arms"]),
                     lambda r: f"{_num(r['test_mean'])} -> {_num(r['ood_mean'])}")


def n_eps_table(doc: Mapping[str, Any]) -> list[str]:
    rows = [r for r in doc.get("n_eps") or [] if r.get("axis", "params") == "params"]
    return arm_table("**N(eps)** (parameters): smallest measured size reaching eps / "
                     "power-law estimate", "eps", rows, list(doc["arms"]),
                     lambda r: f"{_num(r['n_measured'])} / {_num(r['n_fit'])}")


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
