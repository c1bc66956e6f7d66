"""Figures: spline snapshots of a KAN (figure per layer + raw curves) and scaling plots.

Matplotlib is used through ``matplotlib.figure.Figure`` (Agg canvas), never ``pyplot``, so no
global figure state or GUI backend is involved and figures are freed when dropped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# edges (cells) and inputs (columns) drawn in one layer's figure: beyond them the strongest
# inputs and outputs (the npz keeps every curve)
MAX_EDGES_PLOTTED = 64
MAX_COLS_PLOTTED = 16


def kan_layers(model: Any) -> list[Any]:
    """The KAN layers of a model (modules with ``edge_activations`` and ``input_range``).

    Returns an empty list for models without spline edges (e.g. an MLP).
    """
    layers = getattr(model, "layers", None)
    if layers is None:
        return []
    return [lyr for lyr in layers
            if hasattr(lyr, "edge_activations") and hasattr(lyr, "input_range")]


def spline_curves(model: Any, n_points: int = 101) -> list[dict[str, np.ndarray]]:
    """Evaluate every edge activation φ of every KAN layer over its grid range.

    Args:
        model: a KAN (``model.layers`` of KANLayer).
        n_points: points per input.

    Returns:
        Per layer a dict with ``x``: (n_points, in) — column i spans input i's grid range,
        ``phi``: (n_points, out, in) — φ_ji(x[:, i]), and ``l1``: (out, in) — mean |φ| over
        those points (the edge's magnitude, used for transparency).
    """
    import torch

    curves = []
    with torch.no_grad():
        for layer in kan_layers(model):
            rng = torch.as_tensor(layer.input_range()).detach().to("cpu", torch.float64)  # (in, 2)
            t = torch.linspace(0.0, 1.0, n_points, dtype=torch.float64)[:, None]  # (n, 1)
            x = rng[:, 0] + t * (rng[:, 1] - rng[:, 0])  # (n, in)
            param = next(layer.parameters(), None)
            device = param.device if param is not None else "cpu"
            dtype = param.dtype if param is not None else torch.float32
            phi = layer.edge_activations(x.to(device, dtype))  # (n, out, in)
            phi = phi.detach().to("cpu", torch.float64).numpy()
            if phi.shape[0] != n_points or phi.shape[2] != x.shape[1]:
                raise ValueError(f"edge_activations returned {phi.shape}, expected "
                                 f"({n_points}, out, {x.shape[1]})")
            curves.append({"x": x.numpy(), "phi": phi, "l1": np.abs(phi).mean(axis=0)})
    return curves


def save_curves(curves: Sequence[Mapping[str, np.ndarray]], path: str | Path) -> Path:
    """Save curves as ``.npz`` with arrays ``layer{l}_x``, ``layer{l}_phi``, ``layer{l}_l1``."""
    import zipfile

    arrays = {f"layer{i}_{k}": np.asarray(v) for i, c in enumerate(curves) for k, v in c.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # np.savez_compressed's layout (one .npy per array in a deflated zip; np.load reads it)
    # at zlib level 1: 28 instead of 154 ms for KAN [8, 32, 32, 1]'s 1,312 curves, 10 % larger
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, array in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, array, allow_pickle=False)
    return path


def load_curves(path: str | Path) -> list[dict[str, np.ndarray]]:
    """Read curves written by :func:`save_curves` (list per layer of x, phi, l1)."""
    with np.load(path) as data:
        n = 1 + max(int(k.split("_")[0][5:]) for k in data.files)
        return [{k: data[f"layer{i}_{k}"] for k in ("x", "phi", "l1")} for i in range(n)]


def edge_alpha(l1: np.ndarray, floor: float = 0.1) -> np.ndarray:
    """Transparency per edge from its L1 magnitude: ``floor`` .. 1, strongest edge opaque."""
    top = float(np.max(l1)) if l1.size else 0.0
    if not math.isfinite(top) or top <= 0:
        return np.full_like(l1, floor, dtype=float)
    return floor + (1.0 - floor) * np.clip(np.nan_to_num(l1 / top), 0.0, 1.0)


def plotted_grid(l1: np.ndarray, limit: int = MAX_EDGES_PLOTTED,
                 max_cols: int = MAX_COLS_PLOTTED) -> tuple[list[int], list[int]]:
    """The outputs (rows) and inputs (columns) a layer's figure draws, ascending.

    A layer of at most ``limit`` edges and ``max_cols`` inputs is drawn whole. A wider one
    keeps the most important inputs and outputs, every edge between them drawn: an input's
    importance is the sum of its edges' L1 magnitudes (an output's likewise), so the strongest
    edge is always drawn. At most ``max_cols`` columns and ``limit`` cells; square-ish (8 x 8
    for a 32 x 32 layer). Non-finite magnitudes rank last, ties in index order.
    """
    n_out, n_in = l1.shape
    score = np.nan_to_num(np.asarray(l1, dtype=float), nan=-1.0, posinf=-1.0, neginf=-1.0)
    cols = min(n_in, max_cols, max(math.isqrt(limit), limit // max(n_out, 1)))
    rows = min(n_out, limit // max(cols, 1))

    def top(weights: np.ndarray, k: int) -> list[int]:
        return sorted(int(i) for i in np.argsort(-weights, kind="stable")[:k])

    keep_in = top(score.sum(axis=0), cols)
    return top(score[:, keep_in].sum(axis=1), rows), keep_in


def plotted_edges(l1: np.ndarray, limit: int = MAX_EDGES_PLOTTED) -> list[tuple[int, int]]:
    """The ``(out, in)`` edges a layer's figure draws (see :func:`plotted_grid`), row-major."""
    rows, cols = plotted_grid(l1, limit)
    return [(j, i) for j in rows for i in cols]


def spline_figure(curve: Mapping[str, np.ndarray], title: str = "") -> Any:
    """One layer's edges as a grid of small plots, row = output ``y<j>``, column = input
    ``x<i>``: the whole layer when it is small, else its most important inputs and outputs
    (:func:`plotted_grid`); the npz keeps every curve.

    Every panel is a cell of one axes (each curve scaled to its cell, as a panel's own axis
    limits would; its opacity from :func:`edge_alpha`), drawn as one line collection, and
    only rows and columns are labelled: one matplotlib axes per edge with a constrained
    layout took seconds per snapshot (minutes under load) for wide KANs and stalled their
    runs, and a text label per cell still cost ~4 ms each (0.2 s a figure).
    """
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure

    x, phi, l1 = curve["x"], curve["phi"], curve["l1"]
    n_out, n_in = l1.shape
    out_idx, in_idx = plotted_grid(l1)
    alpha = edge_alpha(l1)
    rows, cols = len(out_idx), len(in_idx)
    width, height = 1.2 * cols + 0.6, 1.0 * rows + 0.9
    fig = Figure(figsize=(width, height), dpi=90)
    ax = fig.add_axes((0.45 / width, 0.45 / height, 1 - 0.55 / width, 1 - 0.9 / height))
    lines, colors, boxes = [], [], []
    for r, j in enumerate(out_idx):
        for c, i in enumerate(in_idx):
            x0, y0 = c, rows - 1 - r  # the cell's lower-left corner
            u = np.asarray(x[:, i], dtype=float)
            v = np.nan_to_num(np.asarray(phi[:, j, i], dtype=float))
            span_u = (u.max() - u.min()) or 1.0
            span_v = (v.max() - v.min()) or 1.0
            lines.append(np.stack([x0 + 0.05 + 0.8 * (u - u.min()) / span_u,
                                   y0 + 0.1 + 0.65 * (v - v.min()) / span_v], axis=1))
            colors.append((0.0, 0.0, 0.0, float(alpha[j, i])))
            boxes.append([(x0, y0), (x0 + 0.9, y0), (x0 + 0.9, y0 + 0.85),
                          (x0, y0 + 0.85), (x0, y0)])
    ax.add_collection(LineCollection(boxes, colors=[(0, 0, 0, 0.3)], linewidths=0.6))
    ax.add_collection(LineCollection(lines, colors=colors, linewidths=1.2))
    ax.set_xlim(-0.05, cols)
    ax.set_ylim(-0.05, rows + 0.05)
    ax.set_axis_off()
    for c, i in enumerate(in_idx):
        ax.text(c + 0.45, -0.03, f"x{i}", fontsize=7, ha="center", va="top")
    for r, j in enumerate(out_idx):
        ax.text(-0.03, rows - 1 - r + 0.42, f"y{j}", fontsize=7, ha="right", va="center",
                rotation=90)
    shown = "" if rows * cols == n_out * n_in else \
        f" ({rows} of {n_out} outputs x {cols} of {n_in} inputs, the strongest)"
    if title or shown:
        fig.suptitle(title + shown, fontsize=8)
    return fig


def plain_log_y(ax: Any) -> None:
    """Make ``ax``'s y axis logarithmic, labelled in plain text (``1e-05``).

    Call it after plotting. Matplotlib's default log labels are mathtext (``10^{-5}``),
    whose parsing was most of drawing a small curves figure; over more than three decades
    the minor ticks (and their grid lines) are only at 2 and 5 of each decade. A live report
    redraws such figures while a study trains, so they must be cheap: ~3x less CPU each
    (``benchmarks/bench_report.py``).
    """
    from matplotlib.ticker import LogFormatter, LogLocator

    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(LogFormatter())
    ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.4)))
    lo, hi = ax.get_ylim()
    if lo > 0 and hi > 1e3 * lo:
        ax.yaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))


def save_figure(fig: Any, path: str | Path) -> Path:
    """Save a ``Figure`` as PNG, creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # zlib level 1: a third of the default level's encoding time, the same pixels
    fig.savefig(path, format="png", pil_kwargs={"compress_level": 1})
    return path


# -- scaling curves -----------------------------------------------------------------------

def fit_curve(fit: Any, n: np.ndarray) -> np.ndarray:
    """Evaluate a fitted power law ``loss = a * n**(-alpha) + c`` at ``n``.

    ``fit`` is plain data: an object with ``predict(n)`` (e.g.
    :class:`kanplatform.scaling.PowerLawFit`), or a mapping/object with ``alpha``, the
    prefactor ``a`` (or ``log_a`` = ln a, ``log10_a``) and an optional floor ``c`` — the
    ``PowerLawFit.to_dict()`` layout.
    """
    if hasattr(fit, "predict"):
        return np.asarray(fit.predict(n), dtype=float)

    def get(name: str) -> Any:
        return fit.get(name) if isinstance(fit, Mapping) else getattr(fit, name, None)

    alpha = get("alpha")
    if alpha is None:
        raise ValueError("a scaling fit needs 'alpha'")
    if get("a") is not None:
        a = float(get("a"))
    elif get("log10_a") is not None:
        a = 10.0 ** float(get("log10_a"))
    elif get("log_a") is not None:
        a = math.exp(float(get("log_a")))
    else:
        raise ValueError("a scaling fit needs the prefactor 'a' (loss = a * n**-alpha + c)")
    c = float(get("c") or 0.0)
    return a * np.asarray(n, dtype=float) ** (-float(alpha)) + c


def _series(points: Any, x: str, y: str, series: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Group points into {series: (n, loss)}; accepts rows of dicts or {series: (n, loss)}."""
    if isinstance(points, Mapping):
        return {str(k): (np.asarray(v[0], float), np.asarray(v[1], float))
                for k, v in points.items()}
    groups: dict[str, tuple[list[float], list[float]]] = {}
    for row in points:
        label = str(row.get(series, "runs")) if series else "runs"
        if row.get(x) is None or row.get(y) is None:
            continue
        groups.setdefault(label, ([], []))
        groups[label][0].append(float(row[x]))
        groups[label][1].append(float(row[y]))
    return {k: (np.asarray(a), np.asarray(b)) for k, (a, b) in groups.items()}


def plot_scaling(points: Any, fits: Mapping[str, Any] | None = None, *,
                 x: str = "model/params", y: str = "test/rmse", series: str = "kind",
                 path: str | Path | None = None, title: str | None = None) -> Any:
    """Log–log scaling plot of finished runs with the fitted power laws.

    Args:
        points: rows (dicts) with ``x``, ``y`` and ``series`` keys — e.g. one per run with
            ``model/params``, ``model/flops``, ``test/rmse``, ``kind`` — or a mapping
            ``{series: (n, loss)}``.
        fits: ``{series: fit}`` with each fit as accepted by :func:`fit_curve`; a fit's
            ``alpha`` (and ``alpha_ci`` if given) goes into the legend.
        x, y: the keys plotted; ``series`` the key that groups rows into lines.
        path: where to save the PNG (optional).
        title: figure title.

    Returns:
        The matplotlib ``Figure``.

    Example:
        >>> fig = plot_scaling([{"kind": "kan", "model/params": 100, "test/rmse": 1e-2}],
        ...                    {"kan": {"alpha": 4.0, "a": 1e6}})
    """
    from matplotlib.figure import Figure

    groups = _series(points, x, y, series)
    fits = dict(fits or {})
    fig = Figure(figsize=(5.5, 4.0), dpi=100, layout="constrained")
    ax = fig.subplots()
    colors = [f"C{i}" for i in range(10)]
    for k, label in enumerate(sorted(set(groups) | set(fits))):
        color = colors[k % len(colors)]
        n, loss = groups.get(label, (np.array([]), np.array([])))
        ok = (n > 0) & (loss > 0)
        if ok.any():
            ax.scatter(n[ok], loss[ok], color=color, s=18, label=f"{label} runs")
        if label in fits:
            lo, hi = (n[ok].min(), n[ok].max()) if ok.any() else (1.0, 1e4)
            grid = np.geomspace(lo, hi if hi > lo else lo * 10, 100)
            ax.plot(grid, fit_curve(fits[label], grid), color=color, lw=1.5,
                    label=f"{label} fit: {fit_label(fits[label])}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    ax.set_title(title or f"{y} vs {x}", fontsize=9)
    if path is not None:
        save_figure(fig, path)
    return fig


def fit_label(fit: Any) -> str:
    """``α = 3.98 [3.7, 4.2]`` from a fit's ``alpha`` and optional ``alpha_ci``."""
    def get(name: str) -> Any:
        return fit.get(name) if isinstance(fit, Mapping) else getattr(fit, name, None)

    alpha = get("alpha")
    text = f"α = {float(alpha):.3g}" if alpha is not None else "fit"
    ci = get("alpha_ci")
    if ci is not None and len(ci) == 2:
        text += f" [{float(ci[0]):.3g}, {float(ci[1]):.3g}]"
    return text


def log_scaling(run: Any, points: Any, fits: Mapping[str, Any] | None = None, *,
                x: str = "model/params", y: str = "test/rmse", series: str = "kind",
                key: str | None = None, path: str | Path | None = None,
                image: str | Path | None = None) -> Any:
    """Log a scaling plot to W&B: the image, and a W&B line plot of log10 data and fits.

    Args:
        run: a ``wandb`` Run, a :class:`SafeWandbLogger` (its ``experiment``), or ``None``
            (only the figure is made / saved).
        points, fits, x, y, series: as for :func:`plot_scaling`.
        key: W&B key prefix, default ``scaling/<x>``.
        path: also save the PNG there.
        image: a PNG of this plot already drawn (a study's own figure): logged as the
            image instead of drawing one here (matplotlib's layout is most of the cost).

    Returns:
        The matplotlib ``Figure`` (``None`` with ``image``). W&B errors become a warning.
    """
    fig = None if image is not None else plot_scaling(points, fits, x=x, y=y,
                                                      series=series, path=path)
    run = getattr(run, "experiment", run)
    if run is None:
        return fig
    from kanplatform.tracking.wandb_run import warn_once

    key = key or f"scaling/{x}"
    try:
        import wandb

        rows = []
        for label, (n, loss) in _series(points, x, y, series).items():
            ok = (n > 0) & (loss > 0)
            rows += [[f"{label} runs", math.log10(a), math.log10(b)]
                     for a, b in zip(n[ok], loss[ok])]
            if fits and label in fits and ok.any():
                grid = np.geomspace(n[ok].min(), max(n[ok].max(), n[ok].min() * 10), 50)
                rows += [[f"{label} fit", math.log10(a), math.log10(b)]
                         for a, b in zip(grid, fit_curve(fits[label], grid))]
        table = wandb.Table(columns=["series", f"log10 {x}", f"log10 {y}"], data=rows)
        run.log({
            f"{key}_image": wandb.Image(str(image) if fig is None else _png_array(fig)),
            f"{key}_table": table,
            f"{key}_line": wandb.plot.line(table, f"log10 {x}", f"log10 {y}",
                                           stroke="series", title=f"{y} vs {x} (log10)"),
        })
    except Exception as err:  # noqa: BLE001
        warn_once(f"W&B scaling plot not logged ({type(err).__name__}: {err})", key="scaling")
    return fig


def _png_array(fig: Any) -> np.ndarray:
    """RGB array of a Figure (wandb.Image accepts arrays without needing pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
