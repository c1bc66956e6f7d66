"""``kanplatform validate FILE...``: check configs, groups, searches, studies and job files.

Prints ``OK   FILE (kind)`` or ``FAIL FILE: message`` per file; exit status 1 if any failed.
Nothing is trained and nothing is written. Each kind of file is checked by its own package;
:data:`FILE_KINDS` says which, in the order they are tried.
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class FileKind:
    """A kind of file ``kanplatform validate`` checks.

    Attributes:
        kind: the name shown in the report (``run config``, ``search``, ``job``...).
        detect: ``"module:function"``, ``detect(path, data) -> bool``; ``data`` is the parsed
            YAML (or None).
        check: ``"module:function"``, ``check(path) -> str | None``; raises ``ValueError`` for
            an invalid file and may return a note.
    """

    kind: str
    detect: str
    check: str


# Tried in order: the specific kinds first, any other YAML file is a run config.
FILE_KINDS: list[FileKind] = [
    FileKind("search", "kanplatform.search.spec:is_search_file",
             "kanplatform.search.spec:check_search_file"),
    FileKind("scaling study", "kanplatform.scaling.spec:is_study_file",
             "kanplatform.scaling.spec:check_study_file"),
    FileKind("compare study", "kanplatform.compare.spec:is_compare_file",
             "kanplatform.compare.spec:check_compare_file"),
    FileKind("job", "kanplatform.launch.jobfile:is_job_file",
             "kanplatform.cli.validate:check_job_file"),
    FileKind("config group", "kanplatform.config.validate:is_group_file",
             "kanplatform.train.resolve:check_group_file"),
    FileKind("run config", "kanplatform.config.validate:is_run_config",
             "kanplatform.train.resolve:check_run_config_file"),
]


def _function(ref: str) -> Any:
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


def check_job_file(path: Path) -> str:
    """A job file loads, its command line parses with this CLI, its config and search load."""
    from kanplatform.cli import check_argv
    from kanplatform.launch.jobfile import check_job_file as check

    return check(path, check_argv)


def validate_file(path: str | Path) -> tuple[str, str | None]:
    """Check one file with the first kind in :data:`FILE_KINDS` that detects it.

    Returns:
        ``(kind, note)``.

    Raises:
        ValueError: no such file, not YAML, no kind detects it, or the kind's check failed
            (``ConfigError``, ``SearchSpecError``, ``StudyError``, ``JobFileError``).
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) if path.suffix in (".yaml", ".yml") else None
    except yaml.YAMLError as err:
        raise ValueError(f"not valid YAML: {err}") from None
    for kind in FILE_KINDS:
        if _function(kind.detect)(path, data):
            return kind.kind, _function(kind.check)(path)
    known = ", ".join(k.kind for k in FILE_KINDS)
    raise ValueError(f"{path}: not a file kind `kanplatform validate` knows ({known})")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``validate`` arguments."""
    parser.add_argument("files", nargs="+", metavar="FILE", help="YAML files to check")


def main(args: argparse.Namespace) -> int:
    """Validate every file; return 0 when all are valid, else 1."""
    failed = 0
    for path in args.files:
        try:
            kind, note = validate_file(path)
        except (ValueError, KeyError, TypeError) as err:
            failed += 1
            print(f"FAIL {path}: {err}")
        else:
            print(f"OK   {path} ({note or kind})")
    return 1 if failed else 0
