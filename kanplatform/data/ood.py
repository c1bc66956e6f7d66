"""Out-of-domain test points: a shell around a synthetic target's training box.

A registered target is sampled uniformly in its box ``[low_i, high_i]`` (centre ``c_i``,
half-width ``h_i``). The out-of-domain (OOD) split lies in the shell

    S = {x : r_lo <= max_i |x_i - c_i| / h_i <= r_hi}        (default r in [1.0, 1.5])

i.e. between the training box and the box scaled by ``r_hi`` about its centre: every OOD
point has at least one input outside the training range, and none further than
``(r_hi - 1) * h_i`` beyond it. This is the setting in which the literature review notes that
MLP errors "blow up as soon as we leave" the training range.

Points are uniform in the shell: the radius ``r`` (in the max-norm) has density
``~ r**(d-1)`` on ``[r_lo, r_hi]``, and for a given ``r`` the point is uniform on the surface
of the cube of radius ``r`` (one of its ``2d`` faces, all of equal area, then uniform on it).
Targets undefined somewhere in the shell (a square root or logarithm of a negative number, a
pole) return NaN/inf there; those points are dropped and more are drawn, so the split holds
finite targets only, and how many were dropped is recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from kanplatform.data.targets import get_target

__all__ = ["OODSplit", "box_radius", "ood_split", "shell_inputs"]

_MAX_DRAWS = 8  # rounds of drawing before giving up on a target undefined in most of the shell


@dataclass(frozen=True)
class OODSplit:
    """The out-of-domain split of a target.

    Attributes:
        x: inputs, ``(n, n_inputs)``.
        y: clean targets, ``(n, n_outputs)`` (no noise, as the test split).
        shell: ``(r_lo, r_hi)`` in units of the box half-width.
        n_dropped: points drawn whose target was not finite (left out, replaced by others).
    """

    x: torch.Tensor
    y: torch.Tensor
    shell: tuple[float, float]
    n_dropped: int

    def to(self, device: object = None, dtype: torch.dtype | None = None) -> OODSplit:
        """Return a copy with both tensors moved/cast."""
        return OODSplit(self.x.to(device=device, dtype=dtype),
                        self.y.to(device=device, dtype=dtype), self.shell, self.n_dropped)


def box_radius(x: np.ndarray, ranges: Sequence[tuple[float, float]]) -> np.ndarray:
    """Max-norm distance of each row of ``x: (n, d)`` from the box centre, in half-widths.

    ``<= 1`` inside the box ``ranges``; the OOD shell has values in ``[r_lo, r_hi]``.
    """
    low = np.array([r[0] for r in ranges], dtype=np.float64)
    high = np.array([r[1] for r in ranges], dtype=np.float64)
    centre, half = (low + high) / 2, (high - low) / 2
    return np.max(np.abs((np.asarray(x, dtype=np.float64) - centre) / half), axis=1)


def shell_inputs(ranges: Sequence[tuple[float, float]], n: int,
                 shell: tuple[float, float] = (1.0, 1.5),
                 rng: np.random.Generator | None = None) -> np.ndarray:
    """``n`` points uniform in the shell around the box ``ranges`` (see the module docstring).

    Args:
        ranges: the training box, one ``(low, high)`` per input.
        n: number of points.
        shell: ``(r_lo, r_hi)`` with ``0 <= r_lo < r_hi``, in half-widths.
        rng: random generator (default: a fresh one seeded 0).

    Returns:
        ``(n, d)`` float64 inputs.
    """
    lo, hi = float(shell[0]), float(shell[1])
    if not 0 <= lo < hi:
        raise ValueError(f"shell must be (r_lo, r_hi) with 0 <= r_lo < r_hi, got {shell}")
    rng = rng if rng is not None else np.random.default_rng(0)
    d = len(ranges)
    low = np.array([r[0] for r in ranges], dtype=np.float64)
    high = np.array([r[1] for r in ranges], dtype=np.float64)
    centre, half = (low + high) / 2, (high - low) / 2
    # radius by inverse CDF of r**(d-1) on [lo, hi]; then a face, then uniform on the face
    r = (lo**d + rng.random(n) * (hi**d - lo**d)) ** (1.0 / d)  # (n,)
    z = rng.uniform(-1.0, 1.0, (n, d)) * r[:, None]  # (n, d)
    face = rng.integers(0, d, n)
    z[np.arange(n), face] = np.where(rng.random(n) < 0.5, -1.0, 1.0) * r
    return centre + half * z


def ood_split(name: str, n: int, shell: tuple[float, float] = (1.0, 1.5), seed: int = 0,
              dtype: torch.dtype = torch.float32) -> OODSplit:
    """The OOD split of the registered target ``name``: ``n`` points with finite targets.

    Seeded like the other splits (``[seed, 5]``), so it depends on ``data.seed`` only.

    Raises:
        KeyError: ``name`` is not a registered target.
        ValueError: fewer than ``n`` finite targets after several rounds of drawing (the
            target is undefined in most of the shell).
    """
    target = get_target(name)
    rng = np.random.default_rng([seed, 5])
    xs, ys, dropped = [], [], 0
    have = 0
    for _ in range(_MAX_DRAWS):
        x = shell_inputs(target.ranges, max(n - have, 16) * 2, shell, rng)
        with np.errstate(all="ignore"):
            y = target(x)
        ok = np.isfinite(y).all(axis=1)
        dropped += int((~ok).sum())
        xs.append(x[ok])
        ys.append(y[ok])
        have += int(ok.sum())
        if have >= n:
            break
    if have < n:
        raise ValueError(f"data.n_ood: only {have} of {n} out-of-domain points of {name!r} have "
                         f"a finite target in the shell {list(shell)}; narrow data.ood_shell")
    x, y = np.concatenate(xs)[:n], np.concatenate(ys)[:n]
    return OODSplit(torch.as_tensor(x, dtype=dtype), torch.as_tensor(y, dtype=dtype),
                    (float(shell[0]), float(shell[1])), dropped)
