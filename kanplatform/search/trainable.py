"""The Tune trial: a ``kanplatform train`` run with the sampled keys applied.

A trial applies its keys with :func:`kanplatform.train.resolve.apply_run_overrides` (the
CLI's override path) and calls :func:`kanplatform.train.fit` with a Lightning callback that
reports to Tune. With ``report_on: stage`` it reports once per grid stage, carrying ``grid/stage``
(stages completed) so ASHA's rungs are grid stages; with ``validation`` it reports after
every validation. Each report carries a checkpoint, from which a failed trial restarts.

A listed trial (``config_index``: every random/grid search, see
:mod:`kanplatform.search.sampling`) writes ``EXPERIMENT/runs/trial-<index>``, whichever Tune
trial or driver runs it: a trial restarted, or resumed by a later ``--resume``, continues
there from its last checkpoint, and one whose run there has ended reports that run instead
of training it again. ``RUN_DIR/trial.json`` counts its starts (``restores`` = starts - 1,
a restart from scratch included). When the scheduler stops it (:mod:`kanplatform.search.stops`)
the trial ends its own run: ``status: stopped`` with the rung, the step and why, its W&B
run finished; a trial Tune itself ends (the driver was stopped) records ``interrupted``.

With ``resources.workers > 1`` the trial runs data-parallel: the Tune function launches a
Ray Train ``TorchTrainer`` whose workers run the same ``fit`` under Lightning DDP
(``RayDDPStrategy``); rank 0's reports reach Tune through Ray Train's ``TuneReportCallback``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kanplatform.search.records import ENDED, TRIAL_FILE
from kanplatform.search.sampling import CONFIG_INDEX_KEY, run_key, trial_key
from kanplatform.search.storage import join, publish_run_dir, trial_run_dir

if TYPE_CHECKING:
    from kanplatform.search.reporter import TuneReporter

STATUS_KEY = "trial/status"
REASON_KEY = "trial/reason"
CKPT_NAME = "trial.ckpt"
STATE_NAME = "trial_state.json"


@dataclass
class TrialSetup:
    """Everything a trial needs besides its sampled keys (picklable, no Ray objects)."""

    base_config: dict[str, Any]
    experiment_dir: str
    experiment_name: str
    metric: str
    mode: str
    report_on: str = "stage"
    resources: dict[str, Any] = field(default_factory=dict)
    configs: list[dict[str, Any]] | None = None
    run_dirs: list[str | None] | None = None
    results_uri: str | None = None  # object storage: run dirs are published there
    # listed trials trained as one stack (kanplatform.train.stacked): first index -> all
    stacks: dict[int, list[int]] = field(default_factory=dict)

    def run_dir(self, config: dict[str, Any], trial_id: str) -> tuple[str, Path, str | None]:
        """``(key, run directory, where it is published)`` of a trial: ``runs/<key>`` (or
        node-local scratch published to ``<uri>/runs/<key>``) unless the caller named one."""
        key = run_key(config, trial_id)
        if self.run_dirs is not None and CONFIG_INDEX_KEY in config:
            given = self.run_dirs[int(config[CONFIG_INDEX_KEY])]
            if given:
                return key, Path(given), None
        run_dir, remote = trial_run_dir(self.experiment_dir, self.results_uri,
                                        self.experiment_name, key)
        return key, run_dir, remote

    def overrides(self, config: dict[str, Any]) -> dict[str, Any]:
        """The dotted-key overrides of one trial (its sampled keys, or its listed config)."""
        config = dict(config)
        out: dict[str, Any] = {}
        if self.configs is not None and CONFIG_INDEX_KEY in config:
            out.update(self.configs[int(config.pop(CONFIG_INDEX_KEY))])
        out.update(config)
        return out

    def worst(self) -> float:
        return math.inf if self.mode == "min" else -math.inf


def build_config(setup: TrialSetup, config: dict[str, Any], trial_id: str) -> Any:
    """The trial's run config: base + sampled keys, through ``apply_run_overrides``."""
    from omegaconf import OmegaConf

    from kanplatform.config import RunConfig, apply_overrides
    from kanplatform.train.resolve import apply_run_overrides

    base = OmegaConf.merge(OmegaConf.structured(RunConfig), setup.base_config)
    OmegaConf.set_struct(base, True)
    overrides = setup.overrides(config)
    cfg = apply_run_overrides(base, overrides, check=True)
    # W&B: one run per trial, grouped by experiment (unless the search sets these keys).
    extra = {}
    if "tracking.group" not in overrides and not cfg.tracking.group:
        extra["tracking.group"] = setup.experiment_name
    if "name" not in overrides:
        extra["name"] = f"{cfg.name}-{trial_id}"
    return apply_overrides(cfg, extra) if extra else cfg


def _finite_or(value: Any, fallback: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return fallback
    return value if math.isfinite(value) else fallback


# -- the Tune function ----------------------------------------------------------------------

def _restore_point(run_dir: Path) -> tuple[Path | None, int, int]:
    """Count this start and find where to continue; return ``(ckpt, stage, restores)``.

    The trial's latest Tune checkpoint (a restart within one driver), else the run's own
    ``checkpoints/last.ckpt`` (a trial resumed by a later driver, or restarted before its
    first report), else none (from scratch; still counted as a restart if it ran before).
    """
    from ray import tune

    trial_file = run_dir / TRIAL_FILE
    try:
        starts = int(json.loads(trial_file.read_text()).get("starts", 0))
    except (OSError, ValueError, AttributeError):
        starts = 0
    restores = starts  # every earlier start of this trial makes this one a restart
    run_dir.mkdir(parents=True, exist_ok=True)
    _note(run_dir, starts=starts + 1, started=time.time(), ended=None, pid=os.getpid())
    checkpoint = tune.get_checkpoint()
    kept = run_dir / "checkpoints" / "tune"  # multi-worker trials keep theirs here
    if checkpoint is None and (kept / CKPT_NAME).is_file():
        checkpoint = tune.Checkpoint.from_directory(str(kept))
    target = run_dir / "checkpoints" / f"restore-{restores}.ckpt"
    if checkpoint is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        with checkpoint.as_directory() as src:
            shutil.copyfile(Path(src, CKPT_NAME), target)
            stage = int(json.loads(Path(src, STATE_NAME).read_text()).get("stage", 0))
        return target, stage, restores
    last = run_dir / "checkpoints" / "last.ckpt"
    if restores and last.is_file():
        shutil.copyfile(last, target)  # fit writes last.ckpt anew as it goes
        return target, 0, restores  # the reporter finds the stages done in the checkpoint
    return None, 0, restores


def _note(run_dir: Path, **fields: Any) -> None:
    """Merge ``fields`` into ``RUN_DIR/trial.json`` (starts, when it ran, which process)."""
    path = run_dir / TRIAL_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    data.update(fields)
    tmp = path.with_name(f".{TRIAL_FILE}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _recorded_result(setup: TrialSetup, run_dir: Path, restores: int) -> dict[str, Any] | None:
    """What a run that already ended in ``run_dir`` reports, instead of training again."""
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    if metrics.get("status") not in ENDED:
        return None
    final = dict(metrics.get("final") or {})
    stages = metrics.get("stages") or []
    out = {**final, "grid/stage": len(stages), STATUS_KEY: metrics["status"],
           "trial/restores": restores, "trial/run_dir": str(run_dir)}
    if stages and stages[-1].get("grid_size") is not None:
        out["grid/size"] = stages[-1]["grid_size"]
    out[setup.metric] = _finite_or(final.get(setup.metric), setup.worst())
    if metrics.get("reason"):
        out[REASON_KEY] = str(metrics["reason"])
    return out


def _tune_report(metrics: dict[str, Any], ckpt_dir: str | None) -> None:
    from ray import tune

    checkpoint = tune.Checkpoint.from_directory(ckpt_dir) if ckpt_dir else None
    tune.report(metrics, checkpoint=checkpoint)


def _final_report(setup: TrialSetup, reporter: TuneReporter, metrics: dict[str, Any],
                  report: Any) -> None:
    """After ``fit``: report a divergence (or a run that never reached a stage end)."""
    status = metrics.get("status", "completed")
    if reporter.ended or (status == "completed" and reporter.last_status == "completed"):
        return  # told to stop (Tune expects no more reports), or reported already
    final = {k: v for k, v in (metrics.get("final") or {}).items()}
    out = {**final, "grid/stage": reporter.stage, STATUS_KEY: status,
           "trial/restores": reporter.restores, **reporter.extra}
    out[setup.metric] = _finite_or(final.get(setup.metric), setup.worst())
    if metrics.get("reason"):
        out[REASON_KEY] = str(metrics["reason"])
    report(out, None)


def search_trial(config: dict[str, Any], setup: TrialSetup) -> None:
    """The Tune function: one ``kanplatform train`` run with ``config``'s keys applied."""
    from ray import tune

    # one INFO line per stage checkpoint ("Checkpoint successfully created at ..."); Tune's
    # results already record every checkpoint
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
    # a W&B service named in the environment is not this trial's: the driver's (Ray workers
    # inherit its environment), or one an earlier trial of this reused worker shut down. A
    # run connected to it lost every record (an empty offline run) when that process ended
    os.environ.pop("WANDB_SERVICE", None)
    # no requirements.txt (a listing of every installed package) in each trial's W&B run:
    # it was ~80% of a trial's wandb.init (0.3 of 0.37 s); the packages that matter are in
    # every run's config and metrics.json (``versions``), the same for all of a study's trials
    os.environ.setdefault("WANDB__SAVE_REQUIREMENTS", "false")
    trial_id = tune.get_context().get_trial_id()
    members = setup.stacks.get(int(config.get(CONFIG_INDEX_KEY, -1)))
    if members:
        _run_stack(setup, members, trial_id)
        return
    key, run_dir, remote = setup.run_dir(config, trial_id)
    cfg = build_config(setup, config, key)
    ckpt, stage, restores = _restore_point(run_dir)
    try:
        _run_trial(setup, cfg, run_dir, remote, trial_id, key, ckpt, stage, restores)
    finally:
        _note(run_dir, ended=time.time())


def _run_trial(setup: TrialSetup, cfg: Any, run_dir: Path, remote: str | None, trial_id: str,
               key: str, ckpt: Path | None, stage: int, restores: int) -> None:
    recorded = _recorded_result(setup, run_dir, restores) if restores else None
    if recorded is not None:  # its run ended already (before a driver died): not again
        try:
            _tune_report(recorded, None)
        except SystemExit:
            pass
        return
    n_stages = max(1, len(cfg.grid.schedule))
    workers = int(setup.resources.get("workers", 1) or 1)
    if workers > 1:
        _run_multiworker(setup, cfg, run_dir, remote, trial_id, key, ckpt, stage, restores,
                         n_stages)
        return
    from kanplatform.search.reporter import TuneReporter
    from kanplatform.train import fit

    reporter = TuneReporter(setup, _tune_report, n_stages, stage_offset=stage,
                            restores=restores, extra={"trial/run_dir": remote or str(run_dir),
                                                      "trainer/workers": 1}, key=key)
    trainer_kwargs = {"enable_progress_bar": False}
    try:
        result = fit(cfg, callbacks=[reporter], run_dir=run_dir, trainer_kwargs=trainer_kwargs,
                     ckpt_path=ckpt, verbose=False, replace=True)
    finally:
        _stop_wandb_service()
        publish_run_dir(run_dir, remote)
    if reporter.stopped_by_tune:  # at its last report (max_t): the run completed
        raise SystemExit(0)
    _final_report(setup, reporter, result.metrics, _tune_report)


def stack_groups(setup: TrialSetup, indices: list[int], limit: int = 8) -> list[list[int]]:
    """The listed trials ``indices`` as the trials Tune runs: runs that may train as one
    stack (:func:`kanplatform.train.stacked.stack_reason`: Adam/AdamW, differing only in seed,
    data seed, learning rate and names) grouped, at most ``limit`` a stack, in list order;
    every other trial alone."""
    from kanplatform.train.stacked import stack_key, stack_reason

    groups: dict[str, list[tuple[int, Any]]] = {}
    for i in indices:
        cfg = build_config(setup, {CONFIG_INDEX_KEY: i}, trial_key(i))
        key = stack_key(cfg) if stack_reason([cfg, cfg]) is None else f"alone-{i}"
        groups.setdefault(key, []).append((i, cfg))
    out: list[list[int]] = []
    for members in groups.values():
        for start in range(0, len(members), limit):
            out.append([i for i, _ in members[start:start + limit]])
    return sorted(out, key=lambda g: g[0])


def _run_stack(setup: TrialSetup, members: list[int], trial_id: str) -> None:
    """One Tune trial training the listed trials ``members`` as one stack: each writes its own
    ``runs/trial-<index>``, exactly as its own trial would (a run that ended already is kept;
    a stack cut short trains its unfinished runs again from the start)."""
    from kanplatform.train import fit
    from kanplatform.train.stacked import fit_stacked, stack_reason

    entries = []
    for m in members:
        config = {CONFIG_INDEX_KEY: m}
        key, run_dir, remote = setup.run_dir(config, trial_id)
        cfg = build_config(setup, config, key)
        _, _, restores = _restore_point(run_dir)
        ended = _recorded_result(setup, run_dir, restores) if restores else None
        entries.append((run_dir, remote, cfg, ended is None))
    todo = [e for e in entries if e[3]]
    try:
        if len(todo) >= 2 and stack_reason([e[2] for e in todo]) is None:
            fit_stacked([e[2] for e in todo], run_dirs=[e[0] for e in todo], verbose=False,
                        replace=True)
        else:
            for run_dir, _, cfg, _ in todo:
                fit(cfg, run_dir=run_dir, verbose=False, replace=True,
                    trainer_kwargs={"enable_progress_bar": False})
    finally:
        _stop_wandb_service()
        for run_dir, remote, _, _ in entries:
            publish_run_dir(run_dir, remote)
            _note(run_dir, ended=time.time())
    first = entries[0]
    result = _recorded_result(setup, first[0], 1) or {setup.metric: setup.worst()}
    result["trial/stacked"] = len(todo)
    try:
        _tune_report(result, None)
    except SystemExit:
        pass


def _stop_wandb_service() -> None:
    """Shut down this worker's W&B service once the trial's run is finished. Left to W&B's own
    exit hook, it races Ray killing the worker at the end of the search and prints a
    ``ConnectionResetError`` traceback for a run that was written completely. The next trial in
    a reused worker starts a new service."""
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is not None:
        try:
            wandb.teardown()
        except Exception:  # noqa: BLE001 - the run is already written; nothing to lose
            pass


RECORDS_TIMEOUT_S = 60.0


class _RecordsBeforeExit:
    """Mixin of the trainable Tune builds from :func:`search_trial`: when Tune stops a trial
    for good (the search ending, an actor not reused), give its thread up to
    :data:`RECORDS_TIMEOUT_S` to write its records (``metrics.json``, model, history, W&B
    run) before the actor exits. Tune's own cleanup waits for nothing (``finish(timeout=0)``),
    so the actor's exit cut the last trials' records short. (A reused actor waits
    ``TUNE_FUNCTION_THREAD_TIMEOUT_S``, set by :func:`~kanplatform.search.ray_cluster.trial_env`.)
    """

    def cleanup(self) -> None:
        from ray.train._internal.session import get_session

        session = get_session()
        if session is not None and session.training_started:
            session.finish(timeout=RECORDS_TIMEOUT_S)
        super().cleanup()  # type: ignore[misc]


search_trial.__mixins__ = (_RecordsBeforeExit,)  # type: ignore[attr-defined]


def make_trainable(setup: TrialSetup) -> Any:
    """``search_trial`` bound to ``setup`` with the trial's resources (for ``tune.Tuner``).

    A single-worker trial holds ``cpu``/``gpu``. A multi-worker trial's Tune function only
    coordinates: it holds no CPU (a little memory, since Tune places nothing that asks for
    nothing); its Ray Train workers hold the resources (see :mod:`~kanplatform.search.resources`).
    """
    from ray import tune

    from kanplatform.search.resources import TrialPlacement

    resources = TrialPlacement.of(setup.resources).tune_resources()
    return tune.with_resources(tune.with_parameters(search_trial, setup=setup), resources)


# -- multi-worker trials (Ray Train inside the Tune function) ------------------------------

def _train_report(metrics: dict[str, Any], ckpt_dir: str | None) -> None:
    import ray.train

    checkpoint = None
    if ckpt_dir and ray.train.get_context().get_world_rank() == 0:
        checkpoint = ray.train.Checkpoint.from_directory(ckpt_dir)
    ray.train.report(metrics, checkpoint=checkpoint)


def _distributed_info() -> dict[str, Any]:
    """The worker group as it really runs: its size and collective backend (gloo, nccl)."""
    import ray.train
    import torch.distributed as dist

    backend = str(dist.get_backend()) if dist.is_available() and dist.is_initialized() else None
    return {"trainer/workers": ray.train.get_context().get_world_size(),
            "trainer/backend": backend}


def _worker_loop(loop_config: dict[str, Any]) -> None:
    """Runs on every Ray Train worker: the same ``fit`` under Lightning DDP."""
    os.environ.pop("WANDB_SERVICE", None)  # not this worker's (see search_trial)
    import ray.train
    from ray.train.lightning import RayDDPStrategy, RayLightningEnvironment

    from kanplatform.train import fit

    setup: TrialSetup = loop_config["setup"]
    cfg = loop_config["cfg"]
    rank = ray.train.get_context().get_world_rank()
    remote = loop_config.get("remote")
    from kanplatform.search.reporter import TuneReporter

    reporter = TuneReporter(setup, _train_report, loop_config["n_stages"],
                            stage_offset=loop_config["stage"], restores=loop_config["restores"],
                            extra={"trial/run_dir": remote or loop_config["run_dir"],
                                   **_distributed_info()},
                            keep_dir=Path(loop_config["run_dir"]) / "checkpoints" / "tune"
                            if rank == 0 else None, key=loop_config["key"] if rank == 0 else None)
    use_gpu = loop_config["use_gpu"]
    trainer_kwargs = {
        "strategy": RayDDPStrategy(),
        "plugins": [RayLightningEnvironment()],
        "accelerator": "gpu" if use_gpu else "cpu",
        "devices": "auto",
        "enable_progress_bar": False,
    }
    # rank 0 writes the run directory and the W&B run; the others train in a scratch one
    run_dir = loop_config["run_dir"]
    if rank != 0:
        from kanplatform.config import apply_overrides

        cfg = apply_overrides(cfg, {"tracking.mode": "disabled"})
        run_dir = tempfile.mkdtemp(prefix="kanplatform-")
    try:
        result = fit(cfg, callbacks=[reporter], run_dir=run_dir, trainer_kwargs=trainer_kwargs,
                     ckpt_path=loop_config["ckpt"], verbose=False, replace=True)
    finally:
        if rank == 0:
            publish_run_dir(Path(run_dir), remote)
    if reporter.stopped_by_tune:
        raise SystemExit(0)
    _final_report(setup, reporter, result.metrics, _train_report)


def worker_backend(res: dict[str, Any]) -> dict[str, Any]:
    """How a multi-worker trial's Ray Train workers run: ``{"workers", "use_gpu", "backend",
    "per_worker"}``. With GPUs each worker holds one whole GPU and the workers talk over NCCL
    (NCCL needs a distinct device per rank); without, gloo on CPUs.

    Raises:
        ValueError: for a fractional or multiple ``gpu`` per data-parallel worker.
    """
    gpu = float(res.get("gpu", 0) or 0)
    use_gpu = bool(res["use_gpu"]) if res.get("use_gpu") is not None else gpu > 0
    if use_gpu and gpu not in (0.0, 1.0):
        raise ValueError(
            f"resources.gpu: {res.get('gpu')} with workers: {res.get('workers')}: each "
            "data-parallel worker holds exactly one GPU (NCCL needs one device per worker); "
            "set gpu: 1, or use workers: 1 to share GPUs between trials")
    per_worker = {"CPU": float(res.get("cpu", 1))}
    if use_gpu:
        per_worker["GPU"] = 1.0
    return {"workers": int(res.get("workers", 1) or 1), "use_gpu": use_gpu,
            "backend": "nccl" if use_gpu else "gloo", "per_worker": per_worker}


def _run_multiworker(setup: TrialSetup, cfg: Any, run_dir: Path, remote: str | None,
                     trial_id: str, key: str,
                     ckpt: Path | None, stage: int, restores: int, n_stages: int) -> None:
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    res = setup.resources
    backend = worker_backend(res)
    use_gpu = backend["use_gpu"]
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"setup": setup, "cfg": cfg, "run_dir": str(run_dir),
                           "remote": remote,
                           "ckpt": str(ckpt) if ckpt else None, "stage": stage,
                           "restores": restores, "n_stages": n_stages, "use_gpu": use_gpu,
                           "key": key},
        scaling_config=ray.train.ScalingConfig(num_workers=backend["workers"],
                                               use_gpu=use_gpu,
                                               resources_per_worker=backend["per_worker"]),
        torch_config=TorchConfig(backend=backend["backend"]),
        run_config=ray.train.RunConfig(
            name=f"train-{trial_id}",
            storage_path=join(setup.results_uri, "ray_train") if setup.results_uri
            else str(Path(setup.experiment_dir) / "ray_train"),
            callbacks=[TuneReportCallback()],
            # a worker group that cannot be placed in time is an answer, not a retry loop
            failure_config=ray.train.FailureConfig(controller_failure_limit=0),
        ),
    )
    timeout = float(res.get("placement_timeout_s") or 600)
    os.environ["RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"] = f"{timeout:g}"
    try:
        trainer.fit()
    except Exception as err:  # noqa: BLE001 - re-raised unless it is the placement timeout
        if not _startup_timed_out(err):
            raise
        from kanplatform.search.resources import TrialPlacement

        reason = (f"placement timed out: the trial's {TrialPlacement.of(res).describe()} "
                  f"could not all be placed within resources.placement_timeout_s={timeout:g} "
                  "s (the cluster is busy, or smaller than it looked); free resources, "
                  "raise the timeout, or use fewer workers")
        _tune_report({setup.metric: setup.worst(), STATUS_KEY: "failed", REASON_KEY: reason,
                      "grid/stage": stage, "trial/restores": restores,
                      "trial/run_dir": str(run_dir)}, None)


def _startup_timed_out(err: BaseException) -> bool:
    """True when Ray Train gave up placing the worker group (anywhere in the cause chain)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [err]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if type(e).__name__ == "WorkerGroupStartupTimeoutError":
            return True
        todo += [e.__cause__, e.__context__, getattr(e, "controller_failure", None)]
    return False
