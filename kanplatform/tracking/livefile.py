"""Reading ``RUN_DIR/live.json`` (a run's progress while it trains) and writing files whole.

Light on purpose (no Lightning, no matplotlib): reports and watchers import it.
:class:`kanplatform.tracking.progress.LiveProgress` writes the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

LIVE_FILE = "live.json"


def read_live(run_dir: str | Path) -> dict[str, Any] | None:
    """``RUN_DIR/live.json`` as written, or None (absent, or unreadable)."""
    try:
        data = json.loads((Path(run_dir) / LIVE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees the old or the new file, never half
    (a temporary file in the same folder, then ``os.replace``)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
