"""Dotted keys, one way for every YAML kind: ``flatten``, ``set_dotted``, ``key=value`` words.

``model.grid_size=10`` on a command line, ``{"model.grid_size": 10}`` from Ray Tune and
``{model: {grid_size: 10}}`` in a file all name the same key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import yaml

Overrides = Mapping[str, Any] | Iterable[str] | None


def flatten(d: Mapping[str, Any], prefix: str = "",
            keep: Callable[[Any], bool] | None = None) -> dict[str, Any]:
    """Flatten nested mappings into dotted keys: ``{"a": {"b": 1}}`` -> ``{"a.b": 1}``.

    Empty mappings, mappings under a key that already holds a dot, and mappings ``keep``
    accepts (e.g. a search domain ``{choice: [...]}``) stay whole values.
    """
    out: dict[str, Any] = {}
    for key, value in d.items():
        full = f"{prefix}{key}"
        if (isinstance(value, Mapping) and value and "." not in str(key)
                and not (keep and keep(value))):
            out.update(flatten(value, prefix=f"{full}.", keep=keep))
        else:
            out[full] = value
    return out


def split_override(item: Any, error: type[Exception] = ValueError) -> tuple[str, str]:
    """``"key=raw text"`` -> ``("key", "raw text")``, the value left unparsed.

    Raises:
        error: ``item`` is not a string holding ``=``.
    """
    if not isinstance(item, str) or "=" not in item:
        raise error(f"override {item!r} is not KEY=VALUE (e.g. model.grid_size=10)")
    key, raw = item.split("=", 1)
    return key.strip(), raw


def parse_value(raw: str) -> Any:
    """A ``key=value`` word's value as YAML (``[2,5,1]``, ``null``, ``1e-3``); text that is not
    YAML stays the string it is."""
    if raw == "":
        return ""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def parse_overrides(overrides: Overrides,
                    error: type[Exception] = ValueError) -> list[tuple[str, Any]]:
    """Overrides as ``(dotted key, value)`` pairs, in order.

    Args:
        overrides: ``["key=value", ...]`` words (values parsed as YAML) or a mapping of dotted
            keys or nested mappings (flattened), or ``None``.
        error: raised for a word without ``=``.
    """
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return list(flatten(overrides).items())
    pairs = []
    for item in overrides:
        key, raw = split_override(item, error)
        pairs.append((key, parse_value(raw)))
    return pairs


def get_dotted(data: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """``data["a"]["b"]`` for ``key="a.b"``, or ``default`` where a part is missing."""
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def set_dotted(data: dict[str, Any], key: str, value: Any, *, whole: Iterable[str] = (),
               error: type[Exception] = ValueError) -> None:
    """Set ``data["a"]["b"] = value`` for ``key="a.b"``, creating sections on the way.

    Args:
        whole: section names whose entries are themselves dotted keys (a study's
            ``overrides``): below one the rest of the key is one entry.
        error: raised when a part of the key names a value that is not a section.
    """
    parts = key.split(".")
    node = data
    whole = set(whole)
    for i, part in enumerate(parts[:-1]):
        if part in whole:
            node.setdefault(part, {})[".".join(parts[i + 1:])] = value
            return
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise error(f"override {key}: {part} is not a section")
    node[parts[-1]] = value
