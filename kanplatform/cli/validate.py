"""``kanplatform validate FILE... [key=value ...]``: check configs, groups, searches, studies
and job files.

Prints ``OK   FILE (kind)``, or ``FAIL FILE`` and then every problem of the file, one per line
(each names the key, the bad value, what is valid, and a near miss); exit status 1 if any
failed. ``key=value`` overrides apply to run configs, config groups and studies as
``train``/``scale``/``compare`` take them. Nothing is trained and nothing is written. Each kind
of file is checked by its own package; :data:`FILE_KINDS` says which, in the order they are
tried.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence
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
        overrides: whether ``check(path, overrides)`` takes ``key=value`` words.
    """

    kind: str
    detect: str
    check: str
    overrides: bool = False


# Tried in order: the specific kinds first, any other YAML file is a run config.
FILE_KINDS: list[FileKind] = [
    FileKind("search", "kanplatform.search.spec:is_search_file",
             "kanplatform.search.spec:check_search_file"),
    FileKind("scaling study", "kanplatform.scaling.spec:is_study_file",
             "kanplatform.scaling.spec:check_study_file", overrides=True),
    FileKind("compare study", "kanplatform.compare.spec:is_compare_file",
             "kanplatform.compare.spec:check_compare_file", overrides=True),
    FileKind("job", "kanplatform.launch.jobfile:is_job_file",
             "kanplatform.cli.validate:check_job_file"),
    FileKind("config group", "kanplatform.config.validate:is_group_file",
             "kanplatform.train.resolve:check_group_file", overrides=True),
    FileKind("run config", "kanplatform.config.validate:is_run_config",
             "kanplatform.train.resolve:check_run_config_file", overrides=True),
]


def _function(ref: str) -> Any:
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


def check_job_file(path: Path) -> str:
    """A job file loads, its command line parses with this CLI, its config and search load."""
    from kanplatform.cli import check_argv
    from kanplatform.launch.jobfile import check_job_file as check

    return check(path, check_argv)


def validate_file(path: str | Path, overrides: Sequence[str] = ()) -> tuple[str, str | None]:
    """Check one file with the first kind in :data:`FILE_KINDS` that detects it.

    Args:
        path: the file.
        overrides: ``key=value`` words, for the kinds that take them.

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
            if not kind.overrides:
                if overrides:
                    raise ValueError(f"a {kind.kind} file takes no key=value overrides (they "
                                     "apply to run configs, config groups and studies)")
                return kind.kind, _function(kind.check)(path)
            return kind.kind, _function(kind.check)(path, list(overrides))
    known = ", ".join(k.kind for k in FILE_KINDS)
    raise ValueError(f"{path}: not a file kind `kanplatform validate` knows ({known})")


# shown at the end of `kanplatform validate --help`
EXAMPLES = (
    "kanplatform validate configs/experiment/quick.yaml configs/search/asha_kan.yaml",
    "kanplatform validate configs/*/*.yaml jobs/*.yaml",
    "kanplatform validate my.yaml model.grid_size=10      # with overrides, as train takes them",
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``validate`` arguments."""
    parser.add_argument("files", nargs="+", metavar="FILE_OR_OVERRIDE",
                        help="YAML files to check, then key=value overrides for the run "
                             "configs and studies among them (model.grid_size=10)")
    parser.set_defaults(_rest="files")  # key=value words after an option are overrides too


def problem_lines(path: str | Path, err: BaseException) -> list[str]:
    """The problems of a failed file, one per line, the file's own name left off (``FAIL``
    names it); a problem of another file (a ``defaults`` entry) keeps its file's name."""
    from kanplatform._util.problems import problems_of

    names = {f"{path}: ", f"{Path(path).resolve()}: "}
    lines = []
    for problem in problems_of(err):
        for name in names:
            if problem.startswith(name):
                problem = problem[len(name):]
        lines.append(problem)
    return lines


def main(args: argparse.Namespace) -> int:
    """Validate every file; return 0 when all are valid, else 1."""
    files = [w for w in args.files if "=" not in w]
    overrides = [w for w in args.files if "=" in w]
    if not files:
        print("FAIL validate needs a FILE (then key=value overrides)")
        return 1
    failed = 0
    for path in files:
        try:
            kind, note = validate_file(path, overrides)
        except (ValueError, KeyError, TypeError) as err:
            failed += 1
            lines = problem_lines(path, err)
            if len(lines) == 1:
                print(f"FAIL {path}: {lines[0]}")
            else:
                print(f"FAIL {path}: {len(lines)} problems")
                print("\n".join(f"  - {line}" for line in lines))
        else:
            print(f"OK   {path} ({note or kind})")
    return 1 if failed else 0
