"""Every problem of a file in one pass: a collector that spec readers fill and raise once.

A reader adds each problem it finds (``key: what is wrong; valid: ...``) and goes on; at the
end :meth:`Problems.raise_if_any` raises the caller's exception holding all of them, so a
file with three mistakes is fixed in one edit, not three runs::

    p = Problems(ConfigError)
    p.check(cfg.trainer.max_steps >= 1, "trainer.max_steps", "must be >= 1, got 0")
    p.one_of(cfg.optim.name, "optim.name", ("lbfgs", "adam"))   # ... (did you mean 'adam'?)
    p.raise_if_any()
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any


def did_you_mean(word: Any, valid: Iterable[Any]) -> str:
    """`` (did you mean 'grid_size'?)`` for the closest of ``valid`` to ``word``, else ``""``."""
    names = [str(v) for v in valid]
    hint = difflib.get_close_matches(str(word), names, n=1, cutoff=0.6)
    return f" (did you mean '{hint[0]}'?)" if hint else ""


def problems_of(err: BaseException) -> list[str]:
    """The problems an error raised by :meth:`Problems.raise_if_any` holds (else its text)."""
    return list(getattr(err, "problems", None) or [str(err)])


class Problems:
    """The problems found so far in one file (or one config and its overrides).

    Args:
        error: the exception class :meth:`raise_if_any` raises (``ConfigError``...).
    """

    def __init__(self, error: type[Exception] = ValueError) -> None:
        self.error = error
        self.items: list[str] = []

    def __len__(self) -> int:
        return len(self.items)

    def add(self, message: str) -> None:
        """Record one problem (a repeat of the same message is recorded once)."""
        if message not in self.items:
            self.items.append(message)

    def check(self, ok: bool, key: str, message: str) -> bool:
        """Record ``KEY: MESSAGE`` unless ``ok``; return ``ok``."""
        if not ok:
            self.add(f"{key}: {message}")
        return bool(ok)

    def one_of(self, value: Any, key: str, valid: Iterable[Any]) -> bool:
        """Record a problem unless ``value`` is one of ``valid``, with a near miss named."""
        valid = tuple(valid)
        return self.check(value in valid, key, f"{value!r} is not valid; valid: "
                          f"{', '.join(map(str, valid))}{did_you_mean(value, valid)}")

    @contextmanager
    def collect(self) -> Iterator[None]:
        """Record the problems of an ``error`` raised inside the block, and go on after it."""
        try:
            yield
        except self.error as err:
            for message in problems_of(err):
                self.add(message)

    def raise_if_any(self) -> None:
        """Raise ``error`` holding every problem (one per line; ``.problems`` lists them)."""
        if self.items:
            err = self.error("\n".join(self.items))
            err.problems = list(self.items)  # type: ignore[attr-defined]
            raise err
