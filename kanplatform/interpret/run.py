"""``interpret_run(run_dir)``: prune → refit → auto_symbolic → affine retraining → files + W&B.

Writes into ``RUN_DIR/interpret/``::

    formula.txt        one line per output: ``y1 = <sympy formula>``
    formula.tex        the same in LaTeX
    interpret.json     widths, RMSEs (model, pruned, symbolic), every edge's fit, warnings
    pruned_model.pt    the pruned KAN (``kanplatform.load(RUN_DIR/interpret/pruned_model.pt)``)

and spline snapshots ``figures/splines_interpret_before_layer<l>.png`` (the trained KAN),
``..._interpret_pruned_...`` and ``..._interpret_symbolic_...`` (the symbolic model's edges).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kanplatform.nn.symbolic_kan import lbfgs_steps

__all__ = ["InterpretResult", "interpret_run", "interpretable"]

OUT_DIR = "interpret"


def interpretable(kind: str) -> bool:
    """Whether runs of model ``kind`` can be interpreted: its registered class is a KAN (whose
    edges are the splines that pruning and symbolic fitting work on)."""
    from kanplatform.nn import KAN, MODEL_REGISTRY

    cls = MODEL_REGISTRY.get(kind)
    return cls is not None and issubclass(cls, KAN)


@dataclass
class InterpretResult:
    """What :func:`interpret_run` found and wrote.

    Attributes:
        run_dir: the run directory.
        width_before, width_after: KAN widths before and after pruning.
        formula: one formula string per output (rounded constants).
        latex: the same in LaTeX.
        metrics: ``model/test_rmse``, ``pruned/test_rmse``, ``symbolic/test_rmse``,
            ``symbolic/train_rmse``, ``symbolic/edges``, ``symbolic/spline_edges``.
        edges: per edge ``{layer, out, in, function, a, b, c, d, r2, accepted, reason}``.
        warnings: edges kept as splines, inputs outside fitted ranges or domains.
        files: files written.
        model: the symbolic model (a :class:`~kanplatform.nn.symbolic_kan.SymbolicKAN`).
    """

    run_dir: Path
    width_before: list[int]
    width_after: list[int]
    formula: list[str]
    latex: list[str]
    metrics: dict[str, float]
    edges: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    model: Any = field(default=None, repr=False)


def _rmse(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float(torch.sqrt(torch.mean((model(x) - y) ** 2)))


def _lbfgs(params: Sequence[torch.nn.Parameter], loss_fn: Callable[[], torch.Tensor],
           steps: int) -> None:
    """Full-batch LBFGS (the paper's recipe); non-finite steps are undone."""
    lbfgs_steps(list(params), loss_fn, steps)


def _wandb_run(cfg: Any, run_dir: Path, mode: str | None) -> Any:
    """Re-open the run's W&B run (same id) when tracking is on; None otherwise."""
    from kanplatform.tracking import resolve_mode
    from kanplatform.tracking.wandb_run import recorded_run_id

    mode = mode or resolve_mode(cfg)
    if mode == "disabled":
        return None
    try:
        import wandb

        run_id = recorded_run_id(run_dir)
        if run_id is None:  # runs written before the id was recorded: from the directory name
            ids = sorted(p.name.rsplit("-", 1)[-1] for p in (run_dir / "wandb").glob("*run-*")
                         if p.is_dir())
            run_id = ids[-1] if ids else None
        return wandb.init(dir=str(run_dir), mode=mode, id=run_id,
                          resume="allow", project=cfg.tracking.project,
                          entity=cfg.tracking.entity, group=cfg.tracking.group,
                          name=cfg.tracking.name or run_dir.name, job_type="interpret",
                          settings=wandb.Settings(silent=True, x_disable_stats=True,
                                                  init_timeout=cfg.tracking.init_timeout))
    except Exception as err:  # noqa: BLE001 - W&B must never stop the interpretation
        warnings.warn(f"W&B not logged ({type(err).__name__}: {err}); files are still written",
                      stacklevel=2)
        return None


def interpret_run(
    run_dir: str | Path,
    *,
    prune: bool = True,
    node_threshold: float = 1e-2,
    edge_threshold: float = 3e-2,
    method: str = "attribution",
    retrain_steps: int = 20,
    lib: Sequence[str] | None = None,
    r2_threshold: float = 0.99,
    affine_steps: int = 20,
    layerwise_steps: int = 0,
    digits: int = 4,
    tracking: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> InterpretResult:
    """Prune a run's trained KAN, fit a formula, and write it into the run directory.

    Args:
        run_dir: a run directory written by ``kanplatform train`` (a KAN run).
        prune: prune before fitting (nodes then edges).
        node_threshold, edge_threshold, method: see :func:`kanplatform.nn.prune.prune`.
        retrain_steps: LBFGS steps on the pruned KAN (0 keeps it as pruned).
        lib: symbolic library names (None: the whole library).
        r2_threshold: edges whose best fit has a lower R² stay splines (reported).
        affine_steps: LBFGS steps on the symbolic constants.
        layerwise_steps: > 0 fits layer by layer, retraining downstream layers this many
            LBFGS steps after each (see ``auto_symbolic(y=...)``; recovers products).
        digits: decimals of the constants in the formula.
        tracking: W&B mode override (``offline``/``online``/``disabled``); default: the run's.
        progress: called with one line as each step starts (the CLI prints them: fitting
            every edge of a wide KAN takes a while).

    Returns:
        :class:`InterpretResult`.

    Raises:
        FileNotFoundError: no model or config in ``run_dir``.
        ValueError: the run's model is not a KAN.
    """
    import sympy

    from kanplatform import tracking as trk
    from kanplatform.data.datasets import dataset_for_run, dataset_task
    from kanplatform.nn.kan import KAN
    from kanplatform.nn.prune import prune as prune_kan
    from kanplatform.nn.symbolic import get_symbolic
    from kanplatform.nn.symbolic_kan import auto_symbolic, train_affine
    from kanplatform.train.checkpoint import load_model, save_model
    from kanplatform.train.resolve import load_run_config

    say = progress or (lambda line: None)
    for name in lib or ():
        get_symbolic(name)  # an unknown name fails before any work
    run_dir = Path(run_dir).resolve()
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{run_dir} has no config.yaml: is it a `kanplatform train` "
                                "run directory?")
    cfg = load_run_config(run_dir / "config.yaml")
    task = dataset_task(cfg.data, cfg.task)
    if task != "regression":
        raise ValueError(f"interpret fits formulas to regression targets; {run_dir.name} is a "
                         f"{task} run")
    model = load_model(run_dir)  # the bare network: it is fitted in model units
    if not isinstance(model, KAN):
        raise ValueError(f"interpret needs a KAN run; {run_dir.name} trained a "
                         f"{type(model).__name__} (model.kind={cfg.model.kind})")
    dtype = model.layers[0].coef.dtype
    data = dataset_for_run(cfg, dtype=dtype)  # normalised as in training
    (x, y), (xt, yt) = data.train, data.test
    out = run_dir / OUT_DIR
    out.mkdir(exist_ok=True)
    wb = _wandb_run(cfg, run_dir, tracking)
    files = list(trk.snapshot(model, run_dir, "interpret_before", logger=wb))

    metrics = {"model/test_rmse": _rmse(model, xt, yt)}
    if prune:
        say(f"pruning {list(model.width)} ({method} scores, nodes <= {node_threshold:g}, "
            f"edges < {edge_threshold:g})")
    small = prune_kan(model, x, node_threshold, edge_threshold, method) if prune else model
    if prune and retrain_steps:
        say(f"retraining the pruned {list(small.width)} KAN ({retrain_steps} LBFGS steps)")
        _lbfgs(list(small.parameters()), lambda: torch.mean((small(x) - y) ** 2), retrain_steps)
    metrics["pruned/test_rmse"] = _rmse(small, xt, yt)
    save_model(small, out / "pruned_model.pt")
    files.append(out / "pruned_model.pt")
    files += trk.snapshot(small, run_dir, "interpret_pruned", logger=wb)

    n_edges = sum(int(layer.mask.sum()) for layer in small.layers)
    library = f"{len(lib)} library functions" if lib else "every library function"
    say(f"fitting {n_edges} edges to {library}")
    sym = auto_symbolic(small, x, lib, r2_threshold=r2_threshold, y=y,
                        retrain_steps=layerwise_steps)
    say(f"fitting the formula's constants ({affine_steps} LBFGS steps)")
    metrics["symbolic/train_rmse"] = train_affine(sym, x, y, steps=affine_steps)
    metrics["symbolic/test_rmse"] = _rmse(sym, xt.to(dtype), yt.to(dtype))
    files += trk.snapshot(sym, run_dir, "interpret_symbolic", logger=wb)

    exprs = sym.formula(list(data.input_names), digits=digits)
    names = list(data.target_names)
    text = [f"{n} = {sympy.sstr(e)}" for n, e in zip(names, exprs)]
    latex = [f"{n} = {sympy.latex(e)}" for n, e in zip(names, exprs)]
    edges = [{"layer": r.layer, "out": r.out, "in": r.inp, "accepted": r.accepted,
              "reason": r.reason, **({"function": r.fit.name, "a": r.fit.a, "b": r.fit.b,
                                      "c": r.fit.c, "d": r.fit.d, "r2": r.fit.r2}
                                     if r.fit else {"function": "0"})}
             for r in sym.fits]
    notes = [r.reason for r in sym.fits if not r.accepted]
    notes += sym.check_inputs(xt.to(dtype))
    metrics["symbolic/edges"] = sum(1 for r in sym.fits if r.accepted and r.fit)
    metrics["symbolic/spline_edges"] = sum(1 for r in sym.fits if not r.accepted)
    width_after = list(small.width)

    (out / "formula.txt").write_text("\n".join(text) + "\n")
    (out / "formula.tex").write_text("\n".join(f"$${t}$$" for t in latex) + "\n")
    summary = {"width_before": list(model.width), "width_after": width_after,
               "formula": text, "latex": latex, "metrics": metrics, "edges": edges,
               "warnings": notes, "settings": {
                   "prune": prune, "node_threshold": node_threshold,
                   "edge_threshold": edge_threshold, "method": method,
                   "retrain_steps": retrain_steps, "lib": list(lib) if lib else None,
                   "r2_threshold": r2_threshold, "affine_steps": affine_steps,
                   "layerwise_steps": layerwise_steps}}
    (out / "interpret.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    files += [out / "formula.txt", out / "formula.tex", out / "interpret.json"]
    if wb is not None:
        try:
            wb.log({f"interpret/{k}": v for k, v in metrics.items()})
            wb.summary.update({"interpret/formula": "\n".join(text),
                               "interpret/latex": "\n".join(latex),
                               "interpret/width_after": str(width_after)})
            wb.finish()
        except Exception as err:  # noqa: BLE001
            warnings.warn(f"W&B logging failed ({type(err).__name__}: {err})", stacklevel=2)
    return InterpretResult(run_dir, list(model.width), width_after, text, latex, metrics,
                           edges, notes, files, sym)
