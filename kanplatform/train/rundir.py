"""The run directory: unique names, and the files ``fit`` writes (see CONTRIBUTING.md)."""

from __future__ import annotations

import csv
import fcntl
import json
import math
import os
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


LOCK_NAME = ".lock"  # in every run directory: flock()ed by the process writing the run
RUN_FILES = ("config.yaml", "metrics.json", "model.pt", "checkpoints")


class RunDirError(RuntimeError):
    """A run directory that cannot be written: it holds a run, or another process has it."""


class RunDirLock:
    """An exclusive ``flock`` on ``RUN_DIR/.lock``, held while one process writes the run.

    The kernel drops it when the process ends however it ends (SIGKILL included), so a
    killed run never leaves a stale lock; the file itself stays (removing it would let a
    second process lock a file that a third then replaces).
    """

    def __init__(self, run_dir: Path, fd: int) -> None:
        self.run_dir, self._fd = run_dir, fd

    def release(self) -> None:
        """Give the directory up (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


def holds_run(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds (part of) a run: its config, metrics, model or checkpoints."""
    return any((Path(run_dir) / name).exists() for name in RUN_FILES)


def claim_run_dir(run_dir: str | Path, *, resume: bool = False,
                  replace: bool = False) -> RunDirLock:
    """Create ``run_dir`` if needed and take it for this process, before anything is written.

    Two processes racing for one directory: exactly one gets it, the other gets
    :class:`RunDirError` at once. A directory that already holds a run is refused unless
    the run is being resumed (``resume``) or replaced by its own restart (``replace``, a
    search trial retried from scratch).

    Raises:
        RunDirError: naming the directory, the process holding it or the run it holds, and
            what to do instead.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise RunDirError(f"run directory {run_dir} is in use by another run (pid {holder}); "
                          "wait for it to end or choose another --run-dir") from None
    if holds_run(run_dir) and not (resume or replace):
        os.close(fd)
        raise RunDirError(f"run directory {run_dir} already holds a run; continue it with "
                          f"`kanplatform train --resume {run_dir}` or choose another --run-dir "
                          "(runs are never overwritten)")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return RunDirLock(run_dir, fd)
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
