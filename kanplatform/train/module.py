"""The LightningModule that trains any registered model on a regression or classification task.

MSE (regression) or cross-entropy (classification, the model's outputs are logits) plus
optional KAN regularisation. Every optimiser runs by manual optimisation with one lean
closure (forward, loss, backward, optional gradient clipping): LBFGS (strong Wolfe, full
batch) evaluates it ~10 times per step, Adam/AdamW once; Lightning's automatic optimisation
would add its closure and hook machinery to every evaluation (as much as the whole
forward and backward of a small KAN; benchmarks/README.md). The learning-rate schedule is
a function of the global step, set before each step. Metrics beyond the loss are computed
only when a callback asks (its cadence), not per step. The wrapped model lives in
``self.model`` and may be replaced mid-fit (grid extension): :meth:`replace_model` swaps it
and rebuilds the optimiser. A :class:`~kanplatform.data.datamodule.Chunk` batch runs as K
optimiser steps, each its own global step (:mod:`kanplatform.train.chunking`).
"""

from __future__ import annotations

import inspect
import math
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from kanplatform._util.lightning import pl
from kanplatform.data.datamodule import Chunk
from kanplatform.nn.registry import GridModel
from kanplatform.train.optim import make_optimizer


def model_config(model: nn.Module) -> dict[str, Any]:
    """The ``build_model`` dict of a model (``model.config()``)."""
    return dict(model.config())


def model_grid_size(model: nn.Module) -> int | None:
    """The current grid size of a :class:`~kanplatform.nn.GridModel`, ``None`` for others."""
    return int(model.grid_size) if isinstance(model, GridModel) else None


class TaskModule(pl.LightningModule):
    """Train ``model`` on a regression (MSE) or classification (cross-entropy) task.

    Args:
        model: a ``torch.nn.Module`` from :func:`kanplatform.nn.build_model`.
        optim: the ``optim`` config section (name, lr, LBFGS settings, scheduler).
        reg: the ``reg`` config section; ``reg.lamb > 0`` adds the KAN regulariser.
        task: ``regression`` or ``classification`` (the model's outputs are logits).
        y_scale: per-target scale of normalised regression targets: RMSEs are reported
            in the original units (``rmse * y_scale``); None = the targets' own units.
        total_steps: the run's step budget (the cosine schedule ends there).
        data_info: what ``kanplatform.load`` needs to predict (:meth:`Splits.info`); saved in
            checkpoints.

    Attributes:
        last_loss: the loss of the latest training forward pass (detached), for callbacks.
    """

    def __init__(self, model: nn.Module, optim: Any, reg: Any = None, task: str = "regression",
                 y_scale: Any = None, total_steps: int | None = None,
                 data_info: dict[str, Any] | None = None, gradient_clip_val: float | None = None
                 ) -> None:
        super().__init__()
        self.model = model
        self.optim_cfg = optim
        self.reg_cfg = reg
        self.task = task
        self.classify = task == "classification"
        self.total_steps = total_steps
        self.data_info = data_info
        self.clip = gradient_clip_val
        scale = None if y_scale is None else torch.as_tensor(y_scale, dtype=torch.float64)
        self.register_buffer("y_scale", None if scale is None else scale.reshape(1, -1),
                             persistent=False)
        self.last_loss: torch.Tensor | None = None
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None
        # one lean step for every optimiser: Lightning's automatic optimisation wraps each
        # step in closures and hooks that cost more than a small model's forward and backward
        self.automatic_optimization = False
        self._lr = lr_schedule(optim, total_steps)
        # optimiser steps per Lightning batch (kanplatform.train.chunking; fit sets it)
        self.steps_per_batch = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: (batch, in) -> (batch, out)`` (logits for classification)."""
        return self.model(x)

    def _use_reg(self) -> bool:
        # asked every step; isinstance on the GridModel protocol tries hasattr, which on a model
        # without the attribute goes through nn.Module.__getattr__ and builds an error message:
        # decide once per model object (swapped only by a grid extension or a checkpoint load)
        key = id(self.model)
        if self.__dict__.get("_reg_key") != key:
            self.__dict__["_reg_key"] = key
            self.__dict__["_reg_on"] = bool(self.reg_cfg is not None and self.reg_cfg.lamb > 0
                                            and isinstance(self.model, GridModel))
        return self.__dict__["_reg_on"]

    def _loss(self, x: torch.Tensor, y: torch.Tensor, use_reg: bool,
              out: torch.Tensor | None = None) -> torch.Tensor:
        # called once per Adam step, ~10 times per LBFGS step (the closure): keep it lean;
        # ``out``: the model's outputs on ``x`` computed already (a stacked step's)
        if out is None:
            out = self.model(x)
        if self.classify:
            loss = F.cross_entropy(_full(out), y)
        else:
            loss = torch.mean((out - y) ** 2)
        if use_reg:
            from kanplatform.nn import regularization

            r = self.reg_cfg
            loss = loss + regularization(self.model, x, lamb=r.lamb, lamb_l1=r.lamb_l1,
                                         lamb_entropy=r.lamb_entropy, variant=r.variant)
        # straight into __dict__, where nn.Module.__setattr__ puts a plain tensor attribute
        # too, without its checks for parameters, modules and buffers (twice per step)
        d = self.__dict__
        d["_last"] = (out.detach(), y)
        d["last_loss"] = loss.detach()
        return loss

    @property
    def last_mse(self) -> torch.Tensor | None:
        """MSE (model units) of the latest training batch; None before one or for
        classification."""
        if self.classify:
            return None
        if self._last is None:  # the fused LBFGS path keeps only its loss, the MSE
            return self.__dict__.get("_fused_mse")
        out, y = self._last
        return torch.mean((out - y) ** 2)

    def train_metrics(self) -> dict[str, float]:
        """``train/rmse`` (original units) or ``train/accuracy`` of the latest training batch,
        computed only when asked (the recorder's cadence), never per step."""
        if self._last is None:
            mse = self.last_mse  # the fused path (one target: its scale applies to the MSE)
            if mse is None:
                return {}
            scale = 1.0 if self.y_scale is None else float(self.y_scale.reshape(-1)[0])
            return {"train/rmse": float(torch.sqrt(mse.double())) * scale}
        return {f"train/{k}": v for k, v in self._metrics(*self._last, loss=False).items()}

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        lopt = self.optimizers()
        plan = self._plan(lopt)
        if type(batch) is Chunk:
            return self._chunk_steps(batch, lopt, plan)
        x, y = batch
        return self._step(x, y, lopt, plan)

    # Lightning asks inspect.getfullargspec for training_step's parameters on every batch;
    # a stored signature answers without re-reading the code object each time
    training_step.__signature__ = inspect.signature(training_step)  # type: ignore[attr-defined]

    def _chunk_steps(self, chunk: Chunk, lopt: Any, plan: _StepPlan) -> torch.Tensor:
        """K optimiser steps, one per index batch of ``chunk``, each its own global step.

        After every step but the last (whose ``on_train_batch_end`` Lightning calls), the
        callbacks' ``on_inner_step(trainer, module)`` hooks run (the recorder: divergence
        check, history row at its cadence); a stop request (divergence) ends the chunk at
        that step, as it would have ended the run there one step per batch.
        """
        x, y, indices = chunk.x, chunk.y, chunk.indices
        trainer, hooks, last = self._trainer, plan.inner_hooks, len(indices) - 1
        loss = None
        for j, index in enumerate(indices):
            loss = self._step(x.index_select(0, index), y.index_select(0, index), lopt, plan)
            if j < last:
                for hook in hooks:
                    hook(trainer, self)
                if trainer.should_stop:
                    break
        return loss

    def _step(self, x: torch.Tensor, y: torch.Tensor, lopt: Any, plan: _StepPlan
              ) -> torch.Tensor:
        """One optimiser step on ``(x, y)`` (counted in ``global_step``)."""
        opt = lopt.optimizer
        if self._lr is not None:
            lr = self._lr(self.global_step)
            for group in opt.param_groups:
                group["lr"] = lr
        fused = self._fused_loss(x, y) if plan.fusable else None
        if fused is not None:
            opt.ensure_flat()  # a re-flattening inside step would move the tensors
            # bound to them: grids and tensors hold for the whole step; the loss as a float
            # (LBFGS reads only that), the gradients the plain closure's, in one C call
            run = fused.prepare(as_float=True)
            latest: list[float] = []

            def evaluate() -> float:
                loss = run()
                latest.append(loss)  # the attributes are set once, after the step
                return loss

            # LightningOptimizer.step counts the global step; its per-call hooks wrap the
            # closure, which FlatLBFGS calls once, the line search's evaluations bare
            lopt.step(evaluate, evaluate=evaluate)
            # the latest evaluation's loss, as the plain closure leaves it
            loss = torch.tensor(latest[-1], dtype=x.dtype)
            d = self.__dict__
            d["last_loss"] = loss
            d["_last"] = None
            d["_fused_mse"] = loss  # the plain MSE: no regulariser here
            return loss
        params, use_reg, clip = plan.params, plan.use_reg, self.clip
        if plan.lean:
            def closure() -> torch.Tensor:
                for p in params:
                    p.grad = None
                loss = self._loss(x, y, use_reg)
                loss.backward()  # what manual_backward comes to here (see _plan)
                if clip:
                    torch.nn.utils.clip_grad_norm_(params, clip)
                return loss

            # LightningOptimizer.step without its hook rounds: the same step count
            # (global_step) and the same update, nothing overrides the hooks it would call
            lopt._on_before_step()
            opt.step(closure)
            lopt._on_after_step()
            return self.last_loss

        def closure() -> torch.Tensor:
            for p in params:
                p.grad = None
            loss = self._loss(x, y, use_reg)
            self.manual_backward(loss)
            if clip:
                torch.nn.utils.clip_grad_norm_(params, clip)
            return loss

        # LightningOptimizer.step counts the global step and runs the optimiser hooks
        lopt.step(closure)
        return self.last_loss

    def _plan(self, lopt: Any) -> _StepPlan:
        """What every step of this model, optimiser and trainer does, decided once (a grid
        extension or a checkpoint load swaps the model, and with it the optimiser)."""
        plan = self.__dict__.get("_step_plan")
        if plan is not None and plan.model is self.model and plan.optimizer is lopt \
                and plan.trainer is self._trainer:
            return plan
        from kanplatform.train.lbfgs import FlatLBFGS

        use_reg = self._use_reg()
        # the fused MSE: full-batch LBFGS regression without a regulariser or clipping, its
        # train/rmse recoverable from the loss (one target, or targets left in their units)
        fusable = not (use_reg or self.classify or self.clip) \
            and isinstance(lopt.optimizer, FlatLBFGS) \
            and (self.y_scale is None or self.y_scale.numel() == 1)
        params = [p for group in lopt.optimizer.param_groups for p in group["params"]]
        callbacks = self._trainer.callbacks if self._trainer is not None else []
        inner = [cb.on_inner_step for cb in callbacks if hasattr(cb, "on_inner_step")]
        plan = _StepPlan(self.model, lopt, self._trainer, use_reg, fusable, params,
                         lean_step_applies(self), inner)
        self.__dict__["_step_plan"] = plan
        return plan

    def _metrics(self, out: torch.Tensor, y: torch.Tensor, loss: bool = True
                 ) -> dict[str, float]:
        if self.classify:
            pred = out.argmax(dim=1)
            metrics = {"accuracy": float((pred == y).double().mean()),
                       "f1": macro_f1(pred, y, out.shape[1])}
            if loss:
                metrics = {"loss": float(F.cross_entropy(_full(out), y)), **metrics}
            return metrics
        err = (out - y).double()
        if self.y_scale is not None:
            err = err * self.y_scale.to(err.device)
        return {"rmse": float(torch.sqrt(torch.mean(err ** 2)))}

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor, chunk: int = 8192) -> dict[str, float]:
        """Metrics of the current model on ``(x, y)``: ``{"rmse"}`` (original units) or
        ``{"loss", "accuracy", "f1"}``; evaluated in chunks, in eval mode."""
        was_training = self.model.training
        self.model.eval()
        try:
            out = torch.cat([self.model(part) for part in x.split(chunk)]) if len(x) else \
                self.model(x)
            return self._metrics(out, y)
        finally:
            self.model.train(was_training)

    def _fused_loss(self, x: torch.Tensor, y: torch.Tensor) -> Any:
        """A :class:`~kanplatform.nn.fused.FusedMSE` of the model on this batch where it
        applies (a small KAN on the CPU: the same loss and gradients as :meth:`_loss` +
        ``backward``, bit for bit), else ``None``; kept while model and batch are the same."""
        cached = self.__dict__.get("_fused")
        if cached is not None and cached[0] is self.model and cached[1] is x and cached[2] is y:
            return cached[3]
        from kanplatform.nn.fused import FusedMSE

        fused = FusedMSE(self.model, x, y) if FusedMSE.supported(self.model, x, y) else None
        self.__dict__["_fused"] = (self.model, x, y, fused)
        return fused

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        for name, value in self.evaluate(x, y).items():
            self.log(f"val/{name}", value, prog_bar=name in ("rmse", "accuracy"),
                     batch_size=len(x))

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        for name, value in self.evaluate(x, y).items():
            self.log(f"test/{name}", value, batch_size=len(x))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return make_optimizer(self.model.parameters(), self.optim_cfg)

    def replace_model(self, model: nn.Module) -> None:
        """Swap in a new model (e.g. an extended-grid KAN) and rebuild the optimiser."""
        self.model = model.to(device=self.device, dtype=self.dtype)
        if self._trainer is not None:
            self.trainer.strategy.optimizers = [self.configure_optimizers()]

    def rmse(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Root-mean-square error (original units) of the current model on ``(x, y)``."""
        return self.evaluate(x, y)["rmse"]

    # checkpoints carry the model's config, so a model whose grid was extended mid-fit
    # can be rebuilt at the right size before its weights are loaded
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["model_config"] = model_config(self.model)
        # Lightning's batch counters count chunks of this many steps (see on_load_checkpoint)
        checkpoint["steps_per_batch"] = self.steps_per_batch
        if self.data_info is not None:
            checkpoint["data_info"] = self.data_info

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        rescale_batch_counts(checkpoint, self.steps_per_batch)
        spec = checkpoint.get("model_config")
        if spec and spec != model_config(self.model):
            from kanplatform.nn import build_model

            # the current model's dtype: ``self.dtype`` still says float32 here (the precision
            # plugin converts the module after the restore) and would round a float64 state
            dtype = next(self.model.parameters(), torch.empty(0, dtype=self.dtype)).dtype
            self.model = build_model(spec).to(device=self.device, dtype=dtype)


RegressionModule = TaskModule  # the name before classification existed


def _full(out: torch.Tensor) -> torch.Tensor:
    """Logits in at least float32 (bf16 autocast outputs), float64 kept."""
    return out if out.dtype in (torch.float32, torch.float64) else out.float()


def finite(value: Any) -> bool:
    """True if ``value`` (a number or a 0-d tensor) is finite."""
    return value is not None and math.isfinite(float(value))


def macro_f1(pred: torch.Tensor, y: torch.Tensor, n_classes: int) -> float:
    """Macro-averaged F1 over the classes that occur in ``y`` or ``pred``."""
    confusion = torch.bincount(y * n_classes + pred, minlength=n_classes * n_classes)
    confusion = confusion.reshape(n_classes, n_classes).double()  # (true, predicted)
    tp = confusion.diag()
    support = confusion.sum(dim=1) + confusion.sum(dim=0)  # 2 tp + fp + fn
    present = support > 0
    return float((2 * tp[present] / support[present]).mean()) if present.any() else 0.0


def lr_schedule(optim: Any, total_steps: int | None) -> Any:
    """``step -> learning rate`` for ``optim.scheduler`` (None: leave the rate alone).

    ``cosine``: linear warm-up from ``lr / warmup_steps`` over ``warmup_steps``, then
    ``min_lr + (lr - min_lr) * (1 + cos(pi * t)) / 2`` with ``t`` going 0 -> 1 over the rest of
    ``total_steps``; ``step``: the warm-up, then ``lr * gamma ** (steps_after // step_size)``.
    """
    kind = getattr(optim, "scheduler", "none") or "none"
    if kind == "none" or optim.name == "lbfgs":
        return None
    lr, warmup = float(optim.lr), int(getattr(optim, "warmup_steps", 0) or 0)
    min_lr = float(getattr(optim, "min_lr", 0.0) or 0.0)
    total = max(int(total_steps or 1), warmup + 1)

    def rate(step: int) -> float:
        if step < warmup:
            return lr * (step + 1) / warmup
        if kind == "cosine":
            t = (step - warmup) / max(1, total - warmup)
            return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))
        return lr * float(optim.gamma) ** ((step - warmup) // int(optim.step_size))

    return rate


def rescale_batch_counts(checkpoint: dict[str, Any], steps_per_batch: int) -> None:
    """Make a checkpoint's Lightning batch counters count batches of ``steps_per_batch``
    optimiser steps, as this run's loop does (a resume may chunk differently from the run
    that saved it: validation and epoch ends are decided on those counters).

    Exact where the saved step and its position in the epoch are multiples of the new K
    (``fit`` makes them so); the counters' offsets from each other (where in the batch it
    was saved) are kept.
    """
    old = int(checkpoint.get("steps_per_batch", 1))
    loop = checkpoint.get("loops", {}).get("fit_loop", {})
    progress = loop.get("epoch_loop.batch_progress")
    if old == steps_per_batch or not progress:
        return
    # steps of the last batch begun that never ran (a Ctrl-C checkpoint, mid-chunk)
    short = int(progress["total"]["ready"]) * old - int(checkpoint.get("global_step", 0))
    short = short if 0 < short < old else 0
    for scope in ("total", "current"):
        counts = progress[scope]
        ready = int(counts["ready"])
        new = max(ready * old - short, 0) // steps_per_batch
        if scope == "total":
            state = loop.get("epoch_loop.state_dict", {})
            if "_batches_that_stepped" in state:
                state["_batches_that_stepped"] = new + state["_batches_that_stepped"] - ready
        for key in counts:
            counts[key] = new + int(counts[key]) - ready
    checkpoint["steps_per_batch"] = steps_per_batch


class _StepPlan(NamedTuple):
    """:meth:`TaskModule._plan`: the per-step decisions, for one model, optimiser, trainer."""

    model: nn.Module
    optimizer: Any
    trainer: Any
    use_reg: bool
    fusable: bool
    params: list[torch.Tensor]
    lean: bool
    inner_hooks: list[Any]  # callbacks' on_inner_step, run between the steps of a Chunk


# hooks a LightningOptimizer.step + manual_backward call on callbacks and the module
_STEP_HOOKS = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")


def lean_step_applies(module: pl.LightningModule) -> bool:
    """Whether a training step may call the torch optimiser and ``loss.backward()`` directly.

    ``LightningOptimizer.step`` + ``manual_backward`` then come to exactly that plus hook
    rounds over every callback (three per step, each dearer than a small model's step):
    true on one device (``SingleDeviceStrategy``) with full precision (32/64: no scaler, no
    autocast in backward), no profiler, and no callback nor the module overriding those
    hooks or ``backward``. Anything else (DDP, bf16, a user's gradient hook) takes
    Lightning's path.
    """
    from pytorch_lightning.plugins.precision import DoublePrecision, Precision
    from pytorch_lightning.profilers import PassThroughProfiler
    from pytorch_lightning.strategies import SingleDeviceStrategy
    from pytorch_lightning.utilities.model_helpers import is_overridden

    trainer = module._trainer
    if trainer is None or type(trainer.strategy) is not SingleDeviceStrategy \
            or type(trainer.precision_plugin) not in (Precision, DoublePrecision) \
            or not isinstance(trainer.profiler, PassThroughProfiler):
        return False
    if any(is_overridden(hook, module, pl.LightningModule) for hook in (*_STEP_HOOKS,
                                                                        "backward")):
        return False
    return not any(is_overridden(hook, callback, pl.Callback)
                   for callback in trainer.callbacks for hook in _STEP_HOOKS)
