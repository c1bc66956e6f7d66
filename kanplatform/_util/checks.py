"""Type and range checks of single values from YAML files, one clear message each.

YAML gives strings, numbers, booleans, lists and mappings; a dataclass built from it does not
check them, and a wrong one (``grace_period: abc``, ``max_failures: -7``) would otherwise fail
deep inside Ray. These helpers raise the caller's error class with the key named, the value
found and what is allowed, before any work starts. Nothing here imports beyond the standard
library.
"""

from __future__ import annotations

import math
from typing import Any


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_int(value: Any, key: str, error: type[Exception], *, minimum: int | None = None,
              optional: bool = False, hint: str = "") -> None:
    """Raise ``error`` unless ``value`` is an integer >= ``minimum`` (or None if optional).

    Example:
        >>> check_int(-7, "scheduler.grace_period", ValueError, minimum=1)
        Traceback (most recent call last):
        ...
        ValueError: scheduler.grace_period: must be an integer >= 1, got -7
    """
    if value is None and optional:
        return
    if not _is_int(value) or (minimum is not None and value < minimum):
        want = "an integer" + (f" >= {minimum}" if minimum is not None else "")
        want += " or null" if optional else ""
        raise error(f"{key}: must be {want}, got {value!r}{hint}")


def check_number(value: Any, key: str, error: type[Exception], *,
                 minimum: float | None = None, above: float | None = None,
                 optional: bool = False, hint: str = "") -> None:
    """Raise ``error`` unless ``value`` is a finite number >= ``minimum`` / > ``above``."""
    if value is None and optional:
        return
    ok = _is_number(value) and math.isfinite(value)
    ok = ok and (minimum is None or value >= minimum) and (above is None or value > above)
    if not ok:
        want = "a number"
        if minimum is not None:
            want += f" >= {minimum:g}"
        if above is not None:
            want += f" > {above:g}"
        want += " or null" if optional else ""
        raise error(f"{key}: must be {want}, got {value!r}{hint}")


def check_bool(value: Any, key: str, error: type[Exception], *, optional: bool = False) -> None:
    """Raise ``error`` unless ``value`` is ``true``/``false`` (or None if optional)."""
    if value is None and optional:
        return
    if not isinstance(value, bool):
        raise error(f"{key}: must be true or false{' or null' if optional else ''}, "
                    f"got {value!r}")


def check_str(value: Any, key: str, error: type[Exception], *, optional: bool = False,
              choices: tuple[str, ...] | None = None) -> None:
    """Raise ``error`` unless ``value`` is a non-empty string (one of ``choices`` if given)."""
    if value is None and optional:
        return
    if not isinstance(value, str) or not value:
        raise error(f"{key}: must be a non-empty string{' or null' if optional else ''}, "
                    f"got {value!r}")
    if choices is not None and value not in choices:
        raise error(f"{key}: {value!r} is not one of {', '.join(choices)}")


def check_name(value: Any, key: str, error: type[Exception]) -> None:
    """A name that becomes a directory: a non-empty string without path separators."""
    check_str(value, key, error)
    if "/" in value or "\\" in value or value in (".", "..") or "\n" in value:
        raise error(f"{key}: {value!r} names a directory; use letters, digits, - _ . "
                    "without path separators")
