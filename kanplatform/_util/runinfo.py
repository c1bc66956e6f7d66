"""Run provenance: the checkout's git commit and the versions of the packages a run uses."""

from __future__ import annotations

import functools
import subprocess
from importlib import metadata
from pathlib import Path

VERSIONED = ("kanplatform", "torch", "pytorch-lightning", "omegaconf", "numpy", "scipy",
             "ray", "wandb")


def git_sha(cwd: str | Path | None = None) -> str | None:
    """The checkout's HEAD commit (with ``-dirty`` if it has changes), or ``None``.

    Asked once per process and folder (two ``git`` processes, ~30-60 ms, were paid twice by
    every run and search trial): the code a process runs is what it imported at its start.
    """
    return _git_sha(Path(cwd).resolve() if cwd else Path(__file__).resolve().parent)


@functools.lru_cache(maxsize=16)
def _git_sha(cwd: Path) -> str | None:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=cwd, capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}-dirty" if dirty else sha


def versions() -> dict[str, str]:
    """Installed versions of the packages a run depends on (missing ones are left out);
    read once per process (the packages it imported do not change under it)."""
    return dict(_versions())


@functools.lru_cache(maxsize=1)
def _versions() -> dict[str, str]:
    out = {}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out
