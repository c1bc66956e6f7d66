"""A KAN whose edges are (partly) symbolic: ``auto_symbolic``, ``formula`` and affine training.

:func:`auto_symbolic` fits every edge of a trained KAN with :func:`suggest_symbolic` and
returns a :class:`SymbolicKAN`: an ``nn.Module`` where each accepted edge computes
``c·f(a·x + b) + d`` with trainable ``(a, b, c, d)``, and every edge whose best fit has
R² below the threshold stays the original spline (reported in ``.fits``). The model is
evaluable, differentiable and trainable (:func:`train_affine`), and :meth:`SymbolicKAN.formula`
composes the edges into one sympy expression.

Example:
    >>> sym = auto_symbolic(kan, x_train, lib=["x", "x^2", "sin", "exp"])
    >>> train_affine(sym, x_train, y_train)
    >>> sym.formula()[0]
    1.0*exp(1.0*x_1**2 + 1.0*sin(3.1416*x_1))
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import sympy
import torch
from torch import Tensor, nn

from kanplatform.nn.kan import KAN
from kanplatform.nn.layer import KANLayer
from kanplatform.nn.symbolic import EdgeFit, get_symbolic, suggest_symbolic

__all__ = [
    "EdgeReport",
    "SymbolicKAN",
    "SymbolicLayer",
    "auto_symbolic",
    "formula",
    "snap_constants",
    "train_affine",
]


@dataclass
class EdgeReport:
    """What :func:`auto_symbolic` did with one edge ``(layer, out, in)``.

    Attributes:
        layer, out, inp: the edge.
        fit: the best fit found (None for masked edges).
        accepted: True if the edge is now symbolic, False if it stays a spline.
        reason: why it was kept as a spline or set to zero ("masked", "r2 below ...").
    """

    layer: int
    out: int
    inp: int
    fit: EdgeFit | None
    accepted: bool
    reason: str = ""


class SymbolicLayer(nn.Module):
    """A KAN layer whose edges ``(o, i)`` in ``fits`` compute ``c·f(a·x_i + b) + d``.

    The remaining edges (and the node biases) are the original :class:`KANLayer`, with the
    symbolic edges masked out of it. ``affine`` holds ``(a, b, c, d)`` per symbolic edge.

    Args:
        layer: the trained KAN layer (copied).
        fits: ``{(out, in): EdgeFit}`` for the edges to make symbolic.
    """

    def __init__(self, layer: KANLayer, fits: dict[tuple[int, int], EdgeFit]) -> None:
        super().__init__()
        self.spline = copy.deepcopy(layer)
        self.edges = sorted(fits)  # [(out, in)]
        self.names = [fits[e].name for e in self.edges]
        with torch.no_grad():
            for o, i in self.edges:
                self.spline.mask[o, i] = 0.0
        dtype = layer.coef.dtype
        consts = [[fits[e].a, fits[e].b, fits[e].c, fits[e].d] for e in self.edges]
        self.affine = nn.Parameter(torch.tensor(consts, dtype=dtype).reshape(-1, 4))
        self.register_buffer("out_idx", torch.tensor([o for o, _ in self.edges], dtype=torch.long))
        self.register_buffer("in_idx", torch.tensor([i for _, i in self.edges], dtype=torch.long))
        self.fit_ranges = [fits[e].x_range for e in self.edges]

    @property
    def in_features(self) -> int:
        return self.spline.in_features

    @property
    def out_features(self) -> int:
        return self.spline.out_features

    def edge_symbolic(self, x: Tensor) -> Tensor:
        """Outputs of the symbolic edges, ``(batch, n_symbolic)`` (domain-safe, never NaN)."""
        a, b, c, d = self.affine.unbind(-1)
        u = a * x[:, self.in_idx] + b  # (B, E)
        f = u.new_zeros(u.shape)
        for name in dict.fromkeys(self.names):  # one evaluation per function
            sel = torch.tensor([n == name for n in self.names], device=x.device)
            f = _put(f, sel, get_symbolic(name).safe(u[:, sel]))
        return c * f + d

    def edge_activations(self, x: Tensor) -> Tensor:
        """Per-edge outputs ``(batch, out, in)``, symbolic and spline edges alike."""
        phi = self.spline.edge_activations(x)
        if self.edges:
            phi = phi.index_put(
                (
                    torch.arange(x.shape[0], device=x.device)[:, None],
                    self.out_idx[None, :],
                    self.in_idx[None, :],
                ),
                self.edge_symbolic(x).to(phi.dtype),
                accumulate=True,
            )
        return phi

    def input_range(self) -> Tensor:
        """Per input, the span of the spline grid and of the symbolic fits' data: ``(in, 2)``."""
        rng = self.spline.input_range()
        for (_, i), (lo, hi) in zip(self.edges, self.fit_ranges):
            rng[i, 0] = min(float(rng[i, 0]), lo)
            rng[i, 1] = max(float(rng[i, 1]), hi)
        return rng

    def forward(self, x: Tensor) -> Tensor:
        """``x: (batch, in)`` -> ``(batch, out)``."""
        y = self.spline(x)
        if self.edges:
            y = y.index_add(1, self.out_idx, self.edge_symbolic(x).to(y.dtype))
        return y


def _put(f: Tensor, sel: Tensor, val: Tensor) -> Tensor:
    out = f.clone()
    out[:, sel] = val
    return out


class SymbolicKAN(nn.Module):
    """A KAN with symbolic edges (see :func:`auto_symbolic`).

    Attributes:
        layers: the :class:`SymbolicLayer` stack.
        width: layer sizes, as the source KAN.
        fits: one :class:`EdgeReport` per edge.
    """

    def __init__(
        self, layers: Sequence[SymbolicLayer], width: Sequence[int], fits: Sequence[EdgeReport] = ()
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.width = list(width)
        self.fits = list(fits)

    def forward(self, x: Tensor) -> Tensor:
        """``x: (batch, width[0])`` -> ``(batch, width[-1])``."""
        for layer in self.layers:
            x = layer(x)
        return x

    @property
    def is_fully_symbolic(self) -> bool:
        """True when no unmasked spline edge remains."""
        return all(bool((layer.spline.mask == 0).all()) for layer in self.layers)

    def affine_parameters(self) -> list[nn.Parameter]:
        """The symbolic constants and node biases (what :func:`train_affine` trains)."""
        params = [layer.affine for layer in self.layers if layer.edges]
        return params + [
            layer.spline.bias for layer in self.layers if layer.spline.bias is not None
        ]

    @torch.no_grad()
    def check_inputs(self, x: Tensor) -> list[str]:
        """Warnings for inputs outside the range an edge was fitted on or outside its domain.

        Args:
            x: ``(batch, width[0])`` inputs to evaluate the model on.

        Returns:
            One line per offending edge; empty when every edge sees familiar, valid inputs.
        """
        notes = []
        for l, layer in enumerate(self.layers):
            a, b = layer.affine[:, 0], layer.affine[:, 1]
            for e, ((o, i), name) in enumerate(zip(layer.edges, layer.names)):
                xi = x[:, i]
                lo, hi = layer.fit_ranges[e]
                span = hi - lo
                out = ((xi < lo - 0.05 * span) | (xi > hi + 0.05 * span)).float().mean()
                if out > 0:
                    notes.append(
                        f"layer {l} edge {i}->{o} ({name}): {float(out):.1%} of "
                        f"inputs outside the fitted range [{lo:.3g}, {hi:.3g}]"
                    )
                bad = (~get_symbolic(name).in_domain(a[e] * xi + b[e])).float().mean()
                if bad > 0:
                    notes.append(
                        f"layer {l} edge {i}->{o} ({name}): {float(bad):.1%} of "
                        "inputs outside the function's domain (clipped)"
                    )
            x = layer(x)
        return notes

    def formula(
        self, input_names: Sequence[str] | None = None, digits: int = 4, simplify: bool = False
    ) -> list[sympy.Expr]:
        """The model as one sympy expression per output (see :func:`formula`)."""
        return formula(self, input_names, digits, simplify)


def auto_symbolic(
    model: KAN,
    x: Tensor,
    lib: Iterable[str] | None = None,
    *,
    r2_threshold: float = 0.99,
    weight_simple: float = 0.8,
    y: Tensor | None = None,
    retrain_steps: int = 0,
    **fit_kwargs,
) -> SymbolicKAN:
    """Replace every edge of ``model`` by its best symbolic fit on the batch ``x``.

    Each unmasked edge is fitted with :func:`~kanplatform.nn.symbolic.suggest_symbolic` on
    its inputs and outputs over ``x``; the best-ranked fit is accepted when its R² is at least
    ``r2_threshold``, otherwise the edge stays a spline and the report says so. Masked
    (pruned) edges become the zero function.

    Args:
        model: a trained (ideally pruned) KAN; unchanged.
        x: ``(batch, width[0])`` samples, ideally the training inputs.
        lib: library function names to try (None: the whole library).
        r2_threshold: minimum R² to accept a symbolic edge.
        weight_simple: complexity weight of the ranking.
        y: ``(batch, width[-1])`` targets; with ``retrain_steps`` > 0 the fit goes layer by
            layer: fix layer ``l``'s edges, retrain all remaining parameters (symbolic
            constants and the later splines) for ``retrain_steps`` LBFGS steps, then fit
            layer ``l + 1`` on the retrained model. The downstream splines absorb the
            inner layers' fit errors, which is what recovers products like ``xy``.
        retrain_steps: see ``y``.
        **fit_kwargs: passed to :func:`~kanplatform.nn.symbolic.fit_edge`.

    Returns:
        The :class:`SymbolicKAN`; ``.fits`` reports every edge.
    """
    lib = None if lib is None else list(lib)
    if lib is not None:
        for name in lib:
            get_symbolic(name)  # unknown names fail before any fitting
    dtype = model.layers[0].coef.dtype
    x = x.to(dtype)
    opts = dict(lib=lib, r2_threshold=r2_threshold, weight_simple=weight_simple, **fit_kwargs)
    if y is None or retrain_steps <= 0:
        with torch.no_grad():
            inputs, acts = model.layer_inputs(x), model.edge_activations(x)
        layers, reports = [], []
        for l, layer in enumerate(model.layers):
            accepted, rep = _fit_layer(layer, inputs[l], acts[l], l, **opts)
            layers.append(SymbolicLayer(layer, accepted))
            reports += rep
        return SymbolicKAN(layers, model.width, reports)
    # layer by layer: fix layer l, retrain everything downstream (pykan's fix_symbolic + fit)
    sym = SymbolicKAN([SymbolicLayer(layer, {}) for layer in model.layers], model.width)
    reports = []
    for l in range(len(model.layers)):
        with torch.no_grad():
            h = x
            for k in range(l):
                h = sym.layers[k](h)
            spline = sym.layers[l].spline
            phi = spline.edge_activations(h)
        accepted, rep = _fit_layer(spline, h, phi, l, **opts)
        sym.layers[l] = SymbolicLayer(spline, accepted)
        reports += rep
        if l < len(model.layers) - 1:
            train_affine(sym, x, y.to(dtype), steps=retrain_steps, all_params=True)
    sym.fits = reports
    return sym


def _fit_layer(layer: KANLayer, xin: Tensor, phi: Tensor, l: int, *, lib, r2_threshold: float,
               weight_simple: float, **fit_kwargs) -> tuple[dict, list[EdgeReport]]:
    """Best fits of one layer's unmasked edges: ``({(out, in): EdgeFit}, reports)``."""
    accepted: dict[tuple[int, int], EdgeFit] = {}
    reports = []
    for o in range(layer.out_features):
        for i in range(layer.in_features):
            if layer.mask[o, i] == 0:
                reports.append(EdgeReport(l, o, i, None, True, "masked"))
                continue
            fits = suggest_symbolic(xin[:, i], phi[:, o, i], lib, weight_simple=weight_simple,
                                    **fit_kwargs)
            # the best-ranked fit that passes the threshold (a simpler fit that fails it
            # must not hide a good one)
            best = next((f for f in fits if f.r2 >= r2_threshold), fits[0])
            if best.r2 >= r2_threshold:
                accepted[(o, i)] = best
                reports.append(EdgeReport(l, o, i, best, True))
            else:
                why = f"best fit {best.name} has R² {best.r2:.4f} < {r2_threshold}"
                why += "; kept as a spline"
                reports.append(EdgeReport(l, o, i, best, False, why))
    return accepted, reports


def lbfgs_steps(params: list[torch.nn.Parameter], loss_fn: Callable[[], Tensor], steps: int,
                lr: float = 1.0) -> None:
    """Full-batch LBFGS (the paper's recipe: strong Wolfe, history 10, 20 inner iterations).

    A step that makes the loss or a parameter non-finite is undone and training stops, so
    the parameters never end as NaN.

    Args:
        params: the parameters to train (those without ``requires_grad`` are skipped).
        loss_fn: returns the scalar loss (called inside the closure).
        steps: LBFGS steps.
        lr: LBFGS learning rate.
    """
    params = [p for p in params if p.requires_grad]
    if not params or steps <= 0:
        return
    opt = torch.optim.LBFGS(params, lr=lr, max_iter=20, history_size=10,
                            line_search_fn="strong_wolfe",
                            tolerance_grad=1e-14, tolerance_change=1e-16)

    def closure() -> Tensor:
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    for _ in range(steps):
        saved = [p.detach().clone() for p in params]
        loss = opt.step(closure)
        bad = not all(torch.isfinite(p).all() for p in params)
        if bad or not math.isfinite(float(loss.detach())):
            with torch.no_grad():
                for p, old in zip(params, saved):
                    p.copy_(old)
            return


def train_affine(
    model: SymbolicKAN,
    x: Tensor,
    y: Tensor,
    steps: int = 20,
    lr: float = 1.0,
    all_params: bool = False,
) -> float:
    """Retrain the symbolic constants and biases with full-batch LBFGS; return the RMSE.

    Only :meth:`SymbolicKAN.affine_parameters` move. A step that would make the loss
    non-finite is undone, so the model never ends with NaN constants.

    Args:
        model: the symbolic model (trained in place).
        x: ``(batch, width[0])`` inputs.
        y: ``(batch, width[-1])`` targets.
        steps: LBFGS steps (each up to 20 inner iterations).
        all_params: train every parameter (remaining splines too), not only the constants.
        lr: LBFGS learning rate.

    Returns:
        The RMSE on ``(x, y)`` after training.
    """
    params = list(model.parameters()) if all_params else model.affine_parameters()
    dtype = params[0].dtype if params else x.dtype
    x, y = x.to(dtype), y.to(dtype)
    lbfgs_steps(params, lambda: torch.mean((model(x) - y) ** 2), steps, lr=lr)
    with torch.no_grad():
        return float(torch.sqrt(torch.mean((model(x) - y) ** 2)))


def _round_floats(expr: sympy.Expr, digits: int) -> sympy.Expr:
    reps = {}
    for f in expr.atoms(sympy.Float):
        v = round(float(f), digits)
        reps[f] = sympy.Integer(0) if v == 0 else sympy.Float(v, 15)
    return expr.xreplace(reps)


def formula(
    model: SymbolicKAN,
    input_names: Sequence[str] | None = None,
    digits: int = 4,
    simplify: bool = False,
) -> list[sympy.Expr]:
    """Compose a symbolic model's edges into one sympy expression per output.

    Edges that stayed splines appear as undefined functions ``phi_<layer>_<out>_<in>(·)``.

    Args:
        model: the :class:`SymbolicKAN`.
        input_names: symbol names of the inputs (default ``x_1, x_2, ...``).
        digits: constants are rounded to this many decimals (0 below that precision).
        simplify: run ``sympy.simplify`` on each output (slow for large models).

    Returns:
        ``width[-1]`` sympy expressions.
    """
    names = list(input_names or [f"x_{i + 1}" for i in range(model.width[0])])
    if len(names) != model.width[0]:
        raise ValueError(f"{len(names)} input names for {model.width[0]} inputs")
    F = sympy.Float
    # node value = scale * expr + shift: hidden nodes are normalised so their largest term
    # has coefficient 1 and no constant; consumers absorb (scale, shift) into (a, b)
    nodes = [(sympy.Symbol(n, real=True), 1.0, 0.0) for n in names]
    last = len(model.layers) - 1
    for l, layer in enumerate(model.layers):
        sp = layer.spline
        terms: list[list[tuple[float, sympy.Expr]]] = [[] for _ in range(sp.out_features)]
        const = [float(sp.bias[o].detach()) if sp.bias is not None else 0.0
                 for o in range(sp.out_features)]
        for e, ((o, i), name) in enumerate(zip(layer.edges, layer.names)):
            a, b, c, d = (float(v) for v in layer.affine[e].detach())
            expr, s, t = nodes[i]
            A, B, C, D = _pull_out(name, a * s, a * t + b, c, d)
            const[o] += D
            if name != "0" and C != 0:
                fn = get_symbolic(name).sympy_fn
                terms[o].append((C, _round_floats(fn(F(A) * expr + F(B)), digits)))
        for o in range(sp.out_features):
            for i in range(sp.in_features):
                if sp.mask[o, i] != 0:
                    expr, s, t = nodes[i]
                    arg = _round_floats(F(s) * expr + F(t), digits)
                    terms[o].append((1.0, sympy.Function(f"phi_{l}_{o}_{i}")(arg)))
        out = []
        for o in range(sp.out_features):
            scale = max((abs(c) for c, _ in terms[o]), default=1.0) if l < last else 1.0
            scale = scale or 1.0
            sign = next((1.0 if c > 0 else -1.0 for c, _ in terms[o] if abs(c) == scale), 1.0)
            scale *= sign
            shift = const[o] if l < last else 0.0
            expr = sum((_round_floats(F(c / scale) * f, digits) for c, f in terms[o]),
                       sympy.Integer(0))
            if l == last:
                expr = expr + _round_floats(F(const[o]), digits)
            out.append((expr, scale, shift))
        nodes = out
    exprs = [e for e, _, _ in nodes]
    if simplify:
        exprs = [sympy.simplify(n) for n in exprs]
    return exprs


_HOMOGENEOUS = {"x": 1, "x^2": 2, "x^3": 3, "x^4": 4, "x^5": 5, "1/x": -1, "1/x^2": -2,
                "sqrt": 0.5, "1/sqrt(x)": -0.5}


def _pull_out(name: str, a: float, b: float, c: float, d: float):
    """Move the scale of f's argument into c where f allows it (same function):
    c·(a·u + b)^p = c·|a|^p·(±u + b/|a|)^p, c·exp(a·u + b) = c·e^b·exp(a·u)."""
    p = _HOMOGENEOUS.get(name)
    if name == "x":
        return 1.0, 0.0, c * a, c * b + d
    if p is not None and a != 0:
        if float(p).is_integer():
            return 1.0, b / a, c * a**p, d
        return (1.0 if a > 0 else -1.0), b / abs(a), c * abs(a) ** p, d
    if name == "exp" and abs(b) < 50:
        return a, 0.0, c * math.exp(b), d
    if name == "log" and a != 0:
        return (1.0 if a > 0 else -1.0), b / abs(a), c, d + c * math.log(abs(a))
    return a, b, c, d


def snap_constants(
    expr: sympy.Expr, tol: float = 1e-2, constants: Sequence[sympy.Expr] = (sympy.pi,)
) -> sympy.Expr:
    """Replace every float within ``tol`` of a simple number by that number.

    Candidates, simplest first: 0, integers, halves, thirds and quarters, then integer and
    half-integer multiples of each of ``constants`` (π by default) and their reciprocals.
    ``tol`` is absolute for |v| ≤ 1 and relative above. Floats near none stay as they are.

    Example:
        >>> snap_constants(1.0004 * sympy.sin(3.1409 * sympy.Symbol("x")))
        sin(pi*x)
    """

    def snap(v: float) -> sympy.Expr | None:
        t = tol * max(1.0, abs(v))
        cands: list[sympy.Expr] = [sympy.Integer(round(v))]
        cands += [sympy.Rational(round(v * q), q) for q in (2, 3, 4)]
        for c in constants:
            cv = float(c)
            cands += [
                sympy.Rational(round(2 * v / cv), 2) * c,
                sympy.Rational(2, round(2 * cv * v)) / c if round(2 * cv * v) else None,
            ]
        for cand in cands:
            if cand is not None and abs(float(cand) - v) <= t:
                return cand
        return None

    reps = {}
    for f in expr.atoms(sympy.Float):
        s = snap(float(f))
        if s is not None:
            reps[f] = s
    return expr.xreplace(reps)
