"""The run directory: unique names, and the files ``fit`` writes (see CONTRIBUTING.md)."""

from __future__ import annotations

import csv
import json
import math
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch


def new_run_dir(output_dir: str | Path, name: str) -> Path:
    """Create and return ``output_dir/<name>-<YYYYmmdd-HHMMSS>-<6 hex>``.

    The random suffix comes from ``secrets`` (not a seeded generator), so parallel runs of
    the same config never collide; ``mkdir(exist_ok=False)`` makes sure of it.
    """
    root = Path(output_dir).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for _ in range(100):
        path = root / f"{name}-{stamp}-{secrets.token_hex(3)}"
        try:
            path.mkdir()
            return path.resolve()
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a unique run directory under {root}")


def fresh_run_dir(output_dir: str | Path, name: str) -> Path:
    """A path ``output_dir/<name>-<YYYYmmdd-HHMMSS>-<6 hex>`` that does not exist yet, not
    created: :func:`kanplatform.train.fit` creates it once the run's data has loaded, so a
    run refused for its data leaves nothing behind."""
    root = Path(output_dir).expanduser()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for _ in range(100):
        path = root / f"{name}-{stamp}-{secrets.token_hex(3)}"
        if not path.exists():
            return path.resolve()
    raise RuntimeError(f"could not find a free run directory name under {root}")


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, torch.Tensor):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf
    return value


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as indented JSON (NaN/inf become strings)."""
    path.write_text(json.dumps(_json_safe(data), indent=2) + "\n")


def write_history(path: Path, history: Mapping[int, Mapping[str, float]]) -> None:
    """Write ``{step: {metric: value}}`` as ``history.csv``, one row per step, sorted."""
    keys: list[str] = []
    for row in history.values():
        keys += [k for k in row if k not in keys]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", *keys])
        for step in sorted(history):
            writer.writerow([step, *(history[step].get(k, "") for k in keys)])
