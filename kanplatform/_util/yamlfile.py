"""Reading the project's YAML files (configs, searches, studies, jobs) with one error style."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def read_yaml(path: str | Path, error: type[Exception], what: str = "file") -> Any:
    """Parse a YAML file, raising ``error`` with a message that names the file.

    Args:
        path: the file.
        error: the exception class of the caller's domain (``ConfigError``, ``StudyError``...).
        what: what the file is, for the message (``"config file"``, ``"job file"``...).

    Returns:
        The parsed document (``None`` for an empty file).

    Raises:
        error: the file does not exist, or is not valid YAML.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} not found: {path}")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise error(f"{path}: not valid YAML: {err}") from None
