"""Reading run and experiment directories back (the layout in CONTRIBUTING.md)."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kanplatform._util.dotted import flatten

RUN_MARKERS = ("config.yaml", "metrics.json", "history.csv", "live.json")
SKIP_DIRS = {"wandb", "checkpoints", "figures", "__pycache__"}
METRIC_KEYS = ("test/rmse", "val/rmse", "train/rmse", "train/loss", "model/params",
               "model/flops", "wall_time_s")


@dataclass
class Run:
    """What a run directory recorded.

    Attributes:
        path: the run directory.
        name: its path relative to the report's root ("." for the root itself).
        config: the resolved config, flattened to dotted keys (``model.grid_size``).
        metrics: final metrics and counts (``test/rmse``, ``model/params``, ``status``...).
        history: ``history.csv`` as columns (floats, NaN where empty).
        metrics_raw: ``metrics.json`` as written.
        live: ``live.json`` (the progress of a run still training), when the run has no
            ``metrics.json`` yet; then ``metrics`` holds its latest values and
            ``status: running``, ``history`` its curve so far.
    """

    path: Path
    name: str
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    history: dict[str, list[float]] = field(default_factory=dict)
    metrics_raw: dict[str, Any] = field(default_factory=dict)
    live: dict[str, Any] | None = None

    @property
    def figures(self) -> Path:
        return self.path / "figures"

    def snapshot_pngs(self) -> list[Path]:
        """The final spline snapshot's per-layer PNGs (else the latest snapshot's)."""
        final = sorted(self.figures.glob("splines_final_layer*.png"), key=_layer_index)
        if final:
            return final
        pngs = list(self.figures.glob("splines_*_layer*.png"))
        if not pngs:
            return []
        latest = max(pngs, key=lambda p: p.stat().st_mtime)
        tag = latest.name.rsplit("_layer", 1)[0]
        return sorted(self.figures.glob(f"{tag}_layer*.png"), key=_layer_index)

    def other_pngs(self) -> list[Path]:
        """Figures in ``figures/`` that are not spline snapshots (e.g. scaling plots)."""
        return sorted(p for p in self.figures.glob("*.png") if not p.name.startswith("splines_"))


def _layer_index(p: Path) -> int:
    try:
        return int(p.stem.rsplit("_layer", 1)[1])
    except (IndexError, ValueError):
        return 0


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` is a run directory (holds config.yaml, metrics.json or history.csv)."""
    return path.is_dir() and any((path / m).is_file() for m in RUN_MARKERS)


def find_runs(root: str | Path, max_depth: int = 4) -> list[Path]:
    """Run directories at or below ``root`` (sorted; a run's own subfolders are not searched)."""
    root = Path(root)
    if is_run_dir(root):
        return [root]
    found: list[Path] = []

    def walk(d: Path, depth: int) -> None:
        if depth > max_depth:
            return
        for sub in sorted(p for p in d.iterdir() if p.is_dir()):
            if sub.name in SKIP_DIRS or sub.name.startswith("."):
                continue
            if is_run_dir(sub):
                found.append(sub)
            else:
                walk(sub, depth + 1)

    walk(root, 1)
    return found


def runs_from_tables(root: str | Path) -> list[Path]:
    """Run directories named by an experiment's ``trials.csv`` / ``scaling.csv`` (``run_dir``).

    A search may keep its runs outside the experiment directory; its table still names them.
    """
    found: list[Path] = []
    for table in ("trials.csv", "scaling.csv"):
        path = Path(root) / table
        if not path.is_file():
            continue
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                run = row.get("run_dir")
                if run and is_run_dir(Path(run)) and Path(run) not in found:
                    found.append(Path(run))
    return found


def _float(s: str) -> float:
    try:
        return float(s)
    except (TypeError, ValueError):
        return math.nan


def read_history(path: Path) -> dict[str, list[float]]:
    """``history.csv`` as ``{column: values}``; unparsable cells become NaN."""
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    cols: dict[str, list[float]] = {}
    for row in rows:
        for k, v in row.items():
            if k is not None:
                cols.setdefault(k, []).append(_float(v))
    return cols


def read_run(path: str | Path, root: str | Path | None = None) -> Run:
    """Read one run directory; missing or unreadable files leave the fields empty."""
    path = Path(path)
    name = path.name
    if root is not None and path != Path(root):
        try:
            name = str(path.relative_to(root))
        except ValueError:  # a run outside the experiment dir (named by trials.csv)
            name = path.name
    run = Run(path=path, name=name or ".")
    cfg_file = path / "config.yaml"
    if cfg_file.is_file():
        import yaml

        from kanplatform._util.yamlfile import load_yaml

        try:
            loaded = load_yaml(cfg_file.read_text())
            run.config = flatten(loaded) if isinstance(loaded, dict) else {}
        except yaml.YAMLError:
            run.config = {}
    metrics_file = path / "metrics.json"
    if metrics_file.is_file():
        try:
            raw = json.loads(metrics_file.read_text())
        except json.JSONDecodeError:
            raw = {}
        run.metrics_raw = raw if isinstance(raw, dict) else {}
        run.metrics = _summary(run.metrics_raw)
    run.history = read_history(path / "history.csv")
    if not metrics_file.is_file():
        _merge_live(run)
    if "train/loss" not in run.metrics and run.history.get("train/loss"):
        finite = [v for v in run.history["train/loss"] if math.isfinite(v)]
        if finite:
            run.metrics["train/loss"] = finite[-1]
    return run


def _merge_live(run: Run) -> None:
    """A run still training: its latest metrics and curve from ``live.json``."""
    from kanplatform.tracking.livefile import read_live

    live = read_live(run.path)
    if live is None:
        if (run.path / "config.yaml").is_file():
            run.metrics.setdefault("status", "running")  # started; no progress written yet
        return
    run.live = live
    latest = live.get("latest") if isinstance(live.get("latest"), dict) else {}
    run.metrics.update({k: v for k, v in latest.items() if isinstance(v, int | float)})
    run.metrics["status"] = "running"
    run.metrics["step"] = live.get("step")
    hist = live.get("history")
    if not run.history and isinstance(hist, dict) and isinstance(hist.get("step"), list):
        n = len(hist["step"])
        run.history = {k: [_float(x) for x in v]
                       for k, v in hist.items() if isinstance(v, list) and len(v) == n}


def _summary(raw: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    final = raw.get("final")
    if isinstance(final, dict):
        out.update({k: v for k, v in final.items() if not isinstance(v, (dict, list))})
    for k, v in raw.items():
        if k in ("final", "stages", "versions") or isinstance(v, (dict, list)):
            continue
        out.setdefault(k, v)
    return out
