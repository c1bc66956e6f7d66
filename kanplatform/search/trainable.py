"""The Tune trial: a ``kanplatform train`` run with the sampled keys applied.

A trial applies its keys with :func:`kanplatform.train.resolve.apply_run_overrides` (the
CLI's override path) and calls :func:`kanplatform.train.fit` with a Lightning callback that
reports to Tune. With ``report_on: stage`` it reports once per grid stage, carrying ``grid/stage``
(stages completed) so ASHA's rungs are grid stages; with ``validation`` it reports after
every validation. Each report carries a checkpoint, from which a failed trial restarts.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from kanplatform.search.storage import join, publish_run_dir, trial_run_dir

CONFIG_INDEX_KEY = "config_index"
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
    results_uri: str | None = None  # object storage: run dirs are published there

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


class TuneReporter(pl.Callback):
    """Reports ``trainer.callback_metrics`` (+ ``grid/stage``) and a checkpoint to Tune.

    Args:
        setup: the search's trial setup (metric, mode, report_on).
        report: ``report(metrics, checkpoint_dir)``: ``ray.tune.report`` in a plain trial,
            ``ray.train.report`` on a Ray Train worker.
        n_stages: grid stages the run walks (1 without a schedule).
        stage_offset: stages completed before this fit started (on restore).
        restores: how many times this trial restarted from a checkpoint (reported).
        extra: constant entries added to every report (e.g. the run directory).
    """

    def __init__(self, setup: TrialSetup, report: Any, n_stages: int, *, stage_offset: int = 0,
                 restores: int = 0, extra: dict[str, Any] | None = None,
                 keep_dir: str | Path | None = None) -> None:
        self.setup = setup
        self.keep_dir = Path(keep_dir) if keep_dir else None
        self.report = report
        self.n_stages = n_stages
        self.stage = stage_offset
        self.restores = restores
        self.extra = dict(extra or {})
        self.last_status: str | None = None
        self.reported_stage = -1
        self.reports = 0  # this fit's reports (Tune's training_iteration when not restored)
        # Tune stopped the trial in a report: once the records are written the function must
        # end as Ray's session would have ended it (SystemExit(0)); returning instead makes
        # Ray report once more, and that report waits for ever
        self.stopped_by_tune = False

    # -- what gets reported --------------------------------------------------------------
    def metrics(self, trainer: pl.Trainer, status: str,
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in trainer.callback_metrics.items():
            try:
                out[key] = float(value)
            except (TypeError, ValueError):
                continue
        out.update(extra or {})
        out[self.setup.metric] = _finite_or(out.get(self.setup.metric), self.setup.worst())
        out["grid/stage"] = self.stage
        out[STATUS_KEY] = status
        out["trial/restores"] = self.restores
        out.update(self.extra)
        # the metric first: Tune's console table shows the first few entries of a result
        return {self.setup.metric: out.pop(self.setup.metric), **out}

    def send(self, trainer: pl.Trainer, status: str, extra: dict[str, Any] | None = None) -> None:
        """Report now, with a checkpoint to restart from."""
        metrics = self.metrics(trainer, status, extra)
        with tempfile.TemporaryDirectory(prefix="kanplatform-ckpt-") as tmp:
            trainer.save_checkpoint(os.path.join(tmp, CKPT_NAME), weights_only=False)
            Path(tmp, STATE_NAME).write_text(json.dumps({"stage": self.stage}))
            if self.keep_dir and Path(tmp, CKPT_NAME).exists():
                # Ray Train's Tune bridge forwards metrics only: keep our own restart point
                self.keep_dir.mkdir(parents=True, exist_ok=True)
                for name in (CKPT_NAME, STATE_NAME):
                    shutil.copyfile(Path(tmp, name), self.keep_dir / f".{name}.tmp")
                    os.replace(self.keep_dir / f".{name}.tmp", self.keep_dir / name)
            try:
                self.report(metrics, tmp if Path(tmp, CKPT_NAME).exists() else None)
            except SystemExit as stop:
                # Tune ends a trial it stops (ASHA, or max_t reached) with sys.exit(0) in the
                # report; left alone it reads as Ctrl-C and metrics.json would say failed
                if stop.code not in (0, None):
                    raise
                self.reports += 1
                self.last_status, self.reported_stage = status, self.stage
                self.stopped_by_tune = True
                if status != "completed":  # a finished run only writes its records now
                    from kanplatform.train.fitting import RunStopped

                    raise RunStopped(self.stop_reason()) from None
                return
        self.reports += 1
        self.last_status = status
        self.reported_stage = self.stage

    def stop_reason(self) -> str:
        """Why the trial ended early, worded as the trials table words it."""
        where = (f"grid/stage={self.stage}" if self.setup.report_on == "stage"
                 else f"training_iteration={self.reports}")
        return f"stopped by the scheduler at {where}"

    # -- when ------------------------------------------------------------------------------
    def _new_stage_row(self, trainer: pl.Trainer) -> dict[str, Any] | None:
        from kanplatform.train.callbacks import GridSchedule

        grid = next((c for c in trainer.callbacks if isinstance(c, GridSchedule)), None)
        if grid is None or len(grid.stages) <= self.stage:
            return None
        self.stage = len(grid.stages)
        return grid.stages[-1]

    def _report_stage(self, trainer: pl.Trainer) -> None:
        row = self._new_stage_row(trainer)
        if row is None or self.setup.report_on != "stage":
            return
        stage_metrics = {k: v for k, v in row.items() if "/" in k}
        if row.get("grid_size") is not None:
            stage_metrics["grid/size"] = row["grid_size"]
        status = "completed" if self.stage >= self.n_stages else "running"
        self.send(trainer, status, extra=stage_metrics)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        self._report_stage(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._report_stage(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.setup.report_on == "validation" and not trainer.sanity_checking:
            self.send(trainer, "running")


# -- the Tune function ----------------------------------------------------------------------

def _restore_point(run_dir: Path) -> tuple[Path | None, int, int]:
    """Copy the trial's latest Tune checkpoint out; return ``(ckpt, stage, restores)``."""
    from ray import tune

    restores_file = run_dir / "tune_restores.json"
    checkpoint = tune.get_checkpoint()
    kept = run_dir / "checkpoints" / "tune"  # multi-worker trials keep theirs here
    if checkpoint is None and (kept / CKPT_NAME).is_file():
        checkpoint = tune.Checkpoint.from_directory(str(kept))
    if checkpoint is None:
        return None, 0, 0
    restores = 1
    if restores_file.is_file():
        restores += int(json.loads(restores_file.read_text()).get("restores", 0))
    run_dir.mkdir(parents=True, exist_ok=True)
    restores_file.write_text(json.dumps({"restores": restores}))
    target = run_dir / "checkpoints" / f"restore-{restores}.ckpt"
    target.parent.mkdir(parents=True, exist_ok=True)
    with checkpoint.as_directory() as src:
        shutil.copyfile(Path(src, CKPT_NAME), target)
        stage = int(json.loads(Path(src, STATE_NAME).read_text()).get("stage", 0))
    return target, stage, restores


def _tune_report(metrics: dict[str, Any], ckpt_dir: str | None) -> None:
    from ray import tune

    checkpoint = tune.Checkpoint.from_directory(ckpt_dir) if ckpt_dir else None
    tune.report(metrics, checkpoint=checkpoint)


def _final_report(setup: TrialSetup, reporter: TuneReporter, metrics: dict[str, Any],
                  report: Any) -> None:
    """After ``fit``: report a divergence (or a run that never reached a stage end)."""
    status = metrics.get("status", "completed")
    if status == "completed" and reporter.last_status == "completed":
        return
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
    trial_id = tune.get_context().get_trial_id()
    cfg = build_config(setup, config, trial_id)
    run_dir, remote = trial_run_dir(setup.experiment_dir, setup.results_uri,
                                    setup.experiment_name, trial_id)
    ckpt, stage, restores = _restore_point(run_dir)
    n_stages = max(1, len(cfg.grid.schedule))
    workers = int(setup.resources.get("workers", 1) or 1)
    if workers > 1:
        _run_multiworker(setup, cfg, run_dir, trial_id, ckpt, stage, restores, n_stages)
        return
    from kanplatform.train import fit

    reporter = TuneReporter(setup, _tune_report, n_stages, stage_offset=stage,
                            restores=restores, extra={"trial/run_dir": remote or str(run_dir),
                                                      "trainer/workers": 1})
    trainer_kwargs = {"enable_progress_bar": False}
    from kanplatform.train.fitting import RunStopped

    try:
        result = fit(cfg, callbacks=[reporter], run_dir=run_dir, trainer_kwargs=trainer_kwargs,
                     ckpt_path=ckpt, verbose=False)
    except RunStopped:  # Tune stopped it; metrics.json says so
        raise SystemExit(0) from None
    finally:
        _stop_wandb_service()
        publish_run_dir(run_dir, remote)
    if reporter.stopped_by_tune:  # at its last report (max_t): the run completed
        raise SystemExit(0)
    _final_report(setup, reporter, result.metrics, _tune_report)


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
    import ray.train
    from ray.train.lightning import RayDDPStrategy, RayLightningEnvironment

    from kanplatform.train import fit

    setup: TrialSetup = loop_config["setup"]
    cfg = loop_config["cfg"]
    rank = ray.train.get_context().get_world_rank()
    remote = loop_config.get("remote")
    reporter = TuneReporter(setup, _train_report, loop_config["n_stages"],
                            stage_offset=loop_config["stage"], restores=loop_config["restores"],
                            extra={"trial/run_dir": remote or loop_config["run_dir"],
                                   **_distributed_info()},
                            keep_dir=Path(loop_config["run_dir"]) / "checkpoints" / "tune"
                            if rank == 0 else None)
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
    from kanplatform.train.fitting import RunStopped

    try:
        result = fit(cfg, callbacks=[reporter], run_dir=run_dir, trainer_kwargs=trainer_kwargs,
                     ckpt_path=loop_config["ckpt"], verbose=False)
    except RunStopped:  # Tune stopped the trial: end as Ray's own sys.exit(0) would
        raise SystemExit(0) from None
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


def _run_multiworker(setup: TrialSetup, cfg: Any, run_dir: Path, trial_id: str,
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
                           "remote": trial_run_dir(setup.experiment_dir, setup.results_uri,
                                                   setup.experiment_name, trial_id)[1],
                           "ckpt": str(ckpt) if ckpt else None, "stage": stage,
                           "restores": restores, "n_stages": n_stages, "use_gpu": use_gpu},
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
