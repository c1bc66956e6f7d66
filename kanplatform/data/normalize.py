"""Normalisation: affine maps of inputs and regression targets, fitted on the training split.

``x_norm = (x - x_shift) / x_scale`` per input column and ``y_norm = (y - y_shift) / y_scale``
per target. ``minmax`` maps each input's training range onto the model's ``grid_range`` (a
KAN's splines live there; an input with one value maps to the range's centre); ``standard``
z-scores them. Regression targets are z-scored by both. The fitted numbers travel with the
model (``model.pt``) and in ``RUN_DIR/data.json``, so ``kanplatform.load`` and ``predict``
apply them to new inputs and give predictions in the original units.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

METHODS = ("standard", "minmax", "none")


@dataclass(frozen=True)
class Normalizer:
    """A fitted normalisation (identity where a part is ``None``).

    Attributes:
        method: ``standard``, ``minmax`` or ``none``.
        x_shift, x_scale: per input column.
        y_shift, y_scale: per regression target, or None (classification, ``none``).
    """

    method: str = "none"
    x_shift: tuple[float, ...] | None = None
    x_scale: tuple[float, ...] | None = None
    y_shift: tuple[float, ...] | None = None
    y_scale: tuple[float, ...] | None = None

    @classmethod
    def fit(cls, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor | None,
            method: str, grid_range: Sequence[float] = (-1.0, 1.0)) -> Normalizer:
        """Fit on training inputs ``x: (n, d)`` and regression targets ``y: (n, k)``.

        Args:
            x: the training split's inputs.
            y: its regression targets, or None (classification: labels stay as they are).
            method: ``standard``, ``minmax`` or ``none``.
            grid_range: where ``minmax`` puts the inputs.
        """
        if method == "none":
            return cls()
        x = _as_array(x)
        if method == "minmax":
            low, high = float(grid_range[0]), float(grid_range[1])
            lo, hi = x.min(axis=0), x.max(axis=0)
            span = hi - lo
            flat = span <= 0
            scale = np.where(flat, 1.0, span / (high - low))
            shift = np.where(flat, lo - 0.5 * (low + high), lo - low * scale)
        elif method == "standard":
            shift, scale = x.mean(axis=0), x.std(axis=0)
            scale = np.where(scale > 0, scale, 1.0)
        else:
            raise ValueError(f"data.normalize: {method!r} is not valid; valid: "
                             f"{', '.join(METHODS)}")
        y_shift = y_scale = None
        if y is not None:
            y = _as_array(y)
            y_shift, y_scale = y.mean(axis=0), y.std(axis=0)
            y_scale = np.where(y_scale > 0, y_scale, 1.0)
            y_shift, y_scale = _tup(y_shift), _tup(y_scale)
        return cls(method, _tup(shift), _tup(scale), y_shift, y_scale)

    @property
    def identity(self) -> bool:
        """True when nothing is changed."""
        return self.x_shift is None and self.y_shift is None

    def transform_x(self, x: Any) -> Any:
        """Inputs in model units (same type as ``x``: tensor or array)."""
        return _affine(x, self.x_shift, self.x_scale, inverse=False)

    def inverse_x(self, x: Any) -> Any:
        """Model-unit inputs back in the original units."""
        return _affine(x, self.x_shift, self.x_scale, inverse=True)

    def transform_y(self, y: Any) -> Any:
        """Regression targets in model units."""
        return _affine(y, self.y_shift, self.y_scale, inverse=False)

    def inverse_y(self, y: Any) -> Any:
        """Model outputs back in the original units."""
        return _affine(y, self.y_shift, self.y_scale, inverse=True)

    def transform_ranges(self, ranges: Sequence[Sequence[float]] | None
                         ) -> tuple[tuple[float, float], ...] | None:
        """An input domain ``[(low, high), ...]`` in model units."""
        if ranges is None or self.x_shift is None:
            return None if ranges is None else tuple(tuple(r) for r in ranges)
        lows = self.transform_x(np.array([r[0] for r in ranges], dtype=np.float64))
        highs = self.transform_x(np.array([r[1] for r in ranges], dtype=np.float64))
        return tuple((float(a), float(b)) for a, b in zip(lows, highs))

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and strings (JSON, ``torch.save(weights_only=True)``)."""
        return {"method": self.method,
                **{k: None if getattr(self, k) is None else list(getattr(self, k))
                   for k in ("x_shift", "x_scale", "y_shift", "y_scale")}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Normalizer:
        """The inverse of :meth:`to_dict` (``None`` gives the identity)."""
        if not data:
            return cls()
        return cls(str(data.get("method", "none")),
                   *(None if data.get(k) is None else tuple(float(v) for v in data[k])
                     for k in ("x_shift", "x_scale", "y_shift", "y_scale")))


def _tup(values: np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) for v in np.asarray(values, dtype=np.float64).reshape(-1))


def _as_array(values: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64)


def _affine(values: Any, shift: tuple[float, ...] | None, scale: tuple[float, ...] | None,
            inverse: bool) -> Any:
    if shift is None or scale is None:
        return values
    if isinstance(values, torch.Tensor):
        s = torch.tensor(shift, dtype=torch.float64, device=values.device)
        c = torch.tensor(scale, dtype=torch.float64, device=values.device)
        # in float64, then back: the map is exact to the last bit the dtype keeps
        out = values.double() * c + s if inverse else (values.double() - s) / c
        return out.to(values.dtype)
    values = np.asarray(values, dtype=np.float64)
    s, c = np.asarray(shift), np.asarray(scale)
    return values * c + s if inverse else (values - s) / c
