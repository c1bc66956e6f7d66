"""Run provenance: the checkout's git commit and the versions of the packages a run uses."""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path

VERSIONED = ("kanplatform", "torch", "pytorch-lightning", "omegaconf", "numpy", "scipy",
             "ray", "wandb")


def git_sha(cwd: str | Path | None = None) -> str | None:
    """The checkout's HEAD commit (with ``-dirty`` if it has changes), or ``None``."""
    cwd = Path(cwd) if cwd else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=cwd, capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}-dirty" if dirty else sha


def versions() -> dict[str, str]:
    """Installed versions of the packages a run depends on (missing ones are left out)."""
    out = {}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out
