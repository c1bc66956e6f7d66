"""Run a scaling study: train every size through Ray Tune, collect the table, fit, write.

``run_study`` is the one entry point (``kanplatform scale`` calls it)::

    from kanplatform.scaling import load_study, run_study
    result = run_study(load_study("configs/scaling/toy_exp_sin_sq.yaml"))
    result.fits["kan"]["model/params"].alpha      # fitted exponent of test RMSE vs params
    result.exp_dir / "scaling.json"               # everything, for others to read

The experiment directory::

    EXP_DIR/                    <output_dir>/<name>
      study.yaml                the study as run (overrides applied)
      trials-<UTC time>/        a Ray Tune experiment (one per call with work left);
                                run directories in its runs/
      scaling.csv               one row per (family, size, seed)
      scaling.json              table, fits per family and axis, plot paths, wall time
      scaling.png               test loss vs parameters: data, fits, theory slope -(k+1)
      scaling_flops.png         the same against FLOPs
      wandb/                    the study's W&B run (offline by default)

Trials are exactly ``kanplatform train`` runs: each one is the base config with the trial's
overrides, run by :func:`kanplatform.search.run_configs` (FIFO, one trial each), so a study
uses every core of the machine or a cluster (``address``), and ``resume=True`` restores the
trainings whose run finished (found on disk) are not trained again.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from kanplatform._util.dotted import get_dotted
from kanplatform._util.yamlfile import load_yaml
from kanplatform.config.schema import has_grid, model_keys
from kanplatform.scaling.fit import PowerLawFit, fit_power_law
from kanplatform.scaling.spec import StudyError, StudySpec, Trial, expand

TRIALS_DIR = "trials"
TABLE_CSV = "scaling.csv"
SCALING_JSON = "scaling.json"
PLOTS = {"model/params": "scaling.png", "model/flops": "scaling_flops.png"}
COLUMNS = (
    "family", "kind", "label", "width", "depth", "grid_size", "seed", "model/params",
    "model/flops", "train/rmse", "val/rmse", "test/rmse", "status", "run_dir",
)  # fmt: skip


@dataclass
class StudyResult:
    """What :func:`run_study` produced.

    Attributes:
        exp_dir: the experiment directory.
        rows: the table, one dict per (family, size, seed) (keys: ``COLUMNS``).
        fits: ``{family: {axis: PowerLawFit}}``; a fit that could not be made is absent and
            its reason is in ``errors``.
        errors: ``{family: {axis: message}}``.
        trials_run: trainings this call ran (0 when everything was already complete).
        wall_time_s: seconds for the whole study call.
        plots: ``{axis: path}`` of the PNG plots.
        report: the HTML report (live while the study ran), None with ``report=False``.
    """

    exp_dir: Path
    rows: list[dict[str, Any]]
    fits: dict[str, dict[str, PowerLawFit]]
    errors: dict[str, dict[str, str]] = field(default_factory=dict)
    trials_run: int = 0
    wall_time_s: float = 0.0
    plots: dict[str, Path] = field(default_factory=dict)
    report: Path | None = None


def base_config(spec: StudySpec) -> Any:
    """The resolved base run config of the study (its files + the study's run overrides)."""
    from kanplatform.train.resolve import load_run_config

    return load_run_config(spec.base_files(), dict(spec.overrides))


def experiment_dir(spec: StudySpec, output_dir: str | Path | None = None) -> Path:
    """``<output_dir>/<name>``, absolute (Tune moves trials' working directories).

    Raises:
        StudyError: a URI: a study writes its fits and plots as files, so on a cluster its
            output directory is a path on the shared filesystem (only ``tune`` takes URIs).
    """
    root = str(output_dir or spec.output_dir)
    if "://" in root:
        raise StudyError(f"--output-dir {root}: a scaling study writes files; give a path on "
                         "the cluster's shared filesystem (URIs are storage for `tune`)")
    return (Path(root) / spec.name).expanduser().resolve()


def check_study(spec: StudySpec) -> tuple[Any, list[Trial]]:
    """Resolve every trial's config before anything runs, so a bad size fails in seconds.

    Returns:
        ``(base_cfg, trials)``.

    Raises:
        StudyError: a trial whose config does not load or validate (the trial is named).
    """
    from kanplatform.data import dataset_dims
    from kanplatform.train.resolve import apply_run_overrides

    base = base_config(spec)
    trials = expand(spec, io=tuple(dataset_dims(base.data)))
    for trial in trials:
        try:
            apply_run_overrides(base, trial.overrides, check=True)
        except ValueError as err:
            raise StudyError(f"trial {trial.key}: {err}") from None
    return base, trials


def run_trials(
    spec: StudySpec,
    base: Any,
    trials: Sequence[Trial],
    exp_dir: Path,
    *,
    resume: bool = False,
    address: str | None = None,
    verbose: int = 1,
    **search_kwargs: Any,
) -> tuple[list[dict[str, Any]], int]:
    """Train the trials that have no finished run yet, through ``search.run_configs``.

    Finished runs are found on disk, not in Tune's state: a run directory anywhere under
    ``exp_dir`` whose ``metrics.json`` says ``completed`` (or ``diverged``: deterministic, so
    retraining would diverge again) and whose ``config.yaml`` holds every override of a
    trial is that trial's result. So a study killed at any moment -- even between a run's
    end and Tune's next state save -- never trains a finished size again. Each call that
    has work left runs the remaining trials as a new Tune experiment ``trials-<UTC time>``
    (one trial per size, FIFO); a run interrupted mid-way continues in its own directory
    from its last checkpoint (no second directory for one trial).

    Returns:
        ``(rows, n_run)``: per trial (in order), ``{"run_dir", "status"}`` (run_dir None
        when it has no finished run), and how many trainings finished in this call.
    """
    from kanplatform.search import run_configs

    done = finished_runs(trials, exp_dir)
    todo = [t for t in trials if t.key not in done]
    if done and not resume:
        raise StudyError(
            f"{exp_dir} already holds {len(done)} finished run(s) of this study; pass "
            "--resume to complete it, or set name=... / --output-dir for a new one"
        )
    if resume:
        print(f"resume: {len(done)} of {len(trials)} trainings already finished in {exp_dir}; "
              f"{len(todo)} to run")
        _drop_unstarted(exp_dir)
    statuses: dict[str, str] = {}
    if todo:
        cut_off = finished_runs(todo, exp_dir, ended=False)  # continued where they are
        result = run_configs(
            base,
            [dict(t.overrides) for t in todo],
            metric="val/rmse",  # Tune's ranking only: FIFO runs every trial to the end
            mode="min",
            name=TRIALS_DIR,
            resources=spec.resources,
            max_concurrent_trials=spec.max_concurrent_trials,
            max_failures=spec.max_failures,
            stack_runs=getattr(spec, "stack_runs", True),
            address=address,
            storage_path=exp_dir,
            verbose=verbose,
            run_dirs=[cut_off.get(t.key) for t in todo],
            **search_kwargs,
        )
        for t in todo:
            row = match_row(t, result.trials)
            statuses[t.key] = (row or {}).get("status") or "failed"
    now = finished_runs(trials, exp_dir)
    rows = [
        {"run_dir": now.get(t.key), "status": "completed" if t.key in now else statuses.get(t.key)}
        for t in trials
    ]
    return rows, len(set(now) - set(done))


FINISHED = ("completed", "diverged")  # deterministic: training again gives the same


_MISSING = object()  # a key the run's config lacks matches no value


# what a trial writes into its run directory before its run does (start marker, lock)
_MARKERS = {"trial.json", ".lock"}


def _drop_unstarted(exp_dir: Path) -> None:
    """Remove run directories a killed driver left holding only a trial's start marker: no
    run began there (no config, no metrics), nothing can tell which size it was, and the
    resume trains that size in a directory of its own."""
    import shutil

    for run_dir in exp_dir.glob(f"{TRIALS_DIR}-*/runs/*"):
        if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= _MARKERS:
            shutil.rmtree(run_dir, ignore_errors=True)


def finished_runs(trials: Sequence[Trial], exp_dir: Path, ended: bool = True) -> dict[str, str]:
    """``{trial.key: run_dir}`` of the trials with a finished run under ``exp_dir`` (the
    newest); with ``ended=False``, of those whose newest run was cut off or failed."""
    out: dict[str, tuple[float, str]] = {}
    for config_path in exp_dir.glob(f"{TRIALS_DIR}-*/runs/*/config.yaml"):
        run_dir = config_path.parent
        try:
            metrics = json.loads((run_dir / "metrics.json").read_text())
        except (OSError, ValueError):
            metrics = {}
        try:
            config = load_yaml(config_path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        if (metrics.get("status") in FINISHED) != ended:
            continue
        for t in trials:
            if all(_same(get_dotted(config, k, _MISSING), v) for k, v in t.overrides.items()):
                mtime = config_path.stat().st_mtime
                if t.key not in out or out[t.key][0] < mtime:
                    out[t.key] = (mtime, str(run_dir))
                break
    return {k: v[1] for k, v in out.items()}


def match_row(trial: Trial, rows: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The search row whose override keys equal the trial's (rows carry their configs)."""
    for row in rows:
        if all(_same(row.get(k), v) for k, v in trial.overrides.items()):
            return row
    return None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    return a == b


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else (float("nan") if math.isnan(v) else v)


def rows_from_run(trial: Trial, run_dir: str | Path | None, status: str | None = None) -> list:
    """Table rows of one trial from its run directory's ``metrics.json``.

    A grid-extension trial (``sizes_from: stages``) gives one row per stage; any other one
    row. A trial without metrics gives one row with ``status`` and no losses, so that it
    shows in the table (and is dropped by the fit as not finite).
    """
    width = trial.overrides.get("model.width")
    base = {
        "family": trial.family,
        "kind": trial.kind,
        "label": trial.label,
        "width": json.dumps(width) if width is not None else None,
        "depth": len(width) - 1 if width is not None else None,
        "grid_size": trial.overrides.get("model.grid_size") if has_grid(trial.kind) else None,
        "seed": trial.seed,
        "run_dir": str(run_dir) if run_dir else None,
    }
    metrics = {}
    if run_dir and (Path(run_dir) / "metrics.json").is_file():
        metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    st = metrics.get("status") or status or "missing"
    if trial.sizes_from == "stages" and metrics.get("stages"):
        rows = []
        for stage in metrics["stages"]:
            row = {**base, "grid_size": stage.get("grid_size"), "status": st}
            row["label"] = f"{trial.label}-g{stage.get('grid_size')}"
            for key in ("model/params", "model/flops", "train/rmse", "val/rmse", "test/rmse",
                        *_split_keys(stage)):
                row[key] = _num(stage.get(key))
            rows.append(row)
        return rows
    final = metrics.get("final") or {}
    row = {**base, "status": st}
    for key in ("model/params", "model/flops"):
        row[key] = _num(metrics.get(key))
    for key in ("train/rmse", "val/rmse", "test/rmse", *_split_keys(final)):
        row[key] = _num(final.get(key))
    return [row]


def _split_keys(metrics: dict[str, Any]) -> list[str]:
    """The per-split metrics a run recorded besides the RMSEs (classification: loss,
    accuracy, f1), so a study can fit any of them."""
    return [k for k in metrics if k.split("/")[0] in ("train", "val", "test")
            and not k.endswith("/rmse")]


def fit_families(
    spec: StudySpec, rows: Sequence[Mapping[str, Any]]
) -> tuple[dict[str, dict[str, PowerLawFit]], dict[str, dict[str, str]]]:
    """Fit every family against every size axis of the study.

    Returns:
        ``(fits, errors)``: ``{family: {axis: fit}}`` and ``{family: {axis: message}}``.
    """
    fits: dict[str, dict[str, PowerLawFit]] = {}
    errors: dict[str, dict[str, str]] = {}
    for family in spec.families:
        f = spec.fit_for(family)
        fam_rows = [r for r in rows if r["family"] == family]
        for axis in spec.x:
            n = [r.get(axis) if r.get(axis) is not None else np.nan for r in fam_rows]
            loss = [r.get(spec.metric) if r.get(spec.metric) is not None else np.nan
                    for r in fam_rows]
            train = None
            if f.gap_factor is not None and spec.metric.split("/")[0] != "train":
                key = "train/" + spec.metric.split("/", 1)[1]
                train = [r.get(key) if r.get(key) is not None else np.nan for r in fam_rows]
            try:
                fit = fit_power_law(
                    n, loss, seeds=[r["seed"] for r in fam_rows], floor=f.floor,
                    n_boot=f.n_boot, ci_level=f.ci_level, drop_tail=f.drop_tail,
                    tail_slope=f.tail_slope, diverge_factor=f.diverge_factor,
                    seed_factor=f.seed_factor, train_loss=train,
                    gap_factor=f.gap_factor if f.gap_factor is not None else 2.0,
                    min_sizes=f.min_sizes,
                )
            except ValueError as err:
                errors.setdefault(family, {})[axis] = str(err)
                continue
            fits.setdefault(family, {})[axis] = fit
    return fits, errors


def theory_alpha(spec: StudySpec, base: Any, family: str) -> float | None:
    """The paper's exponent k + 1 for a spline family (k = spline order), else None."""
    from kanplatform.train.resolve import apply_run_overrides

    fam = spec.families[family]
    if "spline_order" not in model_keys(fam.kind):
        return None
    cfg = apply_run_overrides(base, fam.overrides)
    return float(cfg.model.spline_order + 1)


def write_table(path: Path, rows: Sequence[Mapping[str, Any]], used: Mapping[int, bool]) -> None:
    """Write the table as CSV, with ``used_in_fit`` (vs parameters) per row."""
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*COLUMNS, "used_in_fit"])
        writer.writeheader()
        for i, row in enumerate(rows):
            writer.writerow({**{k: row.get(k) for k in COLUMNS}, "used_in_fit": used.get(i)})


def _used_by_row(spec: StudySpec, rows, fits, axis: str = "model/params") -> dict[int, bool]:
    used: dict[int, bool] = {}
    for family in spec.families:
        idx = [i for i, r in enumerate(rows) if r["family"] == family]
        fit = fits.get(family, {}).get(axis)
        for j, i in enumerate(idx):
            used[i] = bool(fit.used_mask[j]) if fit is not None else False
    return used


def run_study(
    spec: StudySpec,
    *,
    resume: bool = False,
    address: str | None = None,
    output_dir: str | Path | None = None,
    log_wandb: bool = True,
    verbose: int = 1,
    report: bool = True,
    **search_kwargs: Any,
) -> StudyResult:
    """Train every size of a study, fit the scaling laws and write the outputs.

    Args:
        spec: the study (:func:`kanplatform.scaling.load_study`).
        resume: continue an interrupted study in the same experiment directory; trials
            that completed are not trained again.
        address: a Ray cluster's head ``HOST:PORT``; None starts a local Ray.
        output_dir: overrides ``spec.output_dir``.
        log_wandb: log the table, fits and plots to a W&B run of the study (mode from the
            base config's ``tracking.mode``; offline by default).
        verbose: Tune console verbosity.
        report: keep ``EXPERIMENT/report.html`` live while the study runs (its path is
            printed first) and write the final page at the end.
        **search_kwargs: passed to :func:`kanplatform.search.run_search` (``num_cpus``...).

    Returns:
        The :class:`StudyResult`.

    Raises:
        StudyError: a bad study or trial config, before any training.
    """
    start = time.perf_counter()
    base, trials = check_study(spec)
    exp_dir = experiment_dir(spec, output_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    (exp_dir / "study.yaml").write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))
    from kanplatform.tracking.live import live_report

    with live_report(exp_dir) if report else contextlib.nullcontext() as page:
        result = _study(spec, base, trials, exp_dir, start, resume=resume, address=address,
                        log_wandb=log_wandb, verbose=verbose, **search_kwargs)
    result.report = page.out if page is not None and page.out.is_file() else None
    return result


def _study(spec: StudySpec, base: Any, trials: list[Trial], exp_dir: Path, start: float, *,
           resume: bool, address: str | None, log_wandb: bool, verbose: int,
           **search_kwargs: Any) -> StudyResult:
    """The body of :func:`run_study`: train, fit, write the outputs, log them."""
    search_rows, n_run = run_trials(
        spec, base, trials, exp_dir, resume=resume, address=address, verbose=verbose,
        **search_kwargs,
    )
    rows = []
    for trial, sr in zip(trials, search_rows):
        sr = sr or {}
        rows += rows_from_run(trial, sr.get("run_dir"), sr.get("status"))
    fits, errors = fit_families(spec, rows)
    result = StudyResult(exp_dir, rows, fits, errors, n_run)
    result.plots = write_plots(spec, base, result)
    result.wall_time_s = time.perf_counter() - start
    write_outputs(spec, base, result)
    if log_wandb:
        log_study(spec, base, result)
    print(summary(spec, result))
    return result


def write_plots(spec: StudySpec, base: Any, result: StudyResult) -> dict[str, Path]:
    """Save one log-log plot per size axis; returns ``{axis: path}``."""
    from kanplatform.scaling.plot import scaling_figure

    plots = {}
    for axis in spec.x:
        theory = {f: theory_alpha(spec, base, f) for f in spec.families}
        fig = scaling_figure(result.rows, {f: v[axis] for f, v in result.fits.items()
                                           if axis in v}, x=axis, y=spec.metric,
                             theory=theory, title=f"{spec.name}: {spec.metric} vs {axis}")
        path = result.exp_dir / PLOTS[axis]
        fig.savefig(path, format="png")
        plots[axis] = path
    return plots


def scaling_summary(spec: StudySpec, base: Any, result: StudyResult) -> dict[str, Any]:
    """The ``scaling.json`` document."""
    families = {}
    for name, fam in spec.families.items():
        families[name] = {
            "kind": fam.kind,
            "fit_settings": dataclasses.asdict(spec.fit_for(name)),
            "sizes_from": fam.sizes_from,
            "theory_alpha": theory_alpha(spec, base, name),
            "fits": {a: f.to_dict() for a, f in result.fits.get(name, {}).items()},
            "errors": result.errors.get(name, {}),
        }
    return {
        "name": spec.name,
        "metric": spec.metric,
        "x": list(spec.x),
        "families": families,
        "rows": result.rows,
        "table": TABLE_CSV,
        "plots": {a: p.name for a, p in result.plots.items()},
        "trials_run": result.trials_run,
        "wall_time_s": result.wall_time_s,
        "study": spec.to_dict(),
    }


def write_outputs(spec: StudySpec, base: Any, result: StudyResult) -> None:
    """Write ``scaling.csv`` and ``scaling.json`` into the experiment directory."""
    write_table(result.exp_dir / TABLE_CSV, result.rows, _used_by_row(spec, result.rows,
                                                                      result.fits))
    doc = scaling_summary(spec, base, result)
    (result.exp_dir / SCALING_JSON).write_text(json.dumps(doc, indent=2, default=_json))


def _json(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


def log_study(spec: StudySpec, base: Any, result: StudyResult) -> None:
    """Log the study to W&B: plots (image + line plot), the table, alpha per family."""
    from kanplatform.config import to_dict
    from kanplatform.tracking import finish, init_run, log_scaling

    base_dict = to_dict(base)
    # the W&B config of the study run: the study itself and the base run config
    cfg = {
        "name": spec.name,
        "tracking": {**base_dict["tracking"], "group": base_dict["tracking"].get("group")
                     or spec.name},
        "study": spec.to_dict(),
        "base": base_dict,
    }
    mode = None if spec.wandb == "auto" else spec.wandb
    run = init_run(cfg, result.exp_dir, mode=mode)
    if run is None:
        return
    try:
        import wandb

        for axis in spec.x:
            fits = {f: v[axis] for f, v in result.fits.items() if axis in v}
            # the figure write_plots saved is the image: drawing it again costs seconds
            log_scaling(run, result.rows, fits, x=axis, y=spec.metric, series="family",
                        image=result.plots[axis])
            run.log({f"scaling/{axis}_annotated": wandb.Image(str(result.plots[axis]))})
        cols = [*COLUMNS]
        table = wandb.Table(columns=cols, data=[[r.get(c) for c in cols] for r in result.rows])
        summary_keys = {"scaling/table": table}
        for fam, per_axis in result.fits.items():
            for axis, fit in per_axis.items():
                summary_keys[f"scaling/{fam}/{axis}/alpha"] = fit.alpha
                summary_keys[f"scaling/{fam}/{axis}/alpha_lo"] = fit.alpha_ci[0]
                summary_keys[f"scaling/{fam}/{axis}/alpha_hi"] = fit.alpha_ci[1]
        run.log(summary_keys)
        for key, value in summary_keys.items():
            if key != "scaling/table":
                run.summary[key] = value
    finally:
        finish(None)


def summary(spec: StudySpec, result: StudyResult) -> str:
    """Human-readable result: one line per family and axis."""
    lines = [f"scaling study {spec.name}: {len(result.rows)} points, "
             f"{result.trials_run} trainings run, {result.wall_time_s:.0f} s"]
    for fam in spec.families:
        for axis in spec.x:
            fit = result.fits.get(fam, {}).get(axis)
            if fit is None:
                lines.append(f"  {fam:8s} vs {axis}: no fit ({result.errors[fam][axis]})")
            else:
                lines.append(f"  {fam:8s} vs {axis}: {fit}")
    lines.append(f"  table: {result.exp_dir / TABLE_CSV}")
    lines += [f"  plot:  {p}" for p in result.plots.values()]
    lines.append(f"  json:  {result.exp_dir / SCALING_JSON}")
    return "\n".join(lines)
