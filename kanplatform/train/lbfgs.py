"""LBFGS on one flat parameter vector, its step on numpy views: torch's algorithm, cheaply.

``torch.optim.LBFGS`` keeps the parameters as separate tensors and, in every line-search
evaluation, adds the step to each, gathers the gradients into a new flat vector and copies
the parameters back, each a loop of small tensor ops, and runs its line search and two-loop
recursion on 0-d tensors: for the paper's tiny KANs (one C call per evaluation) that
bookkeeping cost about twice the evaluations. :class:`FlatLBFGS` moves the parameters and
their gradients into one contiguous buffer each (the parameters become views of it; a loss
function that writes the gradients in place, :class:`kanplatform.nn.fused.FusedMSE`, fills
the flat gradient directly) and runs torch's step -- the same decisions in the same order,
the same state layout, so checkpoints load into either optimiser -- on numpy views of those
buffers with Python-float scalars (:mod:`kanplatform.train.wolfe` for the line search). The
iterates equal ``torch.optim.LBFGS``'s to rounding, not bit for bit (numpy's dot products and
float scalars round differently; tested on short runs, and fits reach the same loss).

The flat layout is re-made if a parameter's storage is replaced behind the optimiser (e.g.
``module.to(...)``); under ``torch.distributed`` (DDP keeps its own view of the
parameters) the parameters are left as they are and torch's own step runs, as it does for
parameters off the CPU.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

from kanplatform.train.wolfe import strong_wolfe

__all__ = ["FlatLBFGS"]

_GRAD = operator.attrgetter("grad")


class FlatLBFGS(torch.optim.LBFGS):
    """``torch.optim.LBFGS`` (same arguments and state, results to rounding) over flat
    parameters.

    Example:
        >>> opt = FlatLBFGS(model.parameters(), line_search_fn="strong_wolfe")  # doctest: +SKIP
        >>> opt.step(closure)                                                   # doctest: +SKIP
    """

    def __init__(self, params: Iterable[torch.Tensor], **kwargs) -> None:  # noqa: ANN003
        super().__init__(params, **kwargs)
        self._flat: torch.Tensor | None = None
        self._flat_grad: torch.Tensor | None = None
        self._grad_views: list[torch.Tensor] = []
        self._flatten()

    def _flatten(self) -> None:
        """Move the parameters (and gradient buffers) into one contiguous vector each."""
        params = self._params
        if (torch.distributed.is_available() and torch.distributed.is_initialized()) or \
                len({(p.dtype, p.device) for p in params}) != 1 or \
                any(torch.is_complex(p) or p.is_sparse for p in params):
            self._flat = None
            return
        with torch.no_grad():
            flat = torch.cat([p.detach().reshape(-1) for p in params])
            flat_grad = torch.zeros_like(flat)
            views, offset = [], 0
            for p in params:
                n = p.numel()
                p.data = flat[offset:offset + n].view_as(p)
                g = flat_grad[offset:offset + n].view_as(p)
                if p.grad is not None:
                    g.copy_(p.grad)
                p.grad = g
                views.append(g)
                offset += n
        self._flat, self._flat_grad, self._grad_views = flat, flat_grad, views
        if flat.device.type == "cpu":  # numpy views: the step's vector arithmetic
            self._x_np, self._g_np = flat.numpy(), flat_grad.numpy()
        self._ptrs = [p.data_ptr() for p in params]

    def ensure_flat(self) -> bool:
        """Check the layout (every step does at its start): rebuilt if a parameter's storage
        was replaced (e.g. ``.to()``, as a trainer's precision set-up does after the optimiser
        is made); gradient views re-attached where someone set ``.grad`` (e.g.
        ``module.zero_grad()`` sets ``None``; a step starts by re-evaluating them anyway).
        Call it before binding tensors for a step (:meth:`FusedMSE.prepare`): a rebuild
        moves the parameters. Returns whether the parameters are flat."""
        if self._flat is None:
            return False
        if any(p.data_ptr() != q for p, q in zip(self._params, self._ptrs)):
            self._flatten()
        for p, g in zip(self._params, self._grad_views):
            if p.grad is not g:
                p.grad = g
        return self._flat is not None

    @torch.no_grad()
    def step(self, closure, evaluate=None):  # type: ignore[override]  # noqa: ANN001, ANN201
        """One LBFGS step (see ``torch.optim.LBFGS.step``).

        Args:
            closure: re-evaluates the loss and its gradients, returns the loss.
            evaluate: the same function without a trainer's per-call hooks: when given,
                ``closure`` runs for the step's first evaluation and ``evaluate`` for the
                line search's (Lightning's precision plugin wraps ``closure`` in hooks that
                cost more than a small KAN's whole evaluation; they then run once per
                step, as for any optimiser).
        """
        self.ensure_flat()
        group = self.param_groups[0]
        if self._flat is not None and self._flat.device.type == "cpu" and \
                group["line_search_fn"] in (None, "strong_wolfe"):
            later = closure if evaluate is None else evaluate
            return self._flat_step(torch.enable_grad()(closure), torch.enable_grad()(later))
        if evaluate is not None:
            first = [True]
            inner = closure

            def closure():  # noqa: ANN202
                if first[0]:
                    first[0] = False
                    return inner()
                return evaluate()

        return super().step(closure)

    def _grad(self) -> np.ndarray:
        """A copy of the flat gradient (gathered where a closure replaced ``.grad``)."""
        if all(map(operator.is_, map(_GRAD, self._params), self._grad_views)):
            return self._g_np.copy()
        return super()._gather_flat_grad().numpy()

    def _flat_step(self, first: Callable[[], Any], later: Callable[[], Any]) -> Any:
        """torch's LBFGS step (the same decisions, in the same order) on numpy views of the
        flat vectors, scalars as Python floats: a few array ops per evaluation instead of
        dozens of tensor ops. ``first`` makes the step's first evaluation, ``later`` the
        others; the state is kept in torch's layout (tensors, floats)."""
        group = self.param_groups[0]
        lr, max_iter, max_eval = float(group["lr"]), group["max_iter"], group["max_eval"]
        tol_grad, tol_change = group["tolerance_grad"], group["tolerance_change"]
        line_search, history_size = group["line_search_fn"], group["history_size"]
        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)
        x = self._x_np  # the parameters, in place

        orig_loss = first()
        loss = float(orig_loss)
        current_evals = 1
        state["func_evals"] += 1
        flat_grad = self._grad()
        if np.abs(flat_grad).max() <= tol_grad:
            return orig_loss
        d, t, old_dirs, old_stps, ro, h_diag, prev_flat_grad, prev_loss = _load(state)

        def obj_func(x_init: np.ndarray, step: float, d: np.ndarray) -> tuple[float, np.ndarray]:
            np.add(x_init, step * d, out=x)
            f = float(later())
            g = self._grad()
            np.copyto(x, x_init)
            return f, g

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d = -flat_grad
                old_dirs, old_stps, ro, h_diag = [], [], [], 1.0
            else:
                y = flat_grad - prev_flat_grad
                s = d * t
                ys = float(y @ s)
                if ys > 1e-10:
                    if len(old_dirs) == history_size:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    h_diag = ys / float(y @ y)
                d = _two_loop(flat_grad, old_dirs, old_stps, ro, h_diag)
            if prev_flat_grad is None:
                prev_flat_grad = flat_grad.copy()
            else:
                np.copyto(prev_flat_grad, flat_grad)
            prev_loss = loss

            if state["n_iter"] == 1:
                total = float(np.abs(flat_grad).sum())
                t = (min(1.0, 1.0 / total) if total > 0 else 1.0) * lr
            else:
                t = lr
            gtd = float(flat_grad @ d)
            if gtd > -tol_change:
                break

            ls_func_evals = 0
            if line_search is not None:
                x_init = x.copy()
                loss, flat_grad, t, ls_func_evals = strong_wolfe(
                    obj_func, x_init, t, d, loss, flat_grad, gtd,
                    max_ls=max_eval - current_evals)
                x += t * d
                opt_cond = np.abs(flat_grad).max() <= tol_grad
            else:
                x += t * d
                opt_cond = False
                if n_iter != max_iter:
                    loss = float(later())
                    flat_grad = self._grad()
                    opt_cond = np.abs(flat_grad).max() <= tol_grad
                    ls_func_evals = 1
            current_evals += ls_func_evals
            state["func_evals"] += ls_func_evals

            if n_iter == max_iter or current_evals >= max_eval or opt_cond:
                break
            if np.abs(d * t).max() <= tol_change or abs(loss - prev_loss) < tol_change:
                break

        _save(state, d, t, old_dirs, old_stps, ro, h_diag, prev_flat_grad, prev_loss)
        return orig_loss

    def _gather_flat_grad(self) -> torch.Tensor:
        if self._flat is not None and all(
                p.grad is g for p, g in zip(self._params, self._grad_views)):
            return self._flat_grad.clone()  # a new tensor, as torch.cat returns
        return super()._gather_flat_grad()

    def _clone_param(self) -> list[torch.Tensor]:
        if self._flat is None:
            return super()._clone_param()
        return [self._flat.clone()]

    def _set_param(self, params_data) -> None:  # noqa: ANN001
        if self._flat is None:
            return super()._set_param(params_data)
        self._flat.copy_(params_data[0])

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero the gradients; they stay in the flat buffer (``set_to_none`` is honoured only
        where the parameters are not flat)."""
        if self._flat is None:
            return super().zero_grad(set_to_none)
        for p, g in zip(self._params, self._grad_views):
            p.grad = g
        self._flat_grad.zero_()


def _two_loop(flat_grad: np.ndarray, old_dirs: list[np.ndarray], old_stps: list[np.ndarray],
              ro: list[float], h_diag: float) -> np.ndarray:
    """The L-BFGS direction ``-H g`` of torch's two-loop recursion, in matrix form.

    Both loops' dot products expand into the history's inner products: with ``A[i][j] =
    s_i . y_j``, the first loop's ``s_i . q_i = -s_i . g - sum_{j > i} al_j A[i][j]`` and the
    second's ``y_i . r_i = y_i . r_0 + sum_{j < i} (al_j - be_j) A[j][i]``, so the vectors
    are touched by four matrix-vector products and one small matrix product, the recursion
    runs on floats (torch: four vector ops per history entry). Equal to rounding.
    """
    m = len(old_dirs)
    if m == 0:
        return -flat_grad * h_diag
    s_mat, y_mat = np.array(old_stps), np.array(old_dirs)  # (m, n), oldest first
    a = (s_mat @ y_mat.T).tolist()  # a[i][j] = s_i . y_j
    sg = (s_mat @ flat_grad).tolist()
    al = [0.0] * m
    for i in range(m - 1, -1, -1):
        acc, row = -sg[i], a[i]
        for j in range(i + 1, m):
            acc -= al[j] * row[j]
        al[i] = acc * ro[i]
    q = -flat_grad - np.array(al, dtype=y_mat.dtype) @ y_mat
    r = q * h_diag
    yr = (y_mat @ r).tolist()
    c = [0.0] * m  # al_i - be_i
    for i in range(m):
        acc = yr[i]
        for j in range(i):
            acc += c[j] * a[j][i]
        c[i] = al[i] - acc * ro[i]
    return r + np.array(c, dtype=s_mat.dtype) @ s_mat


def _array(t: Any) -> np.ndarray | None:
    return None if t is None else t.detach().cpu().numpy()


def _load(state: dict[str, Any]) -> tuple[Any, ...]:
    """The step's state as numpy views and floats, from torch's layout (ours or
    ``torch.optim.LBFGS``'s: its scalars may be 0-d tensors)."""
    t, h_diag, prev_loss = state.get("t"), state.get("H_diag"), state.get("prev_loss")
    return (_array(state.get("d")), None if t is None else float(t),
            [_array(v) for v in state.get("old_dirs") or []],
            [_array(v) for v in state.get("old_stps") or []],
            [float(v) for v in state.get("ro") or []],
            1.0 if h_diag is None else float(h_diag), _array(state.get("prev_flat_grad")),
            None if prev_loss is None else float(prev_loss))


def _save(state: dict[str, Any], d: np.ndarray, t: float, old_dirs: list[np.ndarray],
          old_stps: list[np.ndarray], ro: list[float], h_diag: float,
          prev_flat_grad: np.ndarray | None, prev_loss: float | None) -> None:
    """Keep the state in torch's layout (tensors sharing the arrays' memory, floats), so
    checkpoints load into ``torch.optim.LBFGS`` and back."""
    tensor = torch.from_numpy
    state.update({
        "d": tensor(d), "t": t, "old_dirs": [tensor(v) for v in old_dirs],
        "old_stps": [tensor(v) for v in old_stps], "ro": ro, "H_diag": h_diag,
        "prev_flat_grad": None if prev_flat_grad is None else tensor(prev_flat_grad),
        "prev_loss": prev_loss,
    })
