"""Sizing each arm to a budget: by parameters and, separately, by FLOPs.

Every arm has one integer knob: the hidden width (``size: width``, every hidden layer the
same width) or the grid size of a grid model (``size: grid_size``, the widths fixed). For a
budget ``B`` on an axis the knob value whose count is closest to ``B`` is chosen (ties: the
smaller model), so the achieved count is within one knob step -- one hidden unit, or one
grid interval -- of the budget, and the achieved counts on both axes are recorded beside it.

Counts are those of :mod:`kanplatform.nn.counting`, under the conventions every run records
in ``metrics.json``: parameters = ``count_params(model)`` (``"trainable"``: the scalars the
model trains -- KAN layer ``in*out*(G+k+2) + out``, MLP layer ``(in+1)*out``); FLOPs =
``count_flops(model)`` (``"fairer"``, Yu et al.'s forward-pass formula per sample). The
model is built through the registry, so any registered kind sizes the same way.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kanplatform.compare.spec import ArmSpec, CompareError

PARAMS_CONVENTION = "trainable"
FLOPS_CONVENTION = "fairer"


@dataclass(frozen=True)
class Sized:
    """An arm sized to one budget.

    Attributes:
        arm: the arm's name.
        axis: ``params`` or ``flops``: what was matched.
        budget: the budget on that axis.
        knob: the chosen hidden width or grid size.
        model: the ``build_model`` dict of the sized model.
        params, flops: its counts (both recorded, whichever was matched).
        step: the count's change for one more knob unit at this size (the resolution of
            the match: ``|achieved - budget| <= step``).
    """

    arm: str
    axis: str
    budget: float
    knob: int
    model: dict[str, Any]
    params: int
    flops: int
    step: int

    @property
    def achieved(self) -> int:
        """The count on the matched axis."""
        return self.params if self.axis == "params" else self.flops

    @property
    def label(self) -> str:
        """A stable name of the model size (``w2-7-7-1``, ``w2-1-1-g5``)."""
        text = "w" + "-".join(str(w) for w in self.model["width"])
        if "grid_size" in self.model:
            text += f"-g{self.model['grid_size']}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (compare.json ``cells``)."""
        return {"arm": self.arm, "matched_by": self.axis, "budget": self.budget,
                "knob": self.knob, "width": list(self.model["width"]),
                "grid_size": self.model.get("grid_size"), "params": self.params,
                "flops": self.flops, "step": self.step, "label": self.label}


def with_knob(arm: ArmSpec, model: Mapping[str, Any], io: tuple[int, int], knob: int) -> dict:
    """The ``build_model`` dict of ``arm`` at knob value ``knob``.

    Args:
        arm: the arm (its ``size``, ``depth``, ``hidden``).
        model: the arm's model dict from its resolved run config (kind and the kind's keys).
        io: the task's (inputs, outputs).
        knob: hidden width or grid size.
    """
    out = dict(model)
    if arm.size == "width":
        out["width"] = [io[0], *[int(knob)] * arm.depth, io[1]]
    else:
        out["width"] = [io[0], *arm.hidden, io[1]]
        out["grid_size"] = int(knob)
    return out


@functools.lru_cache(maxsize=4096)
def _counts(key: str) -> tuple[int, int]:
    from kanplatform.nn import build_model, count_flops, count_params

    model = build_model(json.loads(key))
    return int(count_params(model, PARAMS_CONVENTION)), int(count_flops(model, FLOPS_CONVENTION))


def counts(model: Mapping[str, Any]) -> tuple[int, int]:
    """``(params, flops)`` of the model a ``build_model`` dict describes (cached).

    Raises:
        CompareError: the dict does not build (an unknown argument of the kind...).
    """
    try:
        return _counts(json.dumps(dict(model), sort_keys=True))
    except (ValueError, TypeError) as err:
        raise CompareError(f"model {dict(model)}: {err}") from None


def closest_knob(cost: Callable[[int], int], budget: float, lo: int, hi: int) -> int:
    """The knob in ``[lo, hi]`` whose (increasing) ``cost`` is closest to ``budget``.

    Ties go to the smaller knob. Brackets by doubling from ``lo``, then bisects, so a few
    dozen costs are evaluated even for wide ranges.
    """
    below, k = lo, lo
    while k < hi and cost(k) < budget:
        below, k = k, min(hi, 2 * k)
    # now cost(below) < budget <= cost(k), unless the range ends first
    while k - below > 1:
        mid = (below + k) // 2
        below, k = (mid, k) if cost(mid) < budget else (below, mid)
    return min({below, k}, key=lambda c: (abs(cost(c) - budget), c))


def size_arm(name: str, arm: ArmSpec, model: Mapping[str, Any], io: tuple[int, int],
             axis: str, budget: float, where: str = "budget") -> Sized:
    """Size ``arm`` to ``budget`` on ``axis`` (see the module docstring).

    Args:
        name: the arm's name (for messages).
        arm: the arm.
        model: its model dict from the resolved run config.
        io: the task's (inputs, outputs).
        axis: ``params`` or ``flops``.
        budget: the count to match.
        where: the study key of the budget, for messages (``budgets.params[0]``).

    Raises:
        CompareError: the budget is below the smallest model the arm can be (naming both)
            or above its largest.
    """
    lo, hi = arm.size_range()
    index = 0 if axis == "params" else 1

    def cost(k: int) -> int:
        return counts(with_knob(arm, model, io, k))[index]

    smallest, largest = cost(lo), cost(hi)
    if budget < smallest:
        raise CompareError(
            f"{where}={budget:g}: below the smallest {name} model ({arm.size}={lo}: "
            f"{smallest} {axis}); raise the budget or shrink arms.{name} (hidden/depth)")
    if budget > largest:
        raise CompareError(
            f"{where}={budget:g}: above the largest {name} model ({arm.size}={hi}: {largest} "
            f"{axis}); lower the budget or raise arms.{name}.max_size")
    knob = closest_knob(cost, budget, lo, hi)
    sized = with_knob(arm, model, io, knob)
    params, flops = counts(sized)
    nxt = cost(knob + 1) if knob < hi else cost(knob)
    prev = cost(knob - 1) if knob > lo else cost(knob)
    return Sized(name, axis, float(budget), knob, sized, params, flops,
                 max(nxt - cost(knob), cost(knob) - prev))
