"""The LightningModule that trains any registered model on a regression target.

MSE loss plus optional KAN regularisation; Adam/AdamW through Lightning's automatic
optimisation, LBFGS (strong Wolfe, full batch) by manual optimisation with a lean closure
(forward, loss, backward: Lightning's per-closure hooks cost as much as the whole forward and
backward of a small KAN, and LBFGS evaluates ~10 closures per step; benchmarks/README.md). The
wrapped model lives in ``self.model`` and may be replaced mid-fit (grid extension):
:meth:`replace_model` swaps it and rebuilds the optimiser.
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from kanplatform.nn.registry import GridModel
from kanplatform.train.optim import make_optimizer


def model_config(model: nn.Module) -> dict[str, Any]:
    """The ``build_model`` dict of a model (``model.config()``)."""
    return dict(model.config())


def model_grid_size(model: nn.Module) -> int | None:
    """The current grid size of a :class:`~kanplatform.nn.GridModel`, ``None`` for others."""
    return int(model.grid_size) if isinstance(model, GridModel) else None


class RegressionModule(pl.LightningModule):
    """Train ``model`` to minimise MSE (+ KAN regularisation) on full or mini batches.

    Args:
        model: a ``torch.nn.Module`` from :func:`kanplatform.nn.build_model`.
        optim: the ``optim`` config section (name, lr, LBFGS settings).
        reg: the ``reg`` config section; ``reg.lamb > 0`` adds the KAN regulariser.

    Attributes:
        last_mse: the MSE of the latest training forward pass (detached), for callbacks.
    """

    def __init__(self, model: nn.Module, optim: Any, reg: Any = None) -> None:
        super().__init__()
        self.model = model
        self.optim_cfg = optim
        self.reg_cfg = reg
        self.last_mse: torch.Tensor | None = None
        self.last_loss: torch.Tensor | None = None
        self.automatic_optimization = optim.name != "lbfgs"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: (batch, in) -> (batch, out)``."""
        return self.model(x)

    def _use_reg(self) -> bool:
        return bool(self.reg_cfg is not None and self.reg_cfg.lamb > 0
                    and isinstance(self.model, GridModel))

    def _loss(self, x: torch.Tensor, y: torch.Tensor, use_reg: bool) -> torch.Tensor:
        # called once per Adam step, ~10 times per LBFGS step (the closure): keep it lean
        mse = torch.mean((self.model(x) - y) ** 2)
        loss = mse
        if use_reg:
            from kanplatform.nn import regularization

            r = self.reg_cfg
            loss = mse + regularization(self.model, x, lamb=r.lamb, lamb_l1=r.lamb_l1,
                                        lamb_entropy=r.lamb_entropy, variant=r.variant)
        self.last_mse, self.last_loss = mse.detach(), loss.detach()
        return loss

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor],
                      batch_idx: int) -> torch.Tensor:
        x, y = batch
        use_reg = self._use_reg()
        if self.automatic_optimization:
            return self._loss(x, y, use_reg)
        opt = self.optimizers()
        from kanplatform.train.lbfgs import FlatLBFGS

        fused = None if use_reg or not isinstance(opt.optimizer, FlatLBFGS) else \
            self._fused_loss(x, y)
        if fused is not None:
            opt.optimizer.ensure_flat()  # a re-flattening inside step would move the tensors
            run = fused.prepare()  # bound to them: grids and tensors hold for the whole step

            def evaluate() -> torch.Tensor:
                loss = run()  # the plain closure's loss and gradients, in one C call
                self.last_mse = self.last_loss = loss
                return loss

            # LightningOptimizer.step counts the global step; its per-call hooks wrap the
            # closure, which FlatLBFGS calls once, the line search's evaluations bare
            opt.step(evaluate, evaluate=evaluate)
            return self.last_loss
        params = [p for group in opt.param_groups for p in group["params"]]

        def closure() -> torch.Tensor:
            for p in params:
                p.grad = None
            loss = self._loss(x, y, use_reg)
            loss.backward()
            return loss

        # LightningOptimizer.step counts the global step and runs the optimiser hooks
        opt.step(closure)
        return self.last_loss

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
        rmse = torch.sqrt(torch.mean((self.model(x) - y) ** 2))
        self.log("val/rmse", rmse, prog_bar=True, batch_size=len(x))

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self.log("test/rmse", torch.sqrt(torch.mean((self.model(x) - y) ** 2)), batch_size=len(x))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return make_optimizer(self.model.parameters(), self.optim_cfg)

    def replace_model(self, model: nn.Module) -> None:
        """Swap in a new model (e.g. an extended-grid KAN) and rebuild the optimiser."""
        self.model = model.to(device=self.device, dtype=self.dtype)
        if self._trainer is not None:
            self.trainer.strategy.optimizers = [self.configure_optimizers()]

    @torch.no_grad()
    def rmse(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Root-mean-square error of the current model on ``(x, y)``."""
        was_training = self.model.training
        self.model.eval()
        try:
            return float(torch.sqrt(torch.mean((self.model(x) - y) ** 2)))
        finally:
            self.model.train(was_training)

    # checkpoints carry the model's config, so a model whose grid was extended mid-fit
    # can be rebuilt at the right size before its weights are loaded
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["model_config"] = model_config(self.model)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        spec = checkpoint.get("model_config")
        if spec and spec != model_config(self.model):
            from kanplatform.nn import build_model

            # the current model's dtype: ``self.dtype`` still says float32 here (the precision
            # plugin converts the module after the restore) and would round a float64 state
            dtype = next(self.model.parameters(), torch.empty(0, dtype=self.dtype)).dtype
            self.model = build_model(spec).to(device=self.device, dtype=dtype)


def finite(value: Any) -> bool:
    """True if ``value`` (a number or a 0-d tensor) is finite."""
    return value is not None and math.isfinite(float(value))
