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


# libyaml's parser where PyYAML was built with it: the same documents, ~8x faster
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> Any:
    """Parse YAML text as ``yaml.safe_load`` does (safe constructors only), with libyaml's C
    parser when available: reading records back (a report, a study's resume) parses one
    ``config.yaml`` per run, ~10 ms each with the pure-Python parser.

    Raises:
        yaml.YAMLError: the text is not valid YAML.
    """
    return yaml.load(text, Loader=_SAFE_LOADER)  # noqa: S506 - a safe loader
