"""From a ``model`` config section to a ``torch.nn.Module`` through the nn registry.

The only place that translates config keys into :func:`kanplatform.nn.build_model`'s dict:
the keys of the kind's dataclass (:data:`kanplatform.config.schema.MODEL_CONFIGS`), the grid
of a grid kind, and an MLP's ``match: params`` resolution (equal hidden widths chosen so the
parameter count is the closest to ``match_params``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from kanplatform.config.schema import MODEL_CONFIGS, has_grid, model_keys


def _get(section: Any, key: str, default: Any = None) -> Any:
    if hasattr(section, "get"):
        return section.get(key, default)
    return getattr(section, key, default)


def model_spec(
    model_cfg: Any,
    grid_size: int | None = None,
    grid_eps: float | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """The ``build_model`` dict for a model config.

    Args:
        model_cfg: the ``model`` section of a RunConfig (DictConfig, dataclass or dict).
        grid_size: initial grid of a grid kind (the first entry of a grid schedule); other
            kinds ignore it.
        grid_eps: a grid kind's adaptive-grid mix (``grid.grid_eps``); other kinds ignore it.
        seed: seeds the model's private initialisation generator.

    Returns:
        A plain dict: ``{"kind": "kan", "width": [...], "grid_size": ..., ...}`` or
        ``{"kind": "mlp", "width": [...], "activation": ..., ...}``.

    Raises:
        ValueError: an unknown ``kind``, naming the valid ones.
    """
    kind = _get(model_cfg, "kind")
    if kind not in MODEL_CONFIGS:
        raise ValueError(f"unknown model kind {kind!r}; valid kinds: {sorted(MODEL_CONFIGS)}")
    spec: dict[str, Any] = {"kind": kind}
    for f in dataclasses.fields(MODEL_CONFIGS[kind]):
        if f.name == "kind" or not f.metadata.get("build", True):
            continue
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        spec[f.name] = _plain(_get(model_cfg, f.name, default), str(f.type))
    if has_grid(kind):
        if grid_size is not None:
            spec["grid_size"] = int(grid_size)
        if grid_eps is not None:
            spec["grid_eps"] = float(grid_eps)
    match_params = _get(model_cfg, "match_params")
    if "match" in model_keys(kind) and _get(model_cfg, "match", "none") == "params" \
            and match_params:
        spec["width"] = matched_width(spec, int(match_params))
    if seed is not None:
        spec["seed"] = int(seed)
    return spec


def _plain(value: Any, annotation: str) -> Any:
    """A config value as plain Python: lists typed by the dataclass field (``list[float]``)."""
    if hasattr(value, "__iter__") and not isinstance(value, str):
        item = float if "float" in annotation else int if "int" in annotation else None
        return [item(v) if item else v for v in value]
    return value


def build_model_from_config(model_cfg: Any, grid_size: int | None = None,
                            grid_eps: float | None = None,
                            seed: int | None = None) -> torch.nn.Module:
    """Build the model a ``model`` config section describes (see :func:`model_spec`)."""
    from kanplatform.nn import build_model

    return build_model(model_spec(model_cfg, grid_size, grid_eps, seed))


def matched_width(spec: dict[str, Any], target: int) -> list[int]:
    """Hidden widths (all equal, same depth) whose MLP parameter count is closest to ``target``.

    Args:
        spec: an MLP ``build_model`` dict; its width gives the input, output and depth.
        target: the parameter count to match.

    Returns:
        The new width list, e.g. ``[2, 11, 11, 1]``.
    """
    from kanplatform.nn import match_mlp

    width = list(spec["width"])
    return match_mlp(int(target), depth=len(width) - 2, by="params", in_features=width[0],
                     out_features=width[-1], activation=spec.get("activation") or "silu")
