"""The registry of target functions: name -> :class:`Target` (function, input ranges, formula).

Functions take a float64 NumPy array ``x: (n, n_inputs)`` and return ``(n, n_outputs)``.
The paper's toy functions live here; special functions and Feynman equations register
themselves from :mod:`kanplatform.data.special` and :mod:`kanplatform.data.feynman`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

Array = np.ndarray


@dataclass(frozen=True)
class Target:
    """A registered target function.

    Attributes:
        name: registry key, used as ``data.dataset`` in configs.
        fn: ``x: (n, n_inputs) float64 -> y: (n, n_outputs)``.
        ranges: one ``(low, high)`` per input; inputs are sampled uniformly in them.
        formula: human-readable formula.
        group: ``toy``, ``special`` or ``feynman``.
        input_names: variable names, in column order.
    """

    name: str
    fn: Callable[[Array], Array]
    ranges: tuple[tuple[float, float], ...]
    formula: str
    group: str
    input_names: tuple[str, ...]
    n_outputs: int = 1

    @property
    def n_inputs(self) -> int:
        """Number of input variables."""
        return len(self.ranges)

    def __call__(self, x: Array) -> Array:
        y = np.asarray(self.fn(np.asarray(x, dtype=np.float64)), dtype=np.float64)
        return y.reshape(len(x), self.n_outputs)


TARGETS: dict[str, Target] = {}


def register(
    name: str,
    fn: Callable[[Array], Array],
    ranges: Sequence[tuple[float, float]],
    formula: str,
    group: str,
    input_names: Sequence[str] | None = None,
    n_outputs: int = 1,
) -> Target:
    """Add a target to :data:`TARGETS` (names are unique) and return it."""
    if name in TARGETS:
        raise ValueError(f"target {name!r} is already registered")
    ranges = tuple((float(lo), float(hi)) for lo, hi in ranges)
    names = tuple(input_names) if input_names else tuple(f"x{i + 1}" for i in range(len(ranges)))
    if len(names) != len(ranges):
        raise ValueError(f"{name}: {len(names)} input names for {len(ranges)} ranges")
    target = Target(name, fn, ranges, formula, group, names, n_outputs)
    TARGETS[name] = target
    return target


def get_target(name: str) -> Target:
    """Return the registered target ``name``.

    Raises:
        KeyError: with the list of valid names.
    """
    try:
        return TARGETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; valid: {', '.join(sorted(TARGETS))}") from None


def _toys() -> None:
    pi = np.pi
    unit = (-1.0, 1.0)
    register("j0_20x", lambda x: special.j0(20 * x[:, 0]), [unit], "J0(20*x)", "toy", ["x"])
    register(
        "exp_sin_sq",
        lambda x: np.exp(np.sin(pi * x[:, 0]) + x[:, 1] ** 2),
        [unit, unit],
        "exp(sin(pi*x) + y**2)",
        "toy",
        ["x", "y"],
    )
    register("xy", lambda x: x[:, 0] * x[:, 1], [unit, unit], "x*y", "toy", ["x", "y"])
    register(
        "exp_mean_sin_sq_100",
        lambda x: np.exp(np.mean(np.sin(pi * x / 2) ** 2, axis=1)),
        [unit] * 100,
        "exp(mean_i sin(pi*x_i/2)**2), i = 1..100",
        "toy",
    )
    register(
        "nested_4",
        lambda x: np.exp(
            0.5 * np.sin(pi * (x[:, 0] ** 2 + x[:, 1] ** 2))
            + 0.5 * np.sin(pi * (x[:, 2] ** 2 + x[:, 3] ** 2))
        ),
        [unit] * 4,
        "exp((sin(pi*(x1**2 + x2**2)) + sin(pi*(x3**2 + x4**2))) / 2)",
        "toy",
    )


_toys()
