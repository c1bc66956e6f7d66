"""``fit(cfg)``: one config in, one run directory out.

Everything a run needs is set up here and nowhere else: the data module, the model, the
LightningModule, one Trainer for all grid stages, tracking, and the run directory files.
Ray Tune trials and tracking plug in through ``callbacks``, ``loggers`` and
``trainer_kwargs`` rather than copies of this function.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import sys
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kanplatform.config import ConfigError, load_config, save_config, to_dict
from kanplatform.train.resolve import check_run_config, fill_matched_width, load_run_config

# what a run's metrics.json, a search's trials table, W&B and the reports say (DESIGN.md)
STATUS_COMPLETED, STATUS_STOPPED, STATUS_DIVERGED = "completed", "stopped", "diverged"
STATUS_FAILED, STATUS_INTERRUPTED = "failed", "interrupted"
STATUSES = (STATUS_COMPLETED, STATUS_STOPPED, STATUS_DIVERGED, STATUS_FAILED,
            STATUS_INTERRUPTED)
ERROR_LOG = "error.log"  # RUN_DIR/error.log: the traceback of a failed run


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        run_dir: the run directory (see CONTRIBUTING.md for its files).
        metrics: the content of ``metrics.json``.
        model: the trained model (on the training device, eval mode).
    """

    run_dir: Path
    metrics: dict[str, Any]
    model: torch.nn.Module | None = field(repr=False, default=None)

    @property
    def status(self) -> str:
        """``completed``, ``stopped`` (a callback's stop request) or ``diverged``."""
        return self.metrics["status"]


def as_run_config(cfg: Any) -> Any:
    """Accept a loaded DictConfig, a plain dict (e.g. ``to_dict`` output) or a YAML path."""
    from omegaconf import DictConfig

    if isinstance(cfg, DictConfig):
        return cfg
    if isinstance(cfg, str | Path):
        return load_run_config(cfg)
    if isinstance(cfg, Mapping):
        return load_config([], dict(cfg), validate=False)
    raise ConfigError(f"fit() needs a config (DictConfig, dict or path), got {type(cfg).__name__}")


def run_threads(num_threads: int | None) -> int:
    """The torch CPU threads a run uses: ``trainer.num_threads``, or by default torch's
    current count capped by the CPUs this process may use (affinity and cgroup quota,
    :func:`kanplatform._util.cpus.available_cpus`): more only queue behind each other."""
    if num_threads:
        return int(num_threads)
    from kanplatform._util.cpus import available_cpus

    return max(1, min(torch.get_num_threads(), available_cpus()))


@contextlib.contextmanager
def _local_torch_state(seed: int, num_threads: int) -> Iterator[None]:
    """Seed torch for this run only; restore the caller's RNG, threads and determinism flag."""
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        if num_threads != threads:
            torch.set_num_threads(num_threads)
        try:
            yield
        finally:
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(deterministic)


def _tracking(cfg: Any, run_dir: Path, resume: bool = False) -> tuple[list[Any], list[Any], Any]:
    """Loggers and callbacks from :mod:`kanplatform.tracking`, and its ``finish``.

    The callbacks (spline snapshots into ``run_dir/figures``) are added whatever the mode:
    ``tracking.mode=disabled`` switches W&B off, not the run directory's figures. A resumed
    run (``resume``) continues the W&B run recorded in ``run_dir``.
    """
    from kanplatform import tracking

    return tracking.make_loggers(cfg, run_dir, resume=resume), \
        tracking.make_callbacks(cfg, run_dir), tracking.finish


def fit(
    cfg: Any,
    *,
    callbacks: Sequence[Any] = (),
    loggers: Sequence[Any] = (),
    run_dir: str | Path | None = None,
    trainer_kwargs: Mapping[str, Any] | None = None,
    ckpt_path: str | Path | None = None,
    verbose: bool = True,
    replace: bool = False,
) -> FitResult:
    """Train the model ``cfg`` describes and write its run directory.

    Deterministic for a fixed ``cfg.seed`` on the CPU: torch is seeded inside a forked RNG
    state, so the caller's global random state is left as it was.

    Args:
        cfg: a RunConfig (from :func:`kanplatform.train.resolve.load_run_config`), a plain
            dict or a path.
        callbacks: extra Lightning callbacks (e.g. Ray Tune's report callback). One that
            stops the run early (``trainer.should_stop``) says why in its ``stop_request``
            attribute, ``(status, reason)`` with status ``stopped`` or ``interrupted``; the
            run then ends with that status and reason.
        loggers: extra Lightning loggers (tracking's W&B logger is added from ``cfg.tracking``).
        run_dir: write here instead of a new ``cfg.output_dir/<name>-<time>-<random>``. A
            directory that holds a run is refused (runs are never overwritten) unless
            ``ckpt_path`` resumes it or ``replace``; one another process is writing is
            refused at once (an exclusive lock on ``RUN_DIR/.lock``).
        trainer_kwargs: extra ``pl.Trainer`` arguments, overriding the config's (e.g.
            ``strategy``, ``plugins`` for Ray Train workers).
        ckpt_path: resume from this Lightning checkpoint (e.g. ``RUN_DIR/checkpoints/last.ckpt``
            of an interrupted run, written when it stopped or, for a killed one, by the last
            ``trainer.checkpoint_every_n_steps`` save; or of a finished one with a larger
            budget in ``cfg``). The global step, optimiser state, grid stage and history
            continue from it; on the CPU with full-batch data the result matches an
            uninterrupted run. The W&B run recorded in ``run_dir`` goes on. Checked before
            anything is written.
        verbose: print the run directory.
        replace: write over the run in ``run_dir`` (a search trial restarted from scratch).

    Returns:
        :class:`FitResult`. A run whose loss became NaN/inf, or rose above
        ``trainer.divergence_factor`` times its best, stops at once and *returns* with
        ``status == "diverged"`` and ``metrics["reason"]`` naming the step and the loss (the
        CLI exits 1); its files are written as usual.

    Raises:
        ConfigError: an invalid config, or a ``ckpt_path`` of another model, past the
            config's step budget or holding more than weights, before anything is written.
        FileNotFoundError: ``ckpt_path`` does not exist, before anything is written.
        RunDirError: ``run_dir`` holds a run or is in use, before anything is written.
        Exception: any training error, re-raised after ``metrics.json`` records
            ``status: failed`` with the reason (the traceback is in ``RUN_DIR/error.log``);
            SIGTERM and Ctrl-C (Lightning's ``SystemExit``) after it records ``interrupted``
            with the step and how to resume.

    Example:
        >>> result = fit(load_config("configs/experiment/quick.yaml"))  # doctest: +SKIP
        >>> result.metrics["final"]["test/rmse"]                          # doctest: +SKIP
    """
    from kanplatform.train.rundir import claim_run_dir, new_run_dir

    cfg = fill_matched_width(copy.deepcopy(as_run_config(cfg)))  # config.yaml: what trains
    check_run_config(cfg)
    splits = _run_data(cfg)  # bad data fails here, before the run directory exists
    steps_per_epoch = _steps_per_epoch(cfg, splits)
    resumed = None
    if ckpt_path is not None:
        from kanplatform.train.checkpoint import check_resume

        ckpt_path = Path(ckpt_path).resolve()
        budget = (trainer_kwargs or {}).get("max_steps") or step_budget(cfg, steps_per_epoch)
        resumed = {"checkpoint": str(ckpt_path), "step": check_resume(ckpt_path, cfg, budget)}
    run_dir = Path(run_dir).resolve() if run_dir else new_run_dir(cfg.output_dir, cfg.name)
    lock = claim_run_dir(run_dir, resume=ckpt_path is not None, replace=replace)
    try:
        return _fit_in(cfg, run_dir, resumed, callbacks, loggers, trainer_kwargs, ckpt_path,
                       verbose, splits, steps_per_epoch)
    finally:
        lock.release()


def _fit_in(cfg: Any, run_dir: Path, resumed: dict[str, Any] | None, callbacks: Sequence[Any],
            loggers: Sequence[Any], trainer_kwargs: Mapping[str, Any] | None,
            ckpt_path: Path | None, verbose: bool, splits: Any,
            steps_per_epoch: int) -> FitResult:
    """:func:`fit` once the run directory is this process's."""
    (run_dir / ERROR_LOG).unlink(missing_ok=True)  # an earlier attempt's; this one starts
    save_config(cfg, run_dir / "config.yaml")
    if verbose:
        print(f"run dir: {run_dir}", file=sys.stderr, flush=True)
        if resumed:
            print(f"resuming from step {resumed['step']} of {ckpt_path}", file=sys.stderr,
                  flush=True)
    started = time.perf_counter()
    run = _Run(cfg, run_dir)
    run.splits, run.steps_per_epoch = splits, steps_per_epoch
    run.resumed_from = resumed
    run.verbose = verbose
    try:
        run.num_threads = run_threads(cfg.trainer.num_threads)
        with _local_torch_state(cfg.seed, run.num_threads):
            run.train(callbacks, loggers, trainer_kwargs, ckpt_path)
    except BaseException as err:
        status, reason = run.failure(err)
        if status == STATUS_FAILED:
            import traceback

            (run_dir / ERROR_LOG).write_text("".join(traceback.format_exception(err)))
        run.write(status, reason, time.perf_counter() - started)
        run.finish(status)
        raise
    status, reason = run.outcome(callbacks, (trainer_kwargs or {}).get("max_steps"))
    metrics = run.write(status, reason, time.perf_counter() - started)
    run.finish(status)
    return FitResult(run_dir, metrics, run.module.model.eval() if run.module else None)


def _run_data(cfg: Any) -> Any:
    from kanplatform.data import dataset_for_run

    return dataset_for_run(cfg, dtype=torch.float64 if cfg.trainer.precision == 64
                           else torch.float32)


def _steps_per_epoch(cfg: Any, splits: Any) -> int:
    batch = cfg.data.batch_size
    n = int(splits.train[0].shape[0])
    return 1 if batch is None else max(1, -(-n // int(batch)))


def step_budget(cfg: Any, steps_per_epoch: int | None = None) -> int:
    """Optimiser steps a run of ``cfg`` takes: ``steps_per_stage`` per grid stage, or without
    a grid schedule ``trainer.max_steps`` and/or ``trainer.max_epochs`` epochs of
    ``steps_per_epoch`` steps (whichever ends first)."""
    schedule = list(cfg.grid.schedule)
    if schedule:
        return int(cfg.grid.steps_per_stage) * len(schedule)
    t = cfg.trainer
    budgets = [int(t.max_steps)] if t.max_steps is not None else []
    if t.get("max_epochs") is not None:
        if steps_per_epoch is None:
            raise ValueError("step_budget: trainer.max_epochs needs steps_per_epoch")
        budgets.append(int(t.max_epochs) * int(steps_per_epoch))
    return min(budgets)


class _LightningNoise(logging.Filter):
    """Drops Lightning's advertisement for its cloud logger and its device banner ("GPU
    available: False, used: False", "TPU available: ..."), printed by every Trainer."""

    BANNER = ("GPU available:", "TPU available:", "HPU available:", "IPU available:",
              "LOCAL_RANK:", "litlogger", "💡")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(part in message for part in self.BANNER)


@contextlib.contextmanager
def _quiet_lightning(verbose: bool) -> Iterator[None]:
    """While a run trains: :class:`_LightningNoise` on the handlers Lightning's records reach
    and, unless ``verbose``, no INFO lines from Lightning at all (the accelerator summary,
    "`Trainer.fit` stopped": search trials report their own results)."""
    noise = _LightningNoise()
    names = ("pytorch_lightning", "lightning.pytorch", "pytorch_lightning.utilities.rank_zero",
             "lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")
    loggers = [logging.getLogger(name) for name in names]
    handlers = {h for lg in [*loggers, logging.getLogger()] for h in lg.handlers}
    levels = [lg.level for lg in loggers]
    for h in handlers:
        h.addFilter(noise)
    for lg in loggers:  # records that reach a handler of another logger pass these first
        lg.addFilter(noise)
    if not verbose:
        for lg in loggers:
            lg.setLevel(max(lg.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        for h in handlers:
            h.removeFilter(noise)
        for lg, level in zip(loggers, levels):
            lg.removeFilter(noise)
            lg.setLevel(level)


class _Run:
    """The state of one :func:`fit` call (kept apart so failures can still write files)."""

    def __init__(self, cfg: Any, run_dir: Path) -> None:
        self.cfg, self.run_dir = cfg, run_dir
        self.module: Any = None
        self.trainer: Any = None
        self.recorder: Any = None
        self.grid: Any = None
        self.loggers: list[Any] = []
        self.finish_tracking: Any = None
        self.wall_time_s: float | None = None
        self.cpu_time_s: float | None = None
        self.datamodule: Any = None
        self.resumed_from: dict[str, Any] | None = None
        self.checkpoint: Any = None
        self.early_stop: Any = None
        self.splits: Any = None
        self.steps_per_epoch = 1
        self.num_threads: int | None = None
        self.steps_per_batch = 1

    def train(self, callbacks: Sequence[Any], loggers: Sequence[Any],
              trainer_kwargs: Mapping[str, Any] | None, ckpt_path: str | Path | None) -> None:
        from kanplatform._util.lightning import pl
        from kanplatform.data import KANDataModule
        from kanplatform.train.callbacks import (
            LoopClock,
            PeriodicCheckpoint,
        )
        from kanplatform.train.models import build_model_from_config
        from kanplatform.train.module import TaskModule

        cfg = self.cfg
        t = cfg.trainer
        dtype = torch.float64 if t.precision == 64 else torch.float32
        schedule = list(cfg.grid.schedule)
        model = build_model_from_config(cfg.model, schedule[0] if schedule else None,
                                        grid_eps=cfg.grid.grid_eps, seed=cfg.seed)
        max_steps = (trainer_kwargs or {}).get("max_steps") or step_budget(cfg,
                                                                          self.steps_per_epoch)
        splits = self.splits
        norm = splits.normalizer
        self.module = TaskModule(model.to(dtype), cfg.optim, cfg.reg, task=splits.task,
                                 y_scale=None if norm is None else norm.y_scale,
                                 total_steps=max_steps, data_info=splits.info(),
                                 gradient_clip_val=t.gradient_clip_val)
        datamodule = KANDataModule(splits, data_cfg=cfg.data, dtype=dtype, seed=cfg.seed)
        self.datamodule = datamodule
        own = self.own_callbacks(model, max_steps)
        self.checkpoint = PeriodicCheckpoint(self.run_dir / "checkpoints" / "last.ckpt",
                                             t.checkpoint_every_n_steps, self.grid)
        # the bar only on a terminal: elsewhere it writes a \r frame per refresh
        bar = bool(t.enable_progress_bar) and _stdout_is_tty()
        if t.enable_progress_bar and not bar and self.verbose:
            from kanplatform.train.monitor import ValidationLines

            own.append(ValidationLines(max_steps))
        track_loggers, track_callbacks, self.finish_tracking = _tracking(
            cfg, self.run_dir, resume=ckpt_path is not None)
        self.loggers = [*track_loggers, *loggers]
        kwargs: dict[str, Any] = dict(
            max_steps=max_steps,
            accelerator=t.accelerator,
            devices=t.devices,
            precision=_precision(t.precision, t.accelerator),
            deterministic=t.deterministic,
            val_check_interval=t.val_every_n_steps,
            check_val_every_n_epoch=None,
            log_every_n_steps=t.log_every_n_steps,
            num_sanity_val_steps=0,
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=bar,
            default_root_dir=str(self.run_dir),
        )
        kwargs.update(trainer_kwargs or {})
        # the periodic checkpoint last: it saves what the others did at the same step; not
        # there at all when it never saves (every callback costs hook calls on every step)
        periodic = [self.checkpoint] if self.checkpoint.every_n_steps > 0 else []
        clock = LoopClock()  # first: its on_train_end comes before the final snapshot's
        kwargs["callbacks"] = [clock, *own, *track_callbacks, *callbacks,
                               *kwargs.get("callbacks", []), *periodic]
        kwargs["logger"] = [*self.loggers, *_as_list(kwargs.get("logger"))] or False
        self.steps_per_batch = self._steps_per_batch(kwargs, trainer_kwargs or {})
        datamodule.steps_per_batch = self.module.steps_per_batch = self.steps_per_batch
        if kwargs.get("val_check_interval"):  # Lightning counts batches, we count steps
            kwargs["val_check_interval"] = int(kwargs["val_check_interval"]) \
                // self.steps_per_batch
        with warnings.catch_warnings(), _quiet_lightning(self.verbose):
            # the full-batch loader is an endless iterator by design
            warnings.filterwarnings("ignore", ".*(does not have many workers|has no `__len__`|"
                                    "infinite|`IterableDataset`).*")
            # Lightning's own pytree helper, on torch >= 2.10: nothing a user can act on
            warnings.filterwarnings("ignore", r".*isinstance\(treespec, LeafSpec\).*")
            self.trainer = pl.Trainer(**kwargs)
            started, cpu_started = time.perf_counter(), time.process_time()
            # weights_only: a checkpoint is data (check_resume refused anything else already;
            # this keeps Lightning's own read of it just as strict)
            self.trainer.fit(self.module, datamodule=datamodule,
                             ckpt_path=str(ckpt_path) if ckpt_path else None,
                             weights_only=True)
            # the training loop's time; the whole fit where no loop ran (a resume at its end)
            self.wall_time_s = clock.wall_s if clock.wall_s is not None else \
                time.perf_counter() - started
            self.cpu_time_s = clock.cpu_s if clock.cpu_s is not None else \
                time.process_time() - cpu_started

    def own_callbacks(self, model: Any, max_steps: int) -> list[Any]:
        """The run's grid schedule, recorder and early stopping (``self.grid``,
        ``self.recorder``, ``self.early_stop``), in the order their hooks run."""
        from kanplatform.nn.registry import GridModel
        from kanplatform.train.callbacks import DivergenceGuard, GridSchedule, RunRecorder

        t, g = self.cfg.trainer, self.cfg.grid
        schedule = list(g.schedule)
        guard = DivergenceGuard(t.divergence_factor)
        # grid updates touch only grid models: none means no update cadence (see chunking)
        update_every = g.update_every if isinstance(model, GridModel) else 0
        self.grid = GridSchedule(schedule, g.steps_per_stage if schedule else max_steps,
                                 update_every, g.update_until, guard=guard)
        self.recorder = RunRecorder(t.log_every_n_steps, self.grid)
        own = [self.grid, self.recorder]
        if t.early_stopping is not None:
            from kanplatform.train.monitor import EarlyStopping

            e = t.early_stopping
            metric = e.metric or ("val/loss" if self.splits.task == "classification"
                                  else "val/rmse")
            self.early_stop = EarlyStopping(metric, e.patience, e.mode, e.min_delta)
            own.append(self.early_stop)
        return own

    def _steps_per_batch(self, kwargs: dict[str, Any], extra: Mapping[str, Any]) -> int:
        """K optimiser steps per Lightning batch (:mod:`kanplatform.train.chunking`): every
        cadence of this run lands on a chunk boundary, else 1."""
        from kanplatform.train.chunking import steps_per_batch

        cfg = self.cfg
        # full batch, LBFGS (line searches), several processes or devices, a step count
        # of Lightning's we do not control: one step per batch
        if cfg.data.batch_size is None or cfg.optim.name == "lbfgs" \
                or any(key in extra for key in ("strategy", "plugins", "val_check_interval",
                                                 "limit_train_batches", "max_epochs")) \
                or kwargs.get("devices") not in ("auto", 1, "1", None):
            return 1
        val = kwargs.get("val_check_interval")
        # a resume continues at the saved step: a chunk boundary of this run too
        resumed = int(self.resumed_from["step"]) if self.resumed_from else 0
        # (an epoch's batches need not be a multiple: chunks then run on across epochs)
        cadences = [int(kwargs["max_steps"]), resumed,
                    int(val) if isinstance(val, int) else None]
        return steps_per_batch(cadences, kwargs["callbacks"])

    def write(self, status: str, reason: str | None, total_time_s: float) -> dict[str, Any]:
        """Write metrics.json (always), and the model, checkpoint and history if there is one."""
        from kanplatform._util.runinfo import git_sha, versions
        from kanplatform.train.rundir import write_history, write_json

        metrics: dict[str, Any] = {"status": status, "reason": reason, "name": self.cfg.name,
                                   "seed": int(self.cfg.seed), "final": {}, "stages": [],
                                   "resumed_from": self.resumed_from}
        if self.splits is not None:
            metrics.update(task=self.splits.task, **self.splits.sizes)
        if self.module is not None and self.trainer is not None:
            try:
                metrics.update(self._results())
                self._save_model()
                write_history(self.run_dir / "history.csv", self.recorder.history)
            except Exception as err:  # a failed run still gets its metrics.json
                if status != STATUS_FAILED:
                    raise
                metrics["write_error"] = f"{type(err).__name__}: {err}"
        metrics.update({
            "wall_time_s": self.wall_time_s,
            # CPU seconds of this process during training: on a shared machine, closer to
            # what the wall time would be without the other processes
            "cpu_time_s": self.cpu_time_s,
            "total_time_s": total_time_s,
            "trainer/num_threads": self.num_threads,  # torch CPU threads it trained with
            # optimiser steps per Lightning batch (kanplatform.train.chunking)
            "trainer/steps_per_batch": self.steps_per_batch,
            "git_sha": git_sha(),
            "versions": versions(),
            "run_dir": str(self.run_dir),
            **_distributed(self.trainer),
        })
        write_json(self.run_dir / "metrics.json", metrics)
        return metrics

    def failure(self, err: BaseException) -> tuple[str, str]:
        """``(status, reason)`` of a run that raised ``err``: ``interrupted`` (SIGTERM or
        Ctrl-C: where it stopped and how to go on) or ``failed`` (``Type: message``)."""
        name = type(err).__name__
        # Lightning turns Ctrl-C into SystemExit, and SIGTERM into SIGTERMException after
        # the step in progress (so that checkpoint continues exactly)
        why = {"SIGTERMException": "SIGTERM", "KeyboardInterrupt": "Ctrl-C",
               "SystemExit": "Ctrl-C"}.get(name)
        if why is None:
            return STATUS_FAILED, f"{name}: {err}"
        step = self.trainer.global_step if self.trainer is not None else 0
        return STATUS_INTERRUPTED, (f"interrupted ({why}) at step {step}; continue with "
                                    f"`kanplatform train --resume {self.run_dir}`")

    def outcome(self, callbacks: Sequence[Any], max_steps: int | None) -> tuple[str, str | None]:
        """``(status, reason)`` of a run whose training returned."""
        if self.recorder.diverged:
            return STATUS_DIVERGED, self.recorder.diverged
        if self.early_stop is not None and self.early_stop.reason:
            return STATUS_STOPPED, self.early_stop.reason
        for callback in callbacks:
            request = getattr(callback, "stop_request", None)
            if request:
                status, reason = request
                return (status if status in STATUSES else STATUS_STOPPED), reason
        budget = max_steps or step_budget(self.cfg, self.steps_per_epoch)
        step = self.trainer.global_step
        if step < budget:  # a callback set should_stop without saying why
            return STATUS_STOPPED, f"stopped at step {step} of {budget} by a callback"
        return STATUS_COMPLETED, None

    def _results(self) -> dict[str, Any]:
        from kanplatform.train.callbacks import _model_counts

        module, splits = self.module, self.datamodule.splits
        splits = splits.to(device=module.device)
        final: dict[str, Any] = {}
        for split in ("train", "val", "test"):
            for name, value in module.evaluate(*splits.split(split)).items():
                final[f"{split}/{name}"] = value
        extra: dict[str, Any] = {}
        if splits.ood is not None:  # data.n_ood > 0: inputs in a shell outside the training box
            final["ood/rmse"] = module.evaluate(splits.ood.x, splits.ood.y)["rmse"]
            extra["ood"] = {"n": len(splits.ood.x), "shell": list(splits.ood.shell),
                            "nonfinite_dropped": splits.ood.n_dropped}
        final["train/loss"] = float(module.last_loss) if module.last_loss is not None else None
        return {"final": final, "stages": list(self.grid.stages), "step": self.trainer.global_step,
                "epoch": self._epoch(), "task": splits.task, **splits.sizes,
                **_model_counts(module.model), **extra}

    def _epoch(self) -> int:
        """Passes over the training split completed: for mini-batches the global step's
        (Lightning's counter runs one ahead after a resume at an epoch's end)."""
        if self.cfg.data.batch_size is None:
            return int(self.trainer.current_epoch)
        return int(self.trainer.global_step) // max(1, self.steps_per_epoch)

    def _save_model(self) -> None:
        from kanplatform.train.callbacks import write_checkpoint
        from kanplatform.train.checkpoint import save_model
        from kanplatform.train.rundir import write_json

        info = self.module.data_info
        save_model(self.module.model, self.run_dir / "model.pt", data_info=info)
        write_json(self.run_dir / "data.json", info)  # the same, for people and other tools
        # atomically: a kill while it is written leaves the last periodic checkpoint intact
        write_checkpoint(self.trainer, self.run_dir / "checkpoints" / "last.ckpt")

    def finish(self, status: str) -> None:
        """Finish the W&B run: exit code 0 for a completed or stopped run, the status as a
        tag when it is not ``completed`` (a stopped trial is a result, not an error)."""
        if self.finish_tracking is not None:
            ok = status in (STATUS_COMPLETED, STATUS_STOPPED)
            self.finish_tracking(self.loggers, exit_code=0 if ok else 1, status=status)


def _stdout_is_tty() -> bool:
    try:
        return bool(sys.stdout.isatty())
    except (AttributeError, ValueError):  # replaced or closed stdout
        return False


def _precision(precision: Any, accelerator: str) -> str:
    """Lightning's precision string; ``bf16-mixed`` only where the device computes bfloat16
    (else float32, with a warning)."""
    if precision == 64:
        return "64-true"
    if precision != "bf16-mixed":
        return "32-true"
    cuda = torch.cuda.is_available() and accelerator in ("auto", "gpu", "cuda")
    if cuda and not torch.cuda.is_bf16_supported():
        warnings.warn("trainer.precision: bf16-mixed is not supported by this GPU; training in "
                      "float32", stacklevel=3)
        return "32-true"
    return "bf16-mixed"  # CUDA with bf16, or the CPU (autocast to bfloat16)


def _distributed(trainer: Any) -> dict[str, Any]:
    """``trainer/workers`` (processes training together) and ``trainer/backend`` (their
    collective backend, ``gloo``/``nccl``; null for one process), as the run really trained."""
    workers = int(getattr(trainer, "world_size", 1) or 1) if trainer is not None else 1
    backend = None
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        backend = str(torch.distributed.get_backend())
    return {"trainer/workers": workers, "trainer/backend": backend}


def _as_list(value: Any) -> list[Any]:
    if value is None or value is False or value is True:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


__all__ = ["FitResult", "fit", "to_dict"]
