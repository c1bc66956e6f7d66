"""Models by name, so configs, Ray Tune and W&B carry ``kind: kan``, never import paths, and
the capabilities code asks of a model instead of its kind (:class:`GridModel`)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

__all__ = ["MODEL_REGISTRY", "GridModel", "build_model", "register_model"]

MODEL_REGISTRY: dict[str, type[nn.Module]] = {}


@runtime_checkable
class GridModel(Protocol):
    """A model on a spline grid (a :class:`~kanplatform.nn.KAN`): the training loop adapts
    its grid to the data and extends it between grid stages.

    ``isinstance(model, GridModel)`` checks that the members exist.
    """

    @property
    def grid_size(self) -> int:
        """The current number of grid intervals."""

    def update_grid(self, x: torch.Tensor) -> None:
        """Adapt the grid to samples ``x: (n, in)``, in place, the function kept."""

    def extend_grid(self, new_grid_size: int, x: torch.Tensor | None = None) -> nn.Module:
        """A new model on ``new_grid_size`` intervals computing the same function."""


def register_model(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator registering a model under ``name`` for :func:`build_model`.

    Example:
        >>> @register_model("my_net")  # doctest: +SKIP
        ... class MyNet(nn.Module): ...
    """

    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        if name in MODEL_REGISTRY and MODEL_REGISTRY[name] is not cls:
            raise ValueError(f"model kind {name!r} is already registered")
        MODEL_REGISTRY[name] = cls
        return cls

    return deco


def build_model(config: Mapping[str, Any]) -> nn.Module:
    """Build a model from a plain dict ``{"kind": name, **constructor arguments}``.

    ``model.config()`` of every registered model round-trips through this function.

    Raises:
        ValueError: for a missing or unknown ``kind`` (naming the valid ones) or an unknown
            argument (naming it and the accepted ones), or a bad argument value.

    Example:
        >>> build_model({"kind": "mlp", "width": [2, 8, 1]})  # doctest: +ELLIPSIS
        MLP(...)
    """
    if not isinstance(config, Mapping):
        raise ValueError(f"model config must be a mapping with a 'kind', got {config!r}")
    args = dict(config)
    kind = args.pop("kind", None)
    if kind not in MODEL_REGISTRY:
        raise ValueError(f"unknown model kind {kind!r}; valid kinds: {sorted(MODEL_REGISTRY)}")
    cls = MODEL_REGISTRY[kind]
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    for key in args:
        if key not in accepted:
            raise ValueError(
                f"unknown argument {key!r} for model kind {kind!r}; accepted: {accepted}"
            )
    if "grid_range" in args and isinstance(args["grid_range"], list):
        args["grid_range"] = tuple(args["grid_range"])
    return cls(**args)
