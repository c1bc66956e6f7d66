"""From a ``model`` config section to a ``torch.nn.Module`` through the nn registry.

The only place that translates config keys into :func:`kanplatform.nn.build_model`'s dict,
including the MLP's ``match: params`` resolution (equal hidden widths chosen so the
parameter count is the closest to ``match_params``).
"""

from __future__ import annotations

from typing import Any

import torch

KAN_KEYS = ("grid_size", "spline_order", "grid_range", "base_activation")
MLP_KEYS = ("activation",)


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
        grid_size: initial grid of a KAN (the first entry of a grid schedule).
        grid_eps: a KAN's adaptive-grid mix (``grid.grid_eps``).
        seed: seeds the model's private initialisation generator.

    Returns:
        A plain dict: ``{"kind": "kan", "width": [...], "grid_size": ..., ...}`` or
        ``{"kind": "mlp", "width": [...], "activation": ..., ...}``.
    """
    kind = _get(model_cfg, "kind")
    spec: dict[str, Any] = {"kind": kind, "width": [int(w) for w in _get(model_cfg, "width")]}
    if kind == "kan":
        for key in KAN_KEYS:
            spec[key] = _plain(_get(model_cfg, key))
        if grid_size is not None:
            spec["grid_size"] = int(grid_size)
        if grid_eps is not None:
            spec["grid_eps"] = float(grid_eps)
    else:
        for key in MLP_KEYS:
            spec[key] = _plain(_get(model_cfg, key))
        match_params = _get(model_cfg, "match_params")
        if _get(model_cfg, "match", "none") == "params" and match_params:
            spec["width"] = matched_width(spec, int(match_params))
    spec["bias"] = bool(_get(model_cfg, "bias", True))
    if seed is not None:
        spec["seed"] = int(seed)
    return spec


def _plain(value: Any) -> Any:
    if hasattr(value, "__iter__") and not isinstance(value, str):
        return [float(v) for v in value]
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
