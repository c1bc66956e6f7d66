"""Spline snapshots: figures + raw curves of a KAN's edges, in the run dir and in W&B."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from kanplatform.tracking import figures
from kanplatform.tracking.wandb_run import warn_once

MAX_TABLE_ROWS = 20_000


def snapshot(model: Any, run_dir: str | Path, tag: str, logger: Any = None,
             step: int | None = None, n_points: int = 101) -> list[Path]:
    """Save (and log to W&B) a spline snapshot of every KAN layer of ``model``.

    Writes ``run_dir/figures/splines_<tag>_layer<l>.png`` per layer and
    ``run_dir/figures/splines_<tag>.npz`` (arrays ``layer<l>_x`` (n, in), ``layer<l>_phi``
    (n, out, in), ``layer<l>_l1`` (out, in)); with a logger, logs ``splines/layer<l>`` as
    ``wandb.Image`` and ``splines/curves`` as a ``wandb.Table`` (layer, out, in, x, phi).

    Train code may call this directly, e.g. just before a grid extension replaces the model;
    :class:`SplineSnapshotCallback` does so on its own at steps and stage ends.

    Args:
        model: a KAN; models without KAN layers (an MLP) produce nothing.
        run_dir: the run directory.
        tag: names the snapshot (``step000100``, ``stage0_G5``, ``final``...), ``[\\w.-]+``.
        logger: a :class:`SafeWandbLogger`, a list of loggers, a Trainer, a wandb Run, or None.
        step: the trainer step the W&B images belong to (default: the last step logged).
        n_points: points per edge curve.

    Returns:
        The files written (PNGs then the npz); empty for a model without KAN layers.
    """
    if not re.fullmatch(r"[\w.-]+", tag):
        raise ValueError(f"snapshot tag {tag!r} must match [\\w.-]+")
    curves = figures.spline_curves(model, n_points=n_points)
    if not curves:
        return []
    out = Path(run_dir) / "figures"
    paths = []
    for i, curve in enumerate(curves):
        fig = figures.spline_figure(curve, title=f"layer {i} — {tag}")
        paths.append(figures.save_figure(fig, out / f"splines_{tag}_layer{i}.png"))
    paths.append(figures.save_curves(curves, out / f"splines_{tag}.npz"))
    if logger is not None:
        _log(curves, paths[:-1], tag, logger, step)
    return paths


def copy_snapshot(paths: list[Path], tag: str, new_tag: str) -> list[Path]:
    """Copies of a snapshot's files (from :func:`snapshot` with ``tag``) named for
    ``new_tag``; returns the new paths."""
    import shutil

    if not re.fullmatch(r"[\w.-]+", new_tag):
        raise ValueError(f"snapshot tag {new_tag!r} must match [\\w.-]+")
    old, new = f"splines_{tag}", f"splines_{new_tag}"
    copies = []
    for path in paths:
        path = Path(path)
        copies.append(Path(shutil.copyfile(path, path.with_name(new + path.name[len(old):]))))
    return copies


def _log(curves: list[dict[str, np.ndarray]], pngs: list[Path], tag: str, logger: Any,
         step: int | None) -> None:
    from kanplatform.tracking.loggers import find_wandb_logger

    try:
        import wandb

        data: dict[str, Any] = {
            f"splines/layer{i}": wandb.Image(str(p), caption=f"{tag} layer {i}")
            for i, p in enumerate(pngs)
        }
        # the column types stated: wandb infers them row by row otherwise (3x the time, the
        # same table)
        data["splines/curves"] = wandb.Table(columns=["tag", "layer", "out", "in", "x", "phi"],
                                             data=_table_rows(curves, tag),
                                             dtype=[str, int, int, int, float, float])
        wl = find_wandb_logger(logger)
        if wl is not None:
            wl.log_media(data, step)
        elif hasattr(logger, "log") and hasattr(logger, "config"):  # a wandb Run
            logger.log(data)
    except Exception as err:  # noqa: BLE001 - a snapshot must never stop training
        warn_once(f"spline snapshot not logged to W&B ({type(err).__name__}: {err})",
                  key="snapshot")


def _table_rows(curves: list[dict[str, np.ndarray]], tag: str) -> list[list[Any]]:
    edges = sum(c["phi"].shape[1] * c["phi"].shape[2] for c in curves)
    n = curves[0]["phi"].shape[0]
    stride = max(1, -(-edges * n // MAX_TABLE_ROWS))  # keep the table under the row cap
    rows = []
    for layer, c in enumerate(curves):
        x, phi = c["x"][::stride], c["phi"][::stride]
        for j in range(phi.shape[1]):
            for i in range(phi.shape[2]):
                rows += [[tag, layer, j, i, float(a), float(b)]
                         for a, b in zip(x[:, i], phi[:, j, i])]
    return rows
