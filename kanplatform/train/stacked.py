"""``fit_stacked``: several seeds (or learning rates) of one configuration, trained as one.

Where a study or search trains one architecture several times with Adam or AdamW, the runs
differing only in ``seed`` and/or ``optim.lr``, the S runs train in lockstep in one process
and one loop. Every step, each run draws its own batch (the rows its separate run draws at
that step) and its model computes its outputs with the calls its separate run makes; the S
losses are summed for one backward pass (one autograd run over the S graphs) and each run's
own optimiser steps. One set-up, one loop, one round of hooks per step and one Tune trial
serve the S runs. (A batched matrix product over the S models would round differently from
a model's own, so it is not used: ``benchmarks/README.md``.)

The sum's gradient with respect to one run's parameters is that run's own loss gradient, so
each run computes exactly what its separate :func:`~kanplatform.train.fit` computes, bit for
bit (``tests/train/test_stacked.py``): the same initialisation, batches, grid updates and
extensions, learning-rate schedule, clipping, validations, early stopping and divergence
checks, by the same callbacks (:class:`~kanplatform.train.callbacks.GridSchedule`,
:class:`~kanplatform.train.callbacks.RunRecorder`, early stopping, the tracking callbacks),
which this loop drives in the order Lightning's would.

Each run writes its own run directory as ``fit`` does (``config.yaml``, ``metrics.json``,
``history.csv``, ``model.pt``, ``data.json``, ``figures/``, ``live.json``, its own W&B run),
with ``trainer/stacked`` in ``metrics.json`` (how many runs trained together). A run that
ends early (early stopping, divergence) leaves the stack and writes its records then; the
others go on. What a stacked run does not write: a Lightning checkpoint
(``checkpoints/last.ckpt``): a stacked run is not resumed mid-way, a search trial of stacked
runs that was cut short trains its unfinished runs again from the start.

Where stacking does not apply, :func:`stack_reason` says why and callers train the runs one by
one: LBFGS (its line search evaluates each model a different number of times), several
devices or processes, bf16 autocast, a step budget in epochs, configs that differ in anything
but the seed and the learning rate.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from kanplatform.config import ConfigError, save_config, to_dict
from kanplatform.train.fitting import (
    ERROR_LOG,
    STATUS_FAILED,
    FitResult,
    _local_torch_state,
    _Run,
    _run_data,
    _steps_per_epoch,
    _tracking,
    as_run_config,
    run_threads,
    step_budget,
)
from kanplatform.train.resolve import check_run_config, fill_matched_width

# keys the runs of one stack may differ in (everything else must be equal)
FREE_KEYS = ("seed", "data.seed", "name", "optim.lr", "tracking.name", "tracking.tags")
STACK_OPTIMIZERS = ("adam", "adamw")


def _without(cfg: Any, keys: Sequence[str]) -> dict[str, Any]:
    plain = to_dict(cfg)
    for key in keys:
        node = plain
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return plain


def stack_key(cfg: Any) -> str:
    """What runs of one stack share: the config without :data:`FREE_KEYS`."""
    return repr(_without(cfg, FREE_KEYS))


def stack_reason(cfgs: Sequence[Any]) -> str | None:
    """Why the runs ``cfgs`` cannot train as one stack, or ``None`` when they can.

    They can when there are at least two, every one trains with Adam/AdamW on the CPU (one
    device) in float32/float64 with a step budget in steps, and they differ in nothing but
    :data:`FREE_KEYS` (the seeds, the learning rate, the names).
    """
    if len(cfgs) < 2:
        return "a stack needs at least two runs"
    first = cfgs[0]
    t = first.trainer
    if first.optim.name not in STACK_OPTIMIZERS:
        return (f"optim.name {first.optim.name!r}: only Adam/AdamW runs stack (an LBFGS line "
                "search evaluates each model a different number of times)")
    if t.precision not in (32, 64, "32", "64"):
        return f"trainer.precision {t.precision!r}: only 32 and 64 stack"
    if t.devices not in ("auto", 1, "1", None) or t.get("max_epochs") is not None:
        return "several devices, or a budget in epochs"
    if t.accelerator not in ("cpu",) and torch.cuda.is_available():
        return "a GPU run (stacks train on the CPU; set trainer.accelerator: cpu)"
    if t.val_every_n_steps is None:
        return "trainer.val_every_n_steps is not set"
    reference = stack_key(first)
    for cfg in cfgs[1:]:
        if stack_key(cfg) != reference:
            return "the runs differ in more than seed, data.seed, optim.lr and their names"
    return None


class _SeedTrainer:
    """What the run's callbacks read of a Lightning trainer, for one run of the stack."""

    def __init__(self, run: _Seed, max_steps: int, callbacks: list[Any], loggers: list[Any]
                 ) -> None:
        self.global_step = 0
        self.max_steps = max_steps
        self.should_stop = False
        self.sanity_checking = False
        self.is_global_zero = True
        self.global_rank, self.world_size = 0, 1
        self.current_epoch = 0
        self.callbacks = callbacks
        self.loggers = loggers
        self.logger = loggers[0] if loggers else None
        self.callback_metrics: dict[str, torch.Tensor] = {}
        self.progress_bar_metrics: dict[str, Any] = {}
        self.log_every_n_steps = int(run.cfg.trainer.log_every_n_steps)
        self.datamodule = run.datamodule
        self.lightning_module = run.module

    def hook(self, name: str, *args: Any) -> None:
        """Call hook ``name`` of every callback, in order (as Lightning does)."""
        module = self.lightning_module
        for callback in self.callbacks:
            fn = getattr(callback, name, None)
            if fn is not None:
                fn(self, module, *args)


class _Seed(_Run):
    """One run of a stack: ``fit``'s run state, trained by :func:`fit_stacked`'s loop."""

    def setup(self, max_steps: int, callbacks: Sequence[Any]) -> None:
        from kanplatform.data import KANDataModule
        from kanplatform.train.callbacks import LoopClock
        from kanplatform.train.models import build_model_from_config
        from kanplatform.train.module import TaskModule

        cfg, t, splits = self.cfg, self.cfg.trainer, self.splits
        dtype = torch.float64 if t.precision in (64, "64") else torch.float32
        schedule = list(cfg.grid.schedule)
        model = build_model_from_config(cfg.model, schedule[0] if schedule else None,
                                        grid_eps=cfg.grid.grid_eps, seed=cfg.seed)
        norm = splits.normalizer
        self.dtype = dtype
        self.module = TaskModule(model.to(dtype), cfg.optim, cfg.reg, task=splits.task,
                                 y_scale=None if norm is None else norm.y_scale,
                                 total_steps=max_steps, data_info=splits.info(),
                                 gradient_clip_val=t.gradient_clip_val)
        if dtype == torch.float64:  # what Lightning's 64-true precision does to the module
            self.module.double()
        self.datamodule = KANDataModule(splits, data_cfg=cfg.data, dtype=dtype, seed=cfg.seed)
        self.datamodule.setup("fit")
        own = self.own_callbacks(model, max_steps)
        track_loggers, track_callbacks, self.finish_tracking = _tracking(cfg, self.run_dir)
        self.loggers = list(track_loggers)
        self.clock = LoopClock()
        self.trainer = _SeedTrainer(self, max_steps, [self.clock, *own, *track_callbacks,
                                                      *callbacks], self.loggers)
        self.optimizer = self.module.configure_optimizers()
        self._opt_model = self.module.model
        self.val_every = int(t.val_every_n_steps)
        self.max_steps = max_steps
        self.batch_size = cfg.data.batch_size
        if self.batch_size is not None:
            from kanplatform.data.datamodule import _MiniBatches

            self.batches = _MiniBatches(self.datamodule, int(self.batch_size))
            self.per_epoch = self.batches.batches()
            self._epoch_cache: tuple[int, tuple[torch.Tensor, ...]] | None = None
            self.endless = self._lightning_endless(max_steps)
        self.ended = False

    def _lightning_endless(self, max_steps: int) -> bool:
        """Whether the separate run's Lightning loop never ends an epoch: it runs K steps a
        batch (:mod:`kanplatform.train.chunking`) and K does not divide an epoch's batches.
        Lightning's epoch counter (the ``epoch`` of its validation records) then stays 0."""
        from kanplatform.train.callbacks import PeriodicCheckpoint
        from kanplatform.train.chunking import steps_per_batch

        t = self.cfg.trainer
        callbacks = list(self.trainer.callbacks)
        if t.checkpoint_every_n_steps:
            callbacks.append(PeriodicCheckpoint(self.run_dir / "checkpoints" / "last.ckpt",
                                                t.checkpoint_every_n_steps, self.grid))
        k = steps_per_batch([max_steps, 0, self.val_every], callbacks)
        return k > 1 and self.per_epoch % k != 0

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The training batch the separate run draws at global step ``step``."""
        x, y = self.datamodule.splits.train
        if self.batch_size is None:
            return x, y
        epoch, position = divmod(step, self.per_epoch)
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            self._epoch_cache = (epoch, self.batches.epoch_batches(epoch, x.device))
        index = self._epoch_cache[1][position]
        return x.index_select(0, index), y.index_select(0, index)

    def current_optimizer(self) -> torch.optim.Optimizer:
        """The optimiser of the current model (rebuilt after a grid extension swapped it,
        as ``TaskModule.replace_model`` does under Lightning)."""
        if self.module.model is not self._opt_model:
            self.optimizer = self.module.configure_optimizers()
            self._opt_model = self.module.model
        return self.optimizer

    def validate(self) -> None:
        """Lightning's validation of the run: ``val/*`` as its logger connector reduces them
        (the value as a tensor of the default dtype, a mean over the one batch), into the
        callback metrics and the loggers, then the ``on_validation_end`` hooks."""
        x, y = self.datamodule.splits.split("val")
        n, dtype = len(x), self.dtype
        trainer = self.trainer
        logged = {}
        for name, value in self.module.evaluate(x, y).items():
            total = torch.tensor(0.0, dtype=dtype) + torch.tensor(value, dtype=dtype) * n
            reduced = total / torch.tensor(n)
            trainer.callback_metrics[f"val/{name}"] = reduced
            logged[f"val/{name}"] = float(reduced)
        if self.batch_size is not None and not self.endless:  # Lightning's epoch in progress
            trainer.current_epoch = (trainer.global_step - 1) // self.per_epoch
        for logger in self.loggers:
            logger.log_metrics({**logged, "epoch": float(trainer.current_epoch)},
                               step=trainer.global_step)
        trainer.hook("on_validation_end")

    def end(self) -> None:
        """The end of this run's training loop: the ``on_train_end`` hooks (the clock first)."""
        self.ended = True
        self.trainer.hook("on_train_end")
        self.wall_time_s, self.cpu_time_s = self.clock.wall_s, self.clock.cpu_s

    def failure(self, err: BaseException) -> tuple[str, str]:
        """``fit``'s ``(status, reason)`` of a run that raised ``err``; an interrupted run
        of a stack has no checkpoint to resume from: it is trained again."""
        status, reason = super().failure(err)
        if status != STATUS_FAILED:
            reason = reason.split(";")[0] + ("; a stacked run keeps no checkpoint: train it "
                                              "again (a search --resume does)")
        return status, reason

    def write(self, status: str, reason: str | None, total_time_s: float) -> dict[str, Any]:
        """``fit``'s ``metrics.json``, with ``trainer/stacked``: the runs trained together."""
        from kanplatform.train.rundir import write_json

        metrics = super().write(status, reason, total_time_s)
        metrics["trainer/stacked"] = self.stack_size
        write_json(self.run_dir / "metrics.json", metrics)
        return metrics

    def _save_model(self) -> None:
        from kanplatform.train.checkpoint import save_model
        from kanplatform.train.rundir import write_json

        info = self.module.data_info
        save_model(self.module.model, self.run_dir / "model.pt", data_info=info)
        write_json(self.run_dir / "data.json", info)


def fit_stacked(cfgs: Sequence[Any], *, run_dirs: Sequence[str | Path | None] | None = None,
                callbacks: Sequence[Sequence[Any]] | None = None, verbose: bool = True,
                replace: bool = False) -> list[FitResult]:
    """Train the runs ``cfgs`` as one stack; one :class:`FitResult` per run, in order.

    Args:
        cfgs: run configs (as :func:`~kanplatform.train.fit` takes them) that
            :func:`stack_reason` accepts.
        run_dirs: each run's directory (``None``: a new one under its ``output_dir``).
        callbacks: each run's extra callbacks (hooks called with a trainer-like view).
        verbose: print each run directory.
        replace: write over the runs in ``run_dirs`` (a search trial trained again).

    Returns:
        The runs' results; a run that diverged has ``status == "diverged"``, as with ``fit``.

    Raises:
        ConfigError: an invalid config, or runs that cannot stack (naming why), before
            anything is written.
        RunDirError: a run directory that holds a run or is in use, before training.
        Exception: a training error, after every run's ``metrics.json`` records ``failed``.
    """
    from kanplatform.train.rundir import claim_run_dir, new_run_dir

    cfgs = [fill_matched_width(copy.deepcopy(as_run_config(c))) for c in cfgs]
    for cfg in cfgs:
        check_run_config(cfg)
    reason = stack_reason(cfgs)
    if reason is not None:
        raise ConfigError(f"these runs cannot train as one stack: {reason}")
    data: dict[str, Any] = {}
    runs: list[_Seed] = []
    dirs = list(run_dirs) if run_dirs is not None else [None] * len(cfgs)
    if len(dirs) != len(cfgs):
        raise ValueError("fit_stacked: one run_dirs entry per config")
    for cfg in cfgs:  # one dataset per distinct data section (seeds usually share it)
        key = repr(to_dict(cfg.data))
        if key not in data:
            data[key] = _run_data(cfg)
    locks = []
    try:
        for cfg, given in zip(cfgs, dirs):
            run_dir = Path(given).resolve() if given else new_run_dir(cfg.output_dir, cfg.name)
            locks.append(claim_run_dir(run_dir, replace=replace))
            run = _Seed(cfg, run_dir)
            run.splits = data[repr(to_dict(cfg.data))]
            run.steps_per_epoch = _steps_per_epoch(cfg, run.splits)
            run.verbose = verbose
            run.stack_size = len(cfgs)
            runs.append(run)
        return _train(runs, callbacks, verbose)
    finally:
        for lock in locks:
            lock.release()


def _train(runs: list[_Seed], callbacks: Sequence[Sequence[Any]] | None,
           verbose: bool) -> list[FitResult]:
    import sys

    started = time.perf_counter()
    for run in runs:
        (run.run_dir / ERROR_LOG).unlink(missing_ok=True)
        save_config(run.cfg, run.run_dir / "config.yaml")
        if verbose:
            print(f"run dir: {run.run_dir}", file=sys.stderr, flush=True)
    first = runs[0].cfg
    threads = run_threads(first.trainer.num_threads)
    results: dict[int, FitResult] = {}
    try:
        with _local_torch_state(first.seed, threads):
            max_steps = step_budget(first, runs[0].steps_per_epoch)
            for i, run in enumerate(runs):
                run.num_threads = threads
                run.setup(max_steps, list(callbacks[i]) if callbacks else [])
            _loop(runs, results, started)
    except BaseException as err:
        for i, run in enumerate(runs):
            if i in results:
                continue
            status, reason = run.failure(err)
            if status == STATUS_FAILED:
                import traceback

                (run.run_dir / ERROR_LOG).write_text("".join(traceback.format_exception(err)))
            run.write(status, reason, time.perf_counter() - started)
            run.finish(status)
        raise
    return [results[i] for i in range(len(runs))]


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """torch's default dtype while a step or a validation runs: Lightning's ``64-true``
    precision sets float64 there (tensors made without a dtype follow it), 32 leaves it."""
    before = torch.get_default_dtype()
    if dtype == before:
        yield
        return
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def _loop(runs: list[_Seed], results: dict[int, FitResult], started: float) -> None:
    """Lightning's fit loop for every run at once (one step per batch, as ``fit`` computes)."""
    for run in runs:
        run.trainer.hook("on_fit_start")
        run.trainer.hook("on_train_start")
    active = list(range(len(runs)))
    dtype = runs[0].dtype
    step = 0
    while active:
        batches = {}
        for i in active:
            run = runs[i]
            run.trainer.hook("on_train_batch_start", None, step)
            batches[i] = run.batch(step)
            module = run.module
            optimizer = run.current_optimizer()
            if module._lr is not None:
                lr = module._lr(step)
                for group in optimizer.param_groups:
                    group["lr"] = lr
            for p in module.model.parameters():
                p.grad = None
        with _default_dtype(dtype):  # Lightning's training step runs in its precision's
            # each model's own forward: the calls its separate run makes (one batched matrix
            # product over the S models rounds differently: benchmarks/README.md)
            outs = [runs[i].module.model(batches[i][0]) for i in active]
            total = None
            for i, out in zip(active, outs):
                module = runs[i].module
                x, y = batches[i]
                loss = module._loss(x, y, module._use_reg(), out=out)
                total = loss if total is None else total + loss
            total.backward()
            for i in active:
                module = runs[i].module
                if module.clip:
                    torch.nn.utils.clip_grad_norm_(list(module.model.parameters()),
                                                   module.clip)
                runs[i].optimizer.step()
        step += 1
        for i in active:
            run, module = runs[i], runs[i].module
            run.trainer.global_step = step
            run.trainer.hook("on_train_batch_end", module.last_loss, batches[i], step - 1)
        for i in list(active):
            run = runs[i]
            if run.trainer.should_stop or step % run.val_every == 0:
                with _default_dtype(dtype):
                    run.validate()
            if run.trainer.should_stop or step >= run.max_steps:
                run.end()
                active.remove(i)
                status, reason = run.outcome(run.trainer.callbacks, None)
                metrics = run.write(status, reason, time.perf_counter() - started)
                run.finish(status)
                results[i] = FitResult(run.run_dir, metrics, run.module.model.eval())


__all__ = ["FREE_KEYS", "fit_stacked", "stack_key", "stack_reason"]
