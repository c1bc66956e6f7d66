"""Dataclasses from YAML mappings that refuse unknown keys by name: every spec file uses it.

Messages name keys by their dotted path, as the run config's do::

    job.yaml: unknown key 'resources.gpu' (did you mean 'resources.gpus'?); valid keys in
    'resources': cpus, gpus, nodes, entrypoint_cpus, entrypoint_gpus
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def field_names(cls: type) -> list[str]:
    """The dataclass's field names, in declaration order."""
    return [f.name for f in dataclasses.fields(cls)]


def _prefix(source: str | None) -> str:
    return f"{source}: " if source else ""


def _dotted(section: str, key: str) -> str:
    return f"{section}.{key}" if section else key


def check_keys(data: Mapping[str, Any], valid: Iterable[str], section: str = "",
               error: type[Exception] = ValueError, source: str | None = None) -> None:
    """Raise ``error`` naming the unknown keys of ``data`` (with a guess) and the valid ones.

    Args:
        data: the mapping.
        valid: the keys it may hold.
        section: its dotted path in the file (``""`` at the top level).
        error: the caller's exception class.
        source: the file, to start the message with.
    """
    valid = list(valid)
    unknown = [str(k) for k in data if k not in valid]
    if not unknown:
        return
    def named(key: str) -> str:  # every unknown key with its own near miss
        hint = difflib.get_close_matches(key, valid, n=1)
        guess = f" (did you mean '{_dotted(section, hint[0])}'?)" if hint else ""
        return f"'{_dotted(section, key)}'{guess}"

    names = ", ".join(named(k) for k in unknown)
    where = f" in '{section}'" if section else ""
    raise error(f"{_prefix(source)}unknown key{'s' if len(unknown) > 1 else ''} {names}; "
                f"valid keys{where}: {', '.join(valid)}")


def from_mapping(cls: type[T], data: Any, section: str = "",
                 error: type[Exception] = ValueError, *, source: str | None = None,
                 exclude: Iterable[str] = (), **fixed: Any) -> T:
    """Build dataclass ``cls`` from a YAML mapping, refusing unknown and missing keys.

    Args:
        cls: the dataclass.
        data: the mapping (``None`` means all defaults).
        section: its dotted path in the file (``"scheduler"``, ``"families.kan"``...).
        error: the caller's exception class.
        source: the file, to start messages with.
        exclude: fields a file may not set (filled by the caller, e.g. ``path``).
        **fixed: values for fields the caller fills.

    Raises:
        error: ``data`` is not a mapping, holds an unknown key, or lacks a required one.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        what = f"'{section}'" if section else "the file"
        raise error(f"{_prefix(source)}{what} must be a mapping, got {type(data).__name__} "
                    f"{data!r}")
    exclude = set(exclude) | set(fixed)
    check_keys(data, [n for n in field_names(cls) if n not in exclude], section, error, source)
    required = [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                and f.name not in data and f.name not in fixed]
    if required:
        names = ", ".join(f"'{_dotted(section, k)}'" for k in required)
        raise error(f"{_prefix(source)}missing key{'s' if len(required) > 1 else ''} {names}")
    return cls(**dict(data), **fixed)
