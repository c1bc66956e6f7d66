"""The compare section of ``report.html``: what a compare study's ``compare.json`` holds.

Summaries per task, the verdicts, the cells with their intervals, N(eps), the
out-of-domain errors and the study's figures; read from the file, never recomputed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kanplatform.tracking.report import _cell, _e, _img_file, _kv_table


def _table(rows: list[dict[str, Any]], cols: list[str], cls: str) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(_cell(r.get(c)) for c in cols) + "</tr>" for r in rows)
    return (f"<div class=wrap><table class='sortable {cls}'><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table></div>")


def compare_section(root: Path) -> tuple[str, frozenset[Path]]:
    """The ``compare.json`` of a compare study: summaries, verdicts, cells, N(eps), OOD,
    its figures. Returns ``(html, figures shown)``; empty without a readable compare.json."""
    try:
        doc = json.loads((root / "compare.json").read_text())
    except (OSError, ValueError):
        return "", frozenset()
    if not isinstance(doc, dict):
        return "", frozenset()
    parts = []
    tuned = doc.get("tuning_trials_per_arm") or {}
    for task, lines in (doc.get("summary") or {}).items():
        counts = tuned.get(task) or {}
        if isinstance(counts, dict) and counts:  # equal by construction: shown, not assumed
            lines = [*lines, "tuning trials per arm: "
                     + ", ".join(f"{arm} {n}" for arm, n in counts.items())]
        items = "".join(f"<li>{_e(line)}</li>" for line in lines)
        parts.append(f"<h3>{_e(task)}</h3><ul class=summary>{items}</ul>")
    verdicts = [{**v, "vs": " vs ".join(v.get("arms") or []),
                 "achieved": json.dumps(v.get("achieved"))} for v in doc.get("verdicts") or []]
    if verdicts:
        parts.append("<h3>Verdicts (paired t-test over seeds)</h3>" + _table(
            verdicts, ["task", "matched_by", "budget", "vs", "achieved", "winner", "p_value",
                       "ratio", "n_pairs", "reason"], "verdicts"))
    if doc.get("rows"):
        parts.append("<h3>Cells (mean over seeds, 95% CI)</h3>" + _table(
            doc["rows"], ["task", "arm", "matched_by", "budget", "params", "flops", "label",
                          "metric", "mean", "ci_low", "ci_high", "n"], "cells"))
    if doc.get("n_eps"):
        parts.append("<h3>N(eps): smallest size reaching eps</h3>" + _table(
            [{**r, "n_fit_ci": json.dumps(r.get("n_fit_ci"))} for r in doc["n_eps"]],
            ["task", "arm", "axis", "eps", "n_measured", "n_fit", "n_fit_ci", "alpha",
             "extrapolated"], "n_eps"))
    if doc.get("extrapolation"):
        parts.append("<h3>Extrapolation: out-of-domain vs test error</h3>" + _table(
            doc["extrapolation"], ["task", "arm", "matched_by", "budget", "params",
                                   "ood_mean", "ood_ci_low", "ood_ci_high", "test_mean",
                                   "ratio"], "extrapolation"))
    shown = []
    for name, rel in (doc.get("plots") or {}).items():
        path = root / str(rel)
        if path.is_file() and path.resolve().is_relative_to(root.resolve()):
            shown.append(path)
            parts.append(_img_file(path, str(name)))
    notes = {**(doc.get("conventions") or {}), **(doc.get("statistics") or {})}
    if notes:
        parts.append(f"<details><summary>conventions and statistics</summary>"
                     f"{_kv_table(notes)}</details>")
    return "\n".join(parts), frozenset(shown)
