"""Dataclasses from YAML mappings that refuse unknown keys by name: every spec file uses it."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def field_names(cls: type) -> list[str]:
    """The dataclass's field names, in declaration order."""
    return [f.name for f in dataclasses.fields(cls)]


def check_keys(data: Mapping[str, Any], valid: Iterable[str], where: str,
               error: type[Exception] = ValueError) -> None:
    """Raise ``error`` naming the first unknown keys of ``data`` and the valid ones.

    The message reads ``WHERE: unknown key 'gridsize' (did you mean 'grid_size'?); valid
    keys: ...``.
    """
    valid = list(valid)
    unknown = [str(k) for k in data if k not in valid]
    if not unknown:
        return
    names = ", ".join(f"'{k}'" for k in unknown)
    hint = difflib.get_close_matches(unknown[0], valid, n=1)
    guess = f" (did you mean '{hint[0]}'?)" if hint else ""
    raise error(f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {names}{guess}; "
                f"valid keys: {', '.join(valid)}")


def from_mapping(cls: type[T], data: Any, where: str, error: type[Exception] = ValueError,
                 *, exclude: Iterable[str] = (), **fixed: Any) -> T:
    """Build dataclass ``cls`` from a YAML mapping, refusing unknown and missing keys.

    Args:
        cls: the dataclass.
        data: the mapping (``None`` means all defaults).
        where: how the message names the mapping (``"scheduler"``, ``"families.kan"``...).
        error: the caller's exception class.
        exclude: fields a file may not set (filled by the caller, e.g. ``path``).
        **fixed: values for those fields.

    Raises:
        error: ``data`` is not a mapping, holds an unknown key, or lacks a required one.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise error(f"{where}: expected a mapping, got {type(data).__name__} {data!r}")
    exclude = set(exclude)
    check_keys(data, [n for n in field_names(cls) if n not in exclude], where, error)
    required = [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                and f.name not in data and f.name not in fixed]
    if required:
        raise error(f"{where}: missing key{'s' if len(required) > 1 else ''} "
                    f"{', '.join(repr(k) for k in required)}")
    return cls(**dict(data), **fixed)
