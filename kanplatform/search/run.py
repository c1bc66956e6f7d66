"""Run a search: build the Tuner from a :class:`SearchSpec`, run or resume it, write results.

``run_search`` is the one entry point (the CLI and the scaling study call it)::

    from kanplatform.config import load_config
    from kanplatform.search import load_search, run_search

    cfg = load_config("configs/experiment/kan_toy.yaml")
    result = run_search(cfg, load_search("configs/search/asha_kan.yaml"))
    result.trials        # one dict per trial: config keys, metric, status, run_dir, ...
    result.best_config   # path of best_config.yaml (`kanplatform train` accepts it)

``run_configs`` runs an explicit list of override dicts (one trial each), e.g. a size sweep.

A random or grid search draws its whole trial list first (:mod:`kanplatform.search.plan`)
and records it in ``search.json``; trial ``i`` runs in ``runs/trial-<i>``. ``resume=True``
reads that list and the run directories -- never Tune's experiment state, which a killed
driver may have left missing, partial or older than the trials -- and runs, as a new Tune
experiment ``resume-<n>`` inside the experiment directory, exactly the trials with no ended
run, each continuing in its own directory from its last checkpoint. So every sampled trial
appears once, in one directory. An Optuna search (which chooses each trial from the earlier
ones) resumes with ``Tuner.restore`` and is refused when Tune's state was never written.
The tables are read from the run directories (:mod:`kanplatform.search.records`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kanplatform.search.plan import (
    SEARCH_JSON,
    Plan,
    holds_search,
    make_plan,
    run_dir_of,
    run_dirs_of,
)
from kanplatform.search.records import listed_rows, rank, read_metrics, row_from_run
from kanplatform.search.resources import TrialPlacement, concurrent_trials, placement_wait
from kanplatform.search.sampling import CONFIG_INDEX_KEY, run_key, trial_key
from kanplatform.search.spec import (
    SearchSpec,
    SearchSpecError,
    check_against_config,
    default_concurrency,
    to_tune_space,
)
from kanplatform.search.storage import (
    ExperimentStore,
    check_shared,
    copy_file,
    experiment_store,
    is_uri,
    join,
    newest_experiment,
)
from kanplatform.search.watch import only_our_loggers, tune_loggers, watch_search

TRIALS_CSV = "trials.csv"
TRIALS_JSON = "trials.json"
BEST_CONFIG = "best_config.yaml"
STATUS_KEY = "trial/status"  # what a trial reports: running | completed | ... (trainable's)


class SearchInterrupted(KeyboardInterrupt):
    """The search's driver was stopped (Ctrl-C) before every trial ended. Tune itself stops
    gracefully and returns; this is raised after the tables are written (the ended trials, and
    the rest marked ``interrupted``) so that nothing built on the search -- a scaling study, a
    compare study, the CLI -- carries on as if it had finished. ``--resume`` runs the rest."""


@dataclass
class SearchResult:
    """The outcome of a search.

    Attributes:
        experiment_dir: where Tune's state, the run directories and the tables live.
        trials: one dict per trial (``trial_id``, ``status``, ``reason``, the searched keys,
            the metric, ``grid/stage``, ``grid/size``, ``retries``, ``run_dir``), sorted best
            first among completed trials.
        metric / mode: what was optimised.
        best: the best completed trial's row, or None when none completed.
        best_config: path of ``best_config.yaml``, or None.
        wall_time_s: seconds from Tuner start to the end of ``fit``.
        report: the sweep page ``report.html`` (live while the search ran), or None.
        wandb_dir: the experiment's own W&B run directory, or None (tracking disabled).
        dashboard_url: Ray's dashboard, when one was started or the cluster has one.
        dashboard_local: the dashboard was the local Ray's (it stopped with the search).
    """

    experiment_dir: Path
    trials: list[dict[str, Any]]
    metric: str
    mode: str
    best: dict[str, Any] | None
    best_config: Path | None
    wall_time_s: float
    report: Path | None = None
    wandb_dir: Path | None = None
    dashboard_url: str | None = None
    dashboard_local: bool = False

    def dataframe(self) -> Any:
        """The trials table as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.trials)


def _experiment_name(spec: SearchSpec, storage: str | Path, name: str | None,
                     resume: bool) -> str:
    if name:
        return name
    if resume:
        newest = newest_experiment(storage, f"{spec.name}-")
        if newest is None:
            raise SearchSpecError(
                f"--resume: no interrupted search named {spec.name}-* under {storage}"
            )
        return newest
    return f"{spec.name}-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}"


def _scheduler(spec: SearchSpec, max_t: int | None, store: ExperimentStore) -> Any:
    if spec.scheduler.kind == "fifo":
        return None
    from kanplatform.search.stops import RecordedASHA

    s = spec.scheduler
    return RecordedASHA(
        str(store.local), STATUS_KEY, store.uri,
        time_attr=spec.time_attr(),
        max_t=s.max_t or max_t or 100,
        grace_period=s.grace_period,
        reduction_factor=s.reduction_factor,
        brackets=s.brackets,
    )


def _search_alg(spec: SearchSpec, concurrency: int | None) -> Any:
    """The search algorithm, holding the concurrency cap itself: Tune's own
    ``max_concurrent_trials`` is ignored (with a warning) for a searcher it did not wrap."""
    if spec.search_alg != "optuna":
        from ray.tune.search.basic_variant import BasicVariantGenerator

        # the trials are listed already (one grid over their indices): no sampling here
        return BasicVariantGenerator(max_concurrent=concurrency or 0)
    try:
        from ray.tune.search import ConcurrencyLimiter
        from ray.tune.search.optuna import OptunaSearch
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise SearchSpecError(
            f"search_alg: optuna needs `pip install optuna` ({err})"
        ) from None
    alg = OptunaSearch(seed=spec.seed)
    return ConcurrencyLimiter(alg, max_concurrent=concurrency) if concurrency else alg


def _check_optuna(configs: Sequence[Mapping[str, Any]] | None) -> None:
    """What Ray's OptunaSearch would only report once Ray is up."""
    import importlib.util

    if configs is not None:
        raise SearchSpecError("search_alg: optuna samples the space itself and cannot run a "
                              "fixed list of configs; use search_alg: random")
    if importlib.util.find_spec("optuna") is None:
        raise SearchSpecError("search_alg: optuna needs the optuna package: "
                              "pip install 'kanplatform[optuna]'")


def _stage_count(cfg: Any, spec: SearchSpec) -> int:
    """Most grid stages a trial can walk (ASHA's default ``max_t`` in ``grid/stage``)."""
    from kanplatform.search.spec import domain_values

    schedules = [list(cfg.grid.schedule or [])]
    if "grid.schedule" in spec.space:
        schedules = [list(v or []) for v in domain_values(spec.space["grid.schedule"])]
    return max(1, *(len(s) for s in schedules))


def run_search(
    base_cfg: Any,
    spec: SearchSpec,
    *,
    address: str | None = None,
    resume: bool = False,
    storage_path: str | Path | None = None,
    name: str | None = None,
    configs: Sequence[Mapping[str, Any]] | None = None,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    verbose: int = 1,
    ray_init_kwargs: Mapping[str, Any] | None = None,
    autoscaling: bool = False,
    dashboard: bool = False,
    watch: bool = True,
    run_dirs: Sequence[str | None] | None = None,
) -> SearchResult:
    """Run (or resume) a Ray Tune search whose trials are ``kanplatform train`` runs.

    Every check that can fail (space keys against the config schema, the metric, the
    resources against the cluster, the address) runs before any trial starts.

    Args:
        base_cfg: the resolved run config (``load_config(...)``); trials apply their sampled
            keys to it with ``apply_overrides``.
        spec: the search (``load_search(...)``).
        address: an existing cluster's head ``HOST:PORT``; None starts a local Ray.
        resume: continue the interrupted search ``name`` (default: the newest
            ``<spec.name>-*`` under the storage path) with ``Tuner.restore``.
        storage_path: where experiment directories go: on a cluster of several nodes a
            path every node mounts (checked: node-local paths are refused and the path is
            probed from every node) or a URI Ray Tune writes through pyarrow (``s3://``,
            ``gs://``, ``file:///...``; the tables are then mirrored under
            ``<cfg.output_dir>/tune``); default ``spec.storage_path`` or
            ``<cfg.output_dir>/tune``.
        name: experiment directory name (default ``<spec.name>-<UTC timestamp>``).
        configs: run exactly these override dicts, one trial each (``spec.space`` may then
            be empty; its constant keys still apply to every trial).
        num_cpus / num_gpus: size of a local Ray (default: this machine).
        verbose: Tune's console verbosity (0-3).
        ray_init_kwargs: extra ``ray.init`` arguments.
        autoscaling: the cluster at ``address`` adds nodes on demand: a trial larger than
            its current nodes waits (``resources.placement_timeout_s``) instead of failing.
        dashboard: start Ray's dashboard with a local Ray (on 127.0.0.1; its URL is printed).
        watch: while it runs, ``EXPERIMENT/report.html`` is rewritten every few seconds
            (running trials with their latest metrics; the path is printed at the start)
            and the experiment's own W&B run logs its progress, then the trials table (see
            :mod:`kanplatform.search.watch`). False: neither (a study reports for itself).
        run_dirs: with ``configs``, the run directory of each (None: ``runs/trial-<i>``),
            e.g. a study's interrupted run that its trial continues.

    Returns:
        The :class:`SearchResult`; the tables and ``best_config.yaml`` are also written to
        the experiment directory.

    Raises:
        SearchSpecError: a bad search, found before Ray starts (or right after connecting,
            for resources of a remote cluster).
    """
    from kanplatform.search.ray_cluster import connect

    check_against_config(spec, base_cfg)
    if spec.search_alg == "optuna":
        _check_optuna(configs)
    if configs is not None:
        configs = [dict(c) for c in configs]
        if not configs:
            raise SearchSpecError("configs: need at least one override dict")
        probe = replace(spec, space={k: {"choice": [c[k] for c in configs if k in c]}
                                     for c in configs for k in c})
        check_against_config(probe, base_cfg)
    storage = storage_path or spec.storage_path or Path(base_cfg.output_dir) / "tune"
    exp_name = _experiment_name(spec, storage, name, resume)
    store = experiment_store(storage, exp_name, Path(base_cfg.output_dir) / "tune")
    if not resume and holds_search(store):
        raise SearchSpecError(
            f"{store.where} already holds a search; pass --resume to continue it "
            "or choose another name"
        )
    if resume and not holds_search(store):
        raise SearchSpecError(f"--resume: no search to resume at {store.where}")
    plan = make_plan(spec, base_cfg, store, configs, resume, run_dirs)  # before Ray starts

    with watch_search(store.local, spec, plan.base, enabled=watch) as watching:
        conn = connect(spec, address, num_cpus=num_cpus, num_gpus=num_gpus,
                       init_kwargs=ray_init_kwargs, autoscaling=autoscaling,
                       dashboard=dashboard)
        try:
            if store.uri is None:  # several nodes: prove they all see the path
                check_shared(store.local.parent)
            watching.begin()
            result = _run(base_cfg, spec, store, plan, conn, verbose=verbose)
        finally:
            conn.shutdown()
    return watching.annotate(result, conn)


def _run(base_cfg: Any, spec: SearchSpec, store: ExperimentStore, plan: Plan, conn: Any, *,
         verbose: int) -> SearchResult:
    from ray import tune

    # imported only once the search is known to fit the cluster, so a refused search fails
    # in the time torch and the config take to load; Lightning comes only with the trial
    # processes (kanplatform.search.reporter), never in this driver
    from kanplatform.search.trainable import TrialSetup, make_trainable

    experiment_dir = store.local
    experiment_dir.mkdir(parents=True, exist_ok=True)
    if plan.record is not None:
        tmp = experiment_dir / f".{SEARCH_JSON}.tmp"
        tmp.write_text(json.dumps(plan.record, indent=2, default=str))
        tmp.replace(experiment_dir / SEARCH_JSON)  # the list is recorded whole or not at all
        store.publish(SEARCH_JSON)
    concurrency = default_concurrency(spec, conn.resources, conn.nodes)
    setup = TrialSetup(
        base_config=plan.base,
        experiment_dir=str(experiment_dir),
        experiment_name=experiment_dir.name,
        metric=spec.metric,
        mode=spec.mode,
        report_on=spec.report_on,
        resources=spec.to_dict()["resources"],
        configs=plan.configs,
        run_dirs=plan.run_dirs,
        results_uri=store.uri,
    )
    trainable = make_trainable(setup)
    watch, stop = placement_wait(spec.resources.placement_timeout_s,
                                 TrialPlacement.of(spec.resources))
    start = time.perf_counter()
    facts: dict[str, dict[str, Any]] = {}
    if plan.configs is not None and not plan.todo:
        print(f"resume: all {len(plan.configs)} trials of {store.where} have ended; "
              "nothing to run")
    elif plan.configs is not None:
        if plan.tune_name != experiment_dir.name:
            print(f"resume: {len(plan.configs) - len(plan.todo)} of {len(plan.configs)} trials "
                  f"have ended; running {len(plan.todo)} ({plan.tune_name})")
        groups = _stacks(spec, setup, plan.todo,
                         concurrency or concurrent_trials(spec.resources, conn.resources,
                                                          conn.nodes))
        setup.stacks = {g[0]: g for g in groups if len(g) > 1}
        if setup.stacks:
            stacked = sum(len(g) for g in setup.stacks.values())
            print(f"stacks: {stacked} of {len(plan.todo)} trainings run as {len(setup.stacks)} "
                  "stacked trials (Adam/AdamW runs differing only in seed or learning rate; "
                  "stack_runs: false runs each alone)")
            trainable = make_trainable(setup)
        space = {CONFIG_INDEX_KEY: tune.grid_search([g[0] for g in groups])}
        tuner = _tuner(spec, base_cfg, trainable, space, store, plan, concurrency, verbose,
                       watch, stop)
        with only_our_loggers():
            facts = _facts(tuner.fit())
        for leader, members in setup.stacks.items():  # what Tune knows of a stack's trial
            for m in members[1:]:
                facts.setdefault(trial_key(m), dict(facts.get(trial_key(leader), {})))
    else:
        space = to_tune_space(spec)
        if plan.tune_restore:
            tuner = tune.Tuner.restore(store.uri or str(experiment_dir), trainable,
                                       resume_errored=True, param_space=space)
        else:
            tuner = _tuner(spec, base_cfg, trainable, space, store, plan, concurrency, verbose,
                           watch, stop)
        with only_our_loggers():
            grid = tuner.fit()
    wall = time.perf_counter() - start
    if plan.configs is not None:
        trials = rank(listed_rows(plan.configs, run_dirs_of(store, plan.run_dirs), spec,
                                  facts), spec)
    else:
        trials = trials_table(grid, spec, store)
    for row in trials:
        if watch.state.message and row["status"] == "interrupted" and row.get("grid/stage") \
                is None:  # never placed: the cluster could not hold it in time
            row.update(status="failed", reason=watch.state.message)
    result = _write_results(experiment_dir, trials, spec, wall)
    store.publish(SEARCH_JSON, TRIALS_JSON, TRIALS_CSV, BEST_CONFIG)
    print(format_table(result.trials, spec))
    if store.uri:
        print(f"experiment: {experiment_dir} (results: {store.uri})")
    if watch.state.message:
        raise SearchSpecError(f"{watch.state.message} (tables so far: {experiment_dir})")
    cut = [r for r in trials if r["status"] == "interrupted"]
    if cut:
        raise SearchInterrupted(
            f"interrupted: {len(cut)} of {len(trials)} trials did not end (tables so far: "
            f"{experiment_dir}); the same command with --resume runs them")
    return result


def _stacks(spec: SearchSpec, setup: Any, todo: list[int], slots: int) -> list[list[int]]:
    """The listed trials as Tune's trials: stacks of runs that train as one
    (:func:`kanplatform.search.trainable.stack_groups`) where the search lets them: FIFO (a
    scheduler stops trials one by one), one process per trial, ``stack_runs`` on. Fewer
    stacks than the trials the cluster runs at once (``slots``) are split in halves until
    every slot has one where they can: a stack trains its runs on one slot."""
    if not spec.stack_runs or spec.scheduler.kind != "fifo" or spec.resources.workers > 1 \
            or len(todo) < 2 or not _any_adam(setup):
        return [[i] for i in todo]
    from kanplatform.search.trainable import stack_groups

    groups = stack_groups(setup, todo)
    while len(groups) < slots:
        big = max(groups, key=len)
        if len(big) < 2:
            break
        groups.remove(big)
        half = (len(big) + 1) // 2
        groups += [big[:half], big[half:]]
    return sorted(groups, key=lambda g: g[0])


def _any_adam(setup: Any) -> bool:
    """Whether any listed trial trains with Adam/AdamW (else no config needs resolving)."""
    names = {(setup.base_config.get("optim") or {}).get("name")}
    for config in setup.configs or []:
        names.add(config.get("optim.name", (config.get("optim") or {}).get("name")))
    return bool(names & {"adam", "adamw"})


def _tuner(spec: SearchSpec, base_cfg: Any, trainable: Any, space: dict[str, Any],
           store: ExperimentStore, plan: Plan, concurrency: int | None, verbose: int,
           watch: Any, stop: Any) -> Any:
    from ray import tune

    listed = plan.configs is not None
    first = plan.tune_name == store.name  # a resume is its own experiment inside this one
    root = store.tune_root if first else (store.uri or str(store.local))
    search_alg = _search_alg(spec, concurrency)
    return tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(
            metric=spec.metric,
            mode=spec.mode,
            scheduler=_scheduler(spec, _stage_count(base_cfg, spec), store),
            search_alg=search_alg,
            num_samples=1 if listed else spec.num_samples,  # listed: samples drawn already
            # a search algorithm built here carries the limit itself: Tune warns that
            # `max_concurrent_trials` "will be ignored" when given both
            max_concurrent_trials=concurrency if search_alg is None else None,
            reuse_actors=spec.reuse_actors,
        ),
        run_config=tune.RunConfig(
            name=plan.tune_name,
            storage_path=root,
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=spec.keep_checkpoints),
            verbose=verbose,
            callbacks=[watch, *tune_loggers()],
            stop=stop,
        ),
    )


def join_run(run_dir: str, name: str) -> str:
    """A file of a run directory named by a path or a URI."""
    return join(run_dir, name) if is_uri(run_dir) else str(Path(run_dir) / name)


def _error_reason(error: BaseException) -> str:
    """The last line of a trial's error (the exception itself, not Ray's wrapper text)."""
    lines = [ln.strip() for ln in str(error).strip().splitlines() if ln.strip()]
    return lines[-1] if lines else type(error).__name__


FACTS = ("trainer/workers", "trainer/backend")  # what only Tune's results know of a trial


def _facts(grid: Any) -> dict[str, dict[str, Any]]:
    """``{trial key: {"error": ..., "trainer/workers": ...}}`` from Tune's results."""
    out = {}
    for res in grid:
        m = dict(res.metrics or {})
        fact = {k: m[k] for k in FACTS if k in m}
        if res.error is not None:
            fact["error"] = _error_reason(res.error)
        out[run_key(res.config or {}, m.get("trial_id") or Path(res.path).name)] = fact
    return out


def trials_table(grid: Any, spec: SearchSpec, store: ExperimentStore) -> list[dict[str, Any]]:
    """One row per trial of a Tune ``ResultGrid`` (an Optuna search), from its run directory."""
    rows = []
    for res in grid:
        m = dict(res.metrics or {})
        trial_id = m.get("trial_id") or Path(res.path).name
        run_dir = m.get("trial/run_dir") or str(run_dir_of(store, trial_id))
        fact = {k: m[k] for k in FACTS if k in m}
        if res.error is not None:
            fact["error"] = _error_reason(res.error)
        elif read_metrics(run_dir) is None and m:
            fact["error"] = "its process ended without writing metrics.json"
        rows.append(row_from_run(trial_id, dict(res.config or {}), run_dir, spec, fact))
    return rank(rows, spec)


def _write_results(experiment_dir: Path, trials: list[dict[str, Any]], spec: SearchSpec,
                   wall: float) -> SearchResult:
    import csv

    (experiment_dir / TRIALS_JSON).write_text(json.dumps(trials, indent=2, default=str))
    columns: list[str] = []
    for row in trials:
        columns += [k for k in row if k not in columns]
    with open(experiment_dir / TRIALS_CSV, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in trials:
            writer.writerow({k: json.dumps(v) if isinstance(v, list | dict) else v
                             for k, v in row.items()})
    best = next((r for r in trials if r["status"] == "completed"
                 and r.get(spec.metric) is not None), None)
    best_path = None
    if best and best.get("run_dir") and copy_file(join_run(best["run_dir"], "config.yaml"),
                                                  experiment_dir / BEST_CONFIG):
        best_path = experiment_dir / BEST_CONFIG
    return SearchResult(experiment_dir, trials, spec.metric, spec.mode, best, best_path, wall)


def format_table(trials: list[dict[str, Any]], spec: SearchSpec) -> str:
    """The trials table as aligned text (best first)."""
    if not trials:
        return "(no trials)"
    skip = {"run_dir", "reason", "training_iteration"}
    cols: list[str] = []
    for row in trials:
        cols += [k for k in row if k not in cols and k not in skip]

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return "" if v is None else str(v)

    cells = [[fmt(r.get(c)) for c in cols] for r in trials]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    reasons = [f"  {r['trial_id']}: {r['reason']}" for r in trials
               if r.get("reason") and r["status"] not in ("completed",)]
    if reasons:
        lines += ["reasons:", *reasons]
    return "\n".join(lines)


def run_configs(
    base_cfg: Any,
    configs: Sequence[Mapping[str, Any]],
    *,
    metric: str = "val/rmse",
    mode: str = "min",
    name: str = "configs",
    resources: Mapping[str, Any] | None = None,
    max_concurrent_trials: int | None = None,
    max_failures: int = 2,
    stack_runs: bool = True,
    **kwargs: Any,
) -> SearchResult:
    """Run exactly one trial per override dict (FIFO), e.g. the points of a size sweep.

    Args:
        base_cfg: the resolved run config.
        configs: ``[{"model.width": [2, 5, 1]}, ...]``, applied with ``apply_overrides``.
        metric / mode: used to rank the table and choose ``best_config.yaml``.
        resources: ``{"cpu": 1, "gpu": 0, "workers": 1}`` per trial.
        stack_runs: Adam/AdamW configs differing only in seed or learning rate train as one
            stack per Tune trial (:mod:`kanplatform.train.stacked`; the same results).
        **kwargs: passed to :func:`run_search` (``address``, ``storage_path``, ``resume``...);
            ``watch`` defaults to False: the study running these configs has its own
            report and W&B run.

    Returns:
        The :class:`SearchResult`; each row carries its override keys.
    """
    kwargs.setdefault("watch", False)
    from kanplatform.search.spec import ResourceSpec

    spec = SearchSpec(space={}, metric=metric, mode=mode, name=name,
                      resources=ResourceSpec(**dict(resources or {})),
                      max_concurrent_trials=max_concurrent_trials, max_failures=max_failures,
                      stack_runs=stack_runs)
    return run_search(base_cfg, spec, configs=configs, **kwargs)
