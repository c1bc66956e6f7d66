"""Run a compare study: plan, tune, train every seed through Ray Tune, analyse, write.

``run_compare`` is the one entry point (``kanplatform compare`` calls it)::

    from kanplatform.compare import load_compare, run_compare
    result = run_compare(load_compare("configs/compare/demo.yaml"))
    result.summary["exp_sin_sq"]     # ["kan vs mlp: kan better at 2 of 3 budgets ..."]
    result.json_path                 # compare.json: rows, verdicts, n_eps, extrapolation

The experiment directory::

    EXP_DIR/                    <output_dir>/<name>
      study.yaml                the study as run (overrides applied)
      trials-<UTC time>/        a Ray Tune experiment per phase with work left (tuning,
                                then the seeds); run directories in its runs/
      compare.json              rows, verdicts, summary, n_eps, extrapolation, tuning, runs
      compare.csv               the cells (one row per task, matched_by, budget, arm)
      runs.csv                  every compared training (one row per cell model and seed)
      figures/                  <task>_params.png, <task>_flops.png, <task>_n_eps.png,
                                <task>_ood.png
      report.html               the HTML report, with its compare section
      wandb/                    the study's W&B run: tables and figures (offline by default)

Resume: a training is done when a run directory under ``EXP_DIR`` holds its config and a
finished ``metrics.json`` (the mechanism of ``kanplatform scale``); ``resume=True`` trains
only what is not done, and a study with nothing left starts no Ray at all.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kanplatform.compare.plan import Plan, plan_study
from kanplatform.compare.spec import AXIS_KEYS, CompareError, CompareSpec
from kanplatform.compare.stats import finite_or_none


@dataclass
class CompareResult:
    """What :func:`run_compare` produced (the same as ``compare.json``).

    Attributes:
        exp_dir: the experiment directory.
        rows, verdicts, n_eps, extrapolation: the ``compare.json`` tables.
        summary: ``{task: [one line per arm pair]}``.
        runs: every compared training (task, arm, label, seed, status, value, run_dir...).
        tuning: per tuned model, its trials and the chosen values.
        trainings_run: trainings this call ran (0 when everything was done).
        wall_time_s: seconds for the whole call.
        plots: ``{name: path}`` of the figures.
        json_path, report: ``compare.json`` and ``report.html`` (None if not written).
    """

    exp_dir: Path
    rows: list[dict[str, Any]]
    verdicts: list[dict[str, Any]]
    summary: dict[str, list[str]]
    n_eps: list[dict[str, Any]]
    extrapolation: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    tuning: list[dict[str, Any]]
    trainings_run: int = 0
    wall_time_s: float = 0.0
    plots: dict[str, Path] = field(default_factory=dict)
    json_path: Path | None = None
    report: Path | None = None

    @property
    def missing(self) -> list[dict[str, Any]]:
        """Compared trainings without a finite result (failed, or not run)."""
        return [r for r in self.runs if finite_or_none(r.get("value")) is None]


def experiment_dir(spec: CompareSpec, output_dir: str | Path | None = None) -> Path:
    """``<output_dir>/<name>``, absolute (Tune moves trials' working directories).

    Raises:
        CompareError: a URI: the study writes files (on a cluster: a shared-filesystem path).
    """
    root = str(output_dir or spec.output_dir)
    if "://" in root:
        raise CompareError(f"--output-dir {root}: a compare study writes files; give a path "
                           "on the cluster's shared filesystem (URIs are storage for `tune`)")
    return (Path(root) / spec.name).expanduser().resolve()


class _Ray:
    """One Ray connection for both phases, made only when a phase has work left."""

    def __init__(self, spec: CompareSpec, address: str | None, **kwargs: Any) -> None:
        self.spec, self.address, self.kwargs, self.conn = spec, address, kwargs, None

    def ensure(self) -> None:
        if self.conn is not None:
            return
        from kanplatform.search.ray_cluster import connect
        from kanplatform.search.spec import ResourceSpec, SearchSpec

        search = SearchSpec(space={}, resources=ResourceSpec(**self.spec.resources))
        self.conn = connect(search, self.address, num_cpus=self.kwargs.get("num_cpus"),
                            num_gpus=self.kwargs.get("num_gpus"),
                            init_kwargs=self.kwargs.get("ray_init_kwargs"))

    def close(self) -> None:
        if self.conn is not None:
            self.conn.shutdown()


def _train(plan: Plan, trials: Sequence[Any], exp_dir: Path, *, resume: bool, ray: _Ray,
           verbose: int, phase: str) -> tuple[list[dict[str, Any]], int]:
    """Train the trials not finished yet (``kanplatform scale``'s runner and resume)."""
    from kanplatform.scaling.spec import StudyError
    from kanplatform.scaling.study import finished_runs, run_trials

    if not trials:
        return [], 0
    done = finished_runs(trials, exp_dir)
    if done and not resume:
        raise CompareError(f"{exp_dir} already holds {len(done)} finished {phase} run(s) of "
                           "this study; pass --resume to complete it, or set name=... / "
                           "--output-dir for a new one")
    if len(done) < len(trials):
        ray.ensure()
    print(f"{phase}: {len(trials)} trainings ({len(done)} already finished)", flush=True)
    try:
        return run_trials(plan.spec, plan.base, trials, exp_dir, resume=resume,
                          address=ray.address, verbose=verbose)
    except StudyError as err:
        raise CompareError(str(err)) from None


def _metrics(run_dir: str | None) -> dict[str, Any]:
    if not run_dir:
        return {}
    try:
        return json.loads((Path(run_dir) / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}


def _values(plan: Plan, trial: Any) -> dict[str, Any]:
    """The tuned keys' values of one training."""
    task, arm = trial.family.split("/")
    return {k: trial.overrides.get(k) for k in plan.defaults[(task, arm)]}


def select_best(plan: Plan, trials: Sequence[Any], rows: Sequence[Mapping[str, Any]]
                ) -> tuple[dict[tuple[str, str, str], dict[str, Any]], list[dict[str, Any]]]:
    """Pick each model's best tuning trial on the tuning metric (validation, not test).

    Only completed trials with a finite metric compete; a model with none keeps the arm's
    untuned values, and its entry says so.

    Returns:
        ``(best, table)``: ``{size_key: values}`` and one entry per tuned model.
    """
    by_key: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for trial, row in zip(trials, rows):
        task, arm = trial.family.split("/")
        label = trial.label.rsplit("-t", 1)[0]
        metric, mode = plan.spec.tuning_metric(task)
        m = _metrics(row.get("run_dir"))
        value = (m.get("final") or {}).get(metric) if m.get("status") == "completed" else None
        by_key.setdefault((task, arm, label), []).append({
            "values": _values(plan, trial), "metric": metric, "mode": mode,
            "value": finite_or_none(value), "status": m.get("status") or row.get("status"),
            "run_dir": row.get("run_dir")})
    best, table = {}, []
    for key, entries in by_key.items():
        ok = [e for e in entries if e["value"] is not None]
        sign = 1 if entries[0]["mode"] == "min" else -1
        chosen = min(ok, key=lambda e: sign * e["value"]) if ok else None
        best[key] = chosen["values"] if chosen else dict(plan.defaults[key[:2]])
        table.append({"task": key[0], "arm": key[1], "label": key[2],
                      "metric": entries[0]["metric"], "trials": entries, "best": best[key],
                      "best_value": chosen["value"] if chosen else None,
                      "reason": None if chosen else "no tuning trial completed: untuned values"})
    return best, table


def run_rows(plan: Plan, trials: Sequence[Any], rows: Sequence[Mapping[str, Any]]
             ) -> list[dict[str, Any]]:
    """One dict per compared training, read from its run directory's ``metrics.json``."""
    out = []
    for trial, row in zip(trials, rows):
        task, arm = trial.family.split("/")
        metric, mode = plan.tasks[task].metric, plan.tasks[task].mode
        m = _metrics(row.get("run_dir"))
        final = m.get("final") or {}
        status = m.get("status") or row.get("status") or "not_run"
        value = final.get(metric)
        if status == "diverged":  # a diverged run's last value says nothing about the model
            value = math.nan
        out.append({
            "task": task, "arm": arm, "label": trial.label, "seed": trial.seed,
            "status": status, "reason": m.get("reason"), "metric": metric, "mode": mode,
            "value": finite_or_none(value),
            "train": finite_or_none(final.get("train/" + metric.split("/", 1)[1])),
            "test/rmse": finite_or_none(final.get("test/rmse")),
            "ood/rmse": finite_or_none(final.get("ood/rmse")),
            **{k: m.get(k) for k in AXIS_KEYS.values()},
            "tuned": _values(plan, trial), "run_dir": row.get("run_dir"), "key": trial.key,
        })
    return out


def run_compare(
    spec: CompareSpec,
    *,
    resume: bool = False,
    address: str | None = None,
    output_dir: str | Path | None = None,
    log_wandb: bool = True,
    report: bool = True,
    verbose: int = 1,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    ray_init_kwargs: Mapping[str, Any] | None = None,
) -> CompareResult:
    """Run a compare study end to end and write its outputs (see the module docstring).

    Args:
        spec: the study (:func:`kanplatform.compare.load_compare`).
        resume: continue a study in its experiment directory; finished trainings are not
            run again (with nothing left, Ray is not started).
        address: a Ray cluster's head ``HOST:PORT``; None starts a local Ray on 127.0.0.1.
        output_dir: overrides ``spec.output_dir``.
        log_wandb: log the tables and figures to one W&B run of the study.
        report: write ``report.html``: live while the study trains (its path printed
            first), final at the end.
        verbose: Tune console verbosity.
        num_cpus, num_gpus, ray_init_kwargs: for a local Ray.

    Returns:
        The :class:`CompareResult`.

    Raises:
        CompareError: a bad study (before Ray starts), or finished runs of it in the
            experiment directory without ``resume``.
    """
    from kanplatform.compare import analysis, outputs

    start = time.perf_counter()
    exp_dir = experiment_dir(spec, output_dir)
    plan = plan_study(spec)
    exp_dir.mkdir(parents=True, exist_ok=True)
    (exp_dir / "study.yaml").write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))
    from kanplatform.tracking.live import live_report

    # the report is live while the study trains; its last write, after the outputs,
    # is the final page
    with live_report(exp_dir) if report else contextlib.nullcontext() as page:
        ray = _Ray(spec, address, num_cpus=num_cpus, num_gpus=num_gpus,
                   ray_init_kwargs=ray_init_kwargs)
        try:
            tune_trials = plan.tuning_trials()
            tune_rows, n_tuned = _train(plan, tune_trials, exp_dir, resume=resume, ray=ray,
                                        verbose=verbose, phase="tuning")
            best, tuning = select_best(plan, tune_trials, tune_rows)
            seed_trials = plan.seed_trials(best)
            seed_rows, n_seeded = _train(plan, seed_trials, exp_dir, resume=resume, ray=ray,
                                         verbose=verbose, phase="seeds")
        finally:
            ray.close()
        runs = run_rows(plan, seed_trials, seed_rows)
        rows = analysis.cell_rows(plan, runs)
        verdicts = analysis.verdict_rows(plan, runs)
        result = CompareResult(
            exp_dir, rows, verdicts, analysis.summaries(plan, verdicts),
            analysis.n_eps_rows(plan, runs, rows), analysis.extrapolation_rows(plan, runs), runs,
            tuning, n_tuned + n_seeded)
        result.plots = outputs.write_figures(plan, result)
        result.wall_time_s = time.perf_counter() - start
        outputs.write_files(plan, result)
        if log_wandb:
            outputs.log_wandb(plan, result)
    if report:
        result.report = page.out if page is not None and page.out.is_file() \
            else outputs.write_html(result)
    print(outputs.summary_text(plan, result), flush=True)
    return result
