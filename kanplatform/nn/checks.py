"""Check a model's constructor arguments without building it (any width costs nothing).

``check_model_args({"kind": "kan", "spline_order": 0, ...})`` raises :class:`ModelArgError`
naming the argument, for the checks the models' constructors make themselves, so a config
can be refused before a run directory, a W&B run or a Ray trial exists. A model kind
registered elsewhere may add its own checker with :func:`register_arg_check`; without one
only the argument names are checked.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from kanplatform.nn.functional import get_activation
from kanplatform.nn.kan import check_width
from kanplatform.nn.layer import check_kan_args
from kanplatform.nn.registry import MODEL_REGISTRY

__all__ = ["ModelArgError", "check_kan_config", "check_mlp_config", "check_model_args",
           "register_arg_check"]

_CHECKS: dict[str, Callable[..., None]] = {}


class ModelArgError(ValueError):
    """A bad model argument; ``arg`` names it (``spline_order``, ``width``...)."""

    def __init__(self, arg: str, message: str) -> None:
        super().__init__(message)
        self.arg = arg


def register_arg_check(kind: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Decorator: ``check(**constructor_args)`` raising :class:`ModelArgError` for ``kind``."""

    def deco(fn: Callable[..., None]) -> Callable[..., None]:
        _CHECKS[kind] = fn
        return fn

    return deco


def _arg(name: str, check: Callable[..., Any], *args: Any) -> None:
    try:
        check(*args)
    except ModelArgError:
        raise
    except (TypeError, ValueError) as err:
        raise ModelArgError(name, str(err)) from None


@register_arg_check("kan")
def check_kan_config(width: Any = (2, 1, 1), grid_size: Any = 5, spline_order: Any = 3,
                     grid_range: Any = (-1.0, 1.0), base_activation: Any = "silu",
                     grid_eps: Any = 0.02, **_: Any) -> None:
    """The checks :class:`~kanplatform.nn.KAN` makes, one argument at a time.

    Raises:
        ModelArgError: e.g. ``spline_order must be an integer >= 1, got 0``.
    """
    _arg("width", check_width, width)
    # one argument at a time, the others at their defaults, so the error names the right one
    _arg("grid_size", check_kan_args, grid_size, 3, (-1.0, 1.0), 0.02)
    _arg("spline_order", check_kan_args, 5, spline_order, (-1.0, 1.0), 0.02)
    _arg("grid_range", check_kan_args, 5, 3, grid_range, 0.02)
    _arg("grid_eps", check_kan_args, 5, 3, (-1.0, 1.0), grid_eps)
    _arg("base_activation", get_activation, base_activation)


@register_arg_check("mlp")
def check_mlp_config(width: Any = (2, 64, 64, 1), activation: Any = "silu", **_: Any) -> None:
    """The checks :class:`~kanplatform.nn.MLP` makes.

    Raises:
        ModelArgError: naming ``width`` or ``activation``.
    """
    _arg("width", check_width, width)
    if activation is None:
        raise ModelArgError("activation", "activation must name an activation, got None")
    _arg("activation", get_activation, activation)


def check_model_args(config: Mapping[str, Any]) -> None:
    """Check a :func:`~kanplatform.nn.build_model` dict as building it would, but cheaply.

    Raises:
        ModelArgError: an unknown kind (``arg == "kind"``), an argument the model does not
            take, or a bad value, naming it.

    Example:
        >>> check_model_args({"kind": "kan", "width": [2, 1], "spline_order": 0})
        Traceback (most recent call last):
        ...
        kanplatform.nn.checks.ModelArgError: spline_order must be an integer >= 1, got 0
    """
    args = dict(config)
    kind = args.pop("kind", None)
    if kind not in MODEL_REGISTRY:
        raise ModelArgError("kind", f"unknown model kind {kind!r}; valid kinds: "
                                    f"{sorted(MODEL_REGISTRY)}")
    accepted = [p for p in inspect.signature(MODEL_REGISTRY[kind].__init__).parameters
                if p != "self"]
    for key in args:
        if key not in accepted:
            raise ModelArgError(key, f"unknown argument {key!r} for model kind {kind!r}; "
                                     f"accepted: {accepted}")
    check = _CHECKS.get(kind)
    if check is not None:
        check(**args)
