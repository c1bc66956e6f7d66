"""Every run-config key with its type, default and meaning, read from the schema itself.

The meaning of a key is the first line of its entry in the ``Attributes:`` section of its
dataclass's docstring (:mod:`kanplatform.config.schema`): one source for the code, the docs
and ``kanplatform config keys``. A field without an entry is a schema bug (a test says so).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from dataclasses import dataclass
from typing import Any

from kanplatform.config.schema import RunConfig


@dataclass(frozen=True)
class KeyDoc:
    """One key of the run config.

    Attributes:
        key: its dotted name (``model.grid_size``).
        type: its annotation as written in the schema (``int``, ``list[int]``...).
        default: its default value.
        doc: one line of meaning ("" when the schema has none).
    """

    key: str
    type: str
    default: Any
    doc: str


def attribute_docs(cls: type) -> dict[str, str]:
    """``{field: first line}`` from the ``Attributes:`` sections of ``cls`` and its bases
    (a subclass's entry wins)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        text = inspect.cleandoc(klass.__dict__.get("__doc__") or "")
        block = re.split(r"^Attributes:\s*$", text, maxsplit=1, flags=re.M)
        if len(block) < 2:
            continue
        for line in block[1].splitlines():
            if line and not line.startswith(" "):
                break  # the next section
            match = re.match(r"^ {4}(\w+)(?: \([^)]*\))?: (.*)$", line)
            if match:
                docs[match.group(1)] = match.group(2).strip()
    return docs


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def schema_keys(cls: type = RunConfig, prefix: str = "") -> list[KeyDoc]:
    """Every leaf key of ``cls`` (sections walked in order), with type, default and doc."""
    docs = attribute_docs(cls)
    out: list[KeyDoc] = []
    for f in dataclasses.fields(cls):
        value = _default(f)
        if dataclasses.is_dataclass(value):
            out += schema_keys(type(value), f"{prefix}{f.name}.")
        else:
            out.append(KeyDoc(f"{prefix}{f.name}", str(f.type), value, docs.get(f.name, "")))
    return out
