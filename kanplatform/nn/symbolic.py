"""Symbolic fitting of one KAN edge: the function library and the fit y ≈ c·f(a·x + b) + d.

The fit follows pykan (grid search over (a, b), zoom-ins, linear regression for (c, d), rank by
R² and complexity) but evaluates the whole (a, b) grid for one function in a single tensor
operation, refines the best candidate with a few Levenberg-Marquardt steps, and treats
singular functions explicitly: an (a, b) that puts a sample outside the function's domain
(1/x at 0, log of a non-positive number, arctanh outside (-1, 1), ...) is rejected instead of
producing NaN or infinite scores, and every evaluation projects onto the domain first.

Example:
    >>> x = torch.linspace(-1, 1, 200)
    >>> fit = fit_edge(x, 2 * torch.sin(3 * x + 1) - 0.5, "sin")
    >>> round(fit.a, 3), round(fit.b, 3), round(fit.c, 3), round(fit.d, 3)
    (3.0, 1.0, 2.0, -0.5)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import sympy
import torch
from torch import Tensor

_EPS = 1e-3  # distance kept from a singularity (1/x, log, arctanh, tan poles)
DEGENERATE_RATIO = 5.0  # mean |c·f(u)| / std(y) above this marks a cancellation fit
DEGENERATE_PENALTY = 2.0  # complexity added to such fits when ranking


@dataclass(frozen=True)
class SymbolicFunction:
    """One entry of the symbolic library.

    Attributes:
        name: key in the library ("sin", "x^2", ...).
        torch_fn: elementwise torch function, exact inside its domain.
        sympy_fn: the same function on a sympy expression.
        complexity: cost used when ranking fits (pykan's values: x 1, sin 2, arcsin 4, ...).
        domain: ``u -> bool tensor``, True where ``torch_fn`` is well defined (with a margin
            from singularities); None means everywhere.
        project: ``u -> u`` moving points onto the domain before evaluation; None means
            identity. Used by :meth:`safe` so evaluation never returns NaN.
    """

    name: str
    torch_fn: Callable[[Tensor], Tensor]
    sympy_fn: Callable[[sympy.Expr], sympy.Expr]
    complexity: float
    domain: Callable[[Tensor], Tensor] | None = None
    project: Callable[[Tensor], Tensor] | None = None

    def in_domain(self, u: Tensor) -> Tensor:
        """Bool tensor shaped like ``u``: where the function is defined."""
        ok = torch.isfinite(u)
        return ok if self.domain is None else ok & self.domain(u)

    def safe(self, u: Tensor) -> Tensor:
        """Evaluate with inputs projected onto the domain; never NaN or infinite."""
        if self.project is not None:
            u = self.project(u)
        out = self.torch_fn(u)
        big = torch.finfo(out.dtype).max / 4 if out.is_floating_point() else None
        return torch.nan_to_num(out, nan=0.0, posinf=big, neginf=-big)


def _away_from_zero(u: Tensor) -> Tensor:
    sign = torch.where(u < 0, -1.0, 1.0).to(u.dtype)
    return sign * u.abs().clamp(min=_EPS)


def _tan_project(u: Tensor) -> Tensor:
    # move points within _EPS of a pole (π/2 + kπ) to the pole ± _EPS
    k = torch.round((u - math.pi / 2) / math.pi)
    pole = math.pi / 2 + k * math.pi
    d = u - pole
    return torch.where(d.abs() < _EPS, pole + torch.where(d < 0, -_EPS, _EPS), u)


SYMBOLIC_LIB: dict[str, SymbolicFunction] = {}


def register_symbolic(
    name: str,
    torch_fn: Callable[[Tensor], Tensor],
    sympy_fn: Callable[[sympy.Expr], sympy.Expr],
    complexity: float,
    domain: Callable[[Tensor], Tensor] | None = None,
    project: Callable[[Tensor], Tensor] | None = None,
    *,
    overwrite: bool = False,
) -> SymbolicFunction:
    """Add a function to the symbolic library (used by every later fit).

    Args:
        name: library key; refused if taken unless ``overwrite``.
        torch_fn: elementwise torch function.
        sympy_fn: the same on sympy expressions (``sympy.sinh`` etc).
        complexity: ranking cost (x is 1, sin 2, arcsin 4).
        domain: optional ``u -> bool`` mask of where ``torch_fn`` is defined.
        project: optional map onto the domain used for safe evaluation.
        overwrite: replace an existing entry of the same name.

    Returns:
        The registered :class:`SymbolicFunction`.

    Raises:
        ValueError: if ``name`` is already registered and ``overwrite`` is False.

    Example:
        >>> register_symbolic("sinh", torch.sinh, sympy.sinh, 3)  # doctest: +SKIP
    """
    if name in SYMBOLIC_LIB and not overwrite:
        raise ValueError(f"symbolic function {name!r} already registered; pass overwrite=True")
    fn = SymbolicFunction(name, torch_fn, sympy_fn, complexity, domain, project)
    SYMBOLIC_LIB[name] = fn
    return fn


def _register_builtins() -> None:
    nonzero = lambda u: u.abs() >= _EPS  # noqa: E731
    reg = register_symbolic
    reg("0", lambda u: u * 0, lambda u: sympy.Integer(0), 0)
    reg("x", lambda u: u, lambda u: u, 1)
    reg("x^2", lambda u: u**2, lambda u: u**2, 2)
    reg("x^3", lambda u: u**3, lambda u: u**3, 3)
    reg("x^4", lambda u: u**4, lambda u: u**4, 3)
    reg("x^5", lambda u: u**5, lambda u: u**5, 3)
    reg("1/x", lambda u: 1 / u, lambda u: 1 / u, 2, nonzero, _away_from_zero)
    reg("1/x^2", lambda u: 1 / u**2, lambda u: 1 / u**2, 2, nonzero, _away_from_zero)
    reg("sqrt", torch.sqrt, sympy.sqrt, 2, lambda u: u >= 0, lambda u: u.clamp(min=0))
    reg(
        "1/sqrt(x)",
        torch.rsqrt,
        lambda u: 1 / sympy.sqrt(u),
        2,
        lambda u: u >= _EPS,
        lambda u: u.clamp(min=_EPS),
    )
    reg("exp", torch.exp, sympy.exp, 2, lambda u: u <= 50, lambda u: u.clamp(max=50))
    reg("log", torch.log, sympy.log, 2, lambda u: u >= _EPS, lambda u: u.clamp(min=_EPS))
    reg("abs", torch.abs, sympy.Abs, 3)
    reg("sin", torch.sin, sympy.sin, 2)
    reg("cos", torch.cos, sympy.cos, 2)
    reg("tan", torch.tan, sympy.tan, 3, lambda u: torch.cos(u).abs() >= _EPS, _tan_project)
    reg("tanh", torch.tanh, sympy.tanh, 3)
    reg("sgn", torch.sign, sympy.sign, 3)
    reg("arcsin", torch.arcsin, sympy.asin, 4, lambda u: u.abs() <= 1, lambda u: u.clamp(-1, 1))
    reg("arccos", torch.arccos, sympy.acos, 4, lambda u: u.abs() <= 1, lambda u: u.clamp(-1, 1))
    reg("arctan", torch.arctan, sympy.atan, 4)
    reg(
        "arctanh",
        torch.arctanh,
        sympy.atanh,
        4,
        lambda u: u.abs() <= 1 - _EPS,
        lambda u: u.clamp(-1 + _EPS, 1 - _EPS),
    )
    reg("gaussian", lambda u: torch.exp(-(u**2)), lambda u: sympy.exp(-(u**2)), 3)


_register_builtins()


def get_symbolic(name: str) -> SymbolicFunction:
    """Look up a library function by name, with the known names in the error."""
    try:
        return SYMBOLIC_LIB[name]
    except KeyError:
        raise KeyError(
            f"unknown symbolic function {name!r}; known: {sorted(SYMBOLIC_LIB)} "
            "(add your own with register_symbolic)"
        ) from None


@dataclass
class EdgeFit:
    """The best y ≈ c·f(a·x + b) + d for one function on one edge.

    Attributes:
        name: library function name.
        a, b, c, d: affine constants.
        r2: coefficient of determination on the samples (1 for a perfect fit; -inf when no
            (a, b) keeps every sample inside the function's domain).
        complexity: the library complexity of ``name``.
        score: ranking score (lower is better), see :func:`suggest_symbolic`.
        x_range: (min, max) of the samples the fit saw.
        note: why the fit is degenerate, if it is (singular domain, constant edge), else None.
    """

    name: str
    a: float
    b: float
    c: float
    d: float
    r2: float
    complexity: float
    score: float = math.inf
    x_range: tuple[float, float] = (-math.inf, math.inf)
    note: str | None = None

    def __call__(self, x: Tensor) -> Tensor:
        """Evaluate c·f(a·x + b) + d safely (domain-projected, never NaN)."""
        return self.c * get_symbolic(self.name).safe(self.a * x + self.b) + self.d

    def sympy(self, x: sympy.Expr, digits: int | None = None) -> sympy.Expr:
        """The fitted function of ``x`` as a sympy expression, constants rounded to ``digits``."""
        r = (lambda v: v) if digits is None else (lambda v: round(v, digits))
        f = get_symbolic(self.name).sympy_fn
        return sympy.Float(r(self.c)) * f(
            sympy.Float(r(self.a)) * x + sympy.Float(r(self.b))
        ) + sympy.Float(r(self.d))


def _r2_grid(F: Tensor, ok: Tensor, y: Tensor) -> Tensor:
    """R² of the best linear fit y ≈ c·F + d for every candidate row.

    F: (..., n) candidate values, ok: (...) valid candidates, y: (n,). Returns (...).
    """
    yc = y - y.mean()
    vy = (yc**2).mean()
    Fc = F - F.mean(-1, keepdim=True)
    vf = (Fc**2).mean(-1)
    cov = (Fc * yc).mean(-1)
    r2 = cov**2 / (vf * vy).clamp(min=1e-300)
    degenerate = vf <= 1e-20 * (1 + F.abs().amax(-1) ** 2)
    return torch.where(ok & ~degenerate & torch.isfinite(r2), r2, -math.inf)


def _linear_cd(f: Tensor, y: Tensor) -> tuple[float, float]:
    """Least-squares (c, d) for y ≈ c·f + d."""
    fc = f - f.mean()
    vf = (fc**2).mean()
    c = float((fc * (y - y.mean())).mean() / vf) if vf > 1e-30 else 0.0
    return c, float(y.mean() - c * f.mean())


def _r2_rows(fn: SymbolicFunction, A: Tensor, B: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """R² of the best c·f(a·x + b) + d for every (a, b) in ``A x B``: ``(len(A), len(B))``."""
    U = A[:, None, None] * x + B[None, :, None]  # (na, nb, n)
    if fn.domain is None:
        F = fn.torch_fn(U)
        finite = torch.isfinite(F)
        ok = finite.all(-1)
        F = torch.where(finite, F, 0.0)
    else:
        inside = fn.domain(U)
        F = fn.torch_fn(torch.where(inside, U, torch.ones_like(U)))
        inside &= torch.isfinite(F)
        ok = inside.all(-1)
        F = torch.where(inside, F, 0.0)
    return _r2_grid(F, ok, y)


def _search_ab(
    fn: SymbolicFunction, x: Tensor, y: Tensor, a_range, b_range, points: int, zooms: int
) -> tuple[float, float] | None:
    """Grid search with zoom-ins for (a, b); None if no candidate keeps x in the domain."""
    a_lo, a_hi = a_range
    b_lo, b_hi = b_range
    a = b = 0.0
    # rows of the (a, b) grid scored at once: each temporary stays ~1 MB, cache-sized; one
    # (na, nb, n) block per op (20 MB at 101 x 101 x 256) cost more in page faults than in
    # arithmetic. Every candidate's R² is computed exactly as in one block.
    rows = max(1, (1 << 17) // max(1, points * x.numel()))
    for level in range(zooms + 1):
        A = torch.linspace(a_lo, a_hi, points, dtype=x.dtype)
        B = torch.linspace(b_lo, b_hi, points, dtype=x.dtype)
        r2 = torch.cat([_r2_rows(fn, A[i : i + rows], B, x, y) for i in range(0, points, rows)])
        best = r2.max()
        if not torch.isfinite(best):
            return None
        if level == 0:
            # equivalent optima (sin(3x+1) = sin(-3x+π-1)): among near-best candidates take
            # the canonical one, a > 0 and |b| small, so fits are reproducible and readable
            near = r2 >= best - 1e-6 * max(1.0, float(1 - best))
            cost = (A[:, None] < 0) * 100.0 + B[None, :].abs() + 1e-3 * A[:, None].abs()
            i, j = divmod(int(torch.where(near, cost, math.inf).argmin()), points)
        else:
            i, j = divmod(int(r2.argmax()), points)
        a, b = float(A[i]), float(B[j])
        da, db = float(A[1] - A[0]), float(B[1] - B[0])
        a_lo, a_hi, b_lo, b_hi = a - da, a + da, b - db, b + db
    return a, b


def _refine(fn: SymbolicFunction, x: Tensor, y: Tensor, theta: Tensor, steps: int) -> Tensor:
    """Levenberg-Marquardt on (a, b, c, d) for sum (c·f(a·x+b)+d - y)², staying in domain."""

    def residual(t: Tensor) -> tuple[Tensor, Tensor, Tensor] | None:
        u = (t[0] * x + t[1]).detach().requires_grad_(True)
        if not bool(fn.in_domain(u).all()):
            return None
        fu = fn.torch_fn(u)
        (df,) = torch.autograd.grad(fu.sum(), u, allow_unused=True)
        df = torch.zeros_like(u) if df is None else df
        fu, u = fu.detach(), u.detach()
        r = t[2] * fu + t[3] - y
        J = torch.stack([t[2] * df * x, t[2] * df, fu, torch.ones_like(fu)], dim=1)
        return r, J, (r**2).sum()

    cur = residual(theta)
    if cur is None or not torch.isfinite(cur[2]):
        return theta
    lam = 1e-3
    for _ in range(steps):
        r, J, loss = cur
        JtJ = J.T @ J
        g = J.T @ r
        if not torch.isfinite(JtJ).all():
            break
        damp = lam * torch.diag(torch.diag(JtJ).clamp(min=1e-12))
        try:
            step = torch.linalg.solve(JtJ + damp, -g)
        except RuntimeError:
            break
        new = residual(theta + step)
        if new is not None and torch.isfinite(new[2]) and new[2] < loss:
            theta, cur, lam = theta + step, new, max(lam / 3, 1e-12)
            if (loss - new[2]) <= 1e-15 * (1 + loss):
                break
        else:
            lam *= 10
            if lam > 1e10:
                break
    return theta


def _flat_fit(fn: SymbolicFunction, mean: float, r2: float, x_range: tuple[float, float],
              note: str | None = None) -> EdgeFit:
    """The fit y = mean (c = 0): constant edges, the "0" function, failed searches."""
    return EdgeFit(fn.name, 1.0, 0.0, 0.0, mean, r2, fn.complexity, x_range=x_range, note=note)


def fit_edge(
    x: Tensor,
    y: Tensor,
    name: str,
    *,
    a_range: tuple[float, float] = (-10.0, 10.0),
    b_range: tuple[float, float] = (-10.0, 10.0),
    grid_points: int = 101,
    zooms: int = 3,
    refine_steps: int = 50,
    max_search_points: int = 256,
) -> EdgeFit:
    """Fit y ≈ c·f(a·x + b) + d for one library function f.

    The (a, b) grid (``grid_points``², ``zooms`` zoom-ins) is scored in one tensor operation
    per level on at most ``max_search_points`` samples, (c, d) come from linear regression,
    and Levenberg-Marquardt polishes all four constants on every sample.

    Args:
        x: (n,) edge inputs.
        y: (n,) edge outputs φ(x).
        name: library function name.
        a_range, b_range: initial search intervals for a and b.
        grid_points: candidates per axis.
        zooms: zoom-in rounds around the best candidate.
        refine_steps: Levenberg-Marquardt iterations (0 disables).
        max_search_points: samples used by the grid search (evenly strided subset).

    Returns:
        The :class:`EdgeFit` (``r2 == -inf`` and a ``note`` when f's domain excludes the
        data for every (a, b)).
    """
    fn = get_symbolic(name)
    x = x.detach().reshape(-1).to(torch.float64)
    y = y.detach().reshape(-1).to(torch.float64)
    if x.numel() != y.numel():
        raise ValueError(f"x has {x.numel()} samples, y has {y.numel()}")
    x_range = (float(x.min()), float(x.max()))
    vy = float(y.var(unbiased=False))
    mean = float(y.mean())
    if vy <= 1e-14 * (1 + mean**2):  # a constant edge: the "0" function is exact
        return _flat_fit(fn, mean, 1.0 if name == "0" else 0.0, x_range, "constant edge")
    if name == "0":
        return _flat_fit(fn, mean, 0.0, x_range)
    if name == "x":  # a and b are redundant with c and d
        c, d = _linear_cd(x, y)
        return EdgeFit(name, 1.0, 0.0, c, d, _r2(c * x + d, y), fn.complexity, x_range=x_range)

    stride = max(1, x.numel() // max_search_points)
    ab = _search_ab(fn, x[::stride], y[::stride], a_range, b_range, grid_points, zooms)
    if ab is None:
        return _flat_fit(fn, mean, -math.inf, x_range,
                         f"no (a, b) keeps the samples inside the domain of {name}")
    a, b = ab
    c, d = _linear_cd(fn.torch_fn(a * x + b), y)
    if not fn.in_domain(a * x + b).all():  # the subset was inside, a full-data sample is not
        return EdgeFit(
            name,
            a,
            b,
            c,
            d,
            -math.inf,
            fn.complexity,
            x_range=x_range,
            note=f"samples fall outside the domain of {name}",
        )
    theta = torch.tensor([a, b, c, d], dtype=torch.float64)
    if refine_steps:
        theta = _refine(fn, x, y, theta, refine_steps)
    a, b, c, d = _canonical(name, *(float(v) for v in theta))
    cf = c * fn.torch_fn(a * x + b)
    r2 = _r2(cf + d, y)
    note = None
    # cos(0.16·x) fits x² to R² ≈ 1 - 1e-7 by cancelling a huge constant (c ≈ -77, d ≈ 77):
    # a Taylor approximation, not the function. Flag it; suggest_symbolic penalises it.
    if float(cf.abs().mean()) > DEGENERATE_RATIO * math.sqrt(vy):
        note = "degenerate: c·f cancels a large constant (a Taylor approximation)"
    return EdgeFit(name, a, b, c, d, r2, fn.complexity, x_range=x_range, note=note)


_POWERS = {"x^2": 2, "x^3": 3, "x^4": 4, "x^5": 5, "1/x": -1, "1/x^2": -2}


def _canonical(name: str, a: float, b: float, c: float, d: float):
    """Same function, simpler constants: c·exp(a·x+b) = (c·e^b)·exp(a·x), for powers
    c·(a·x+b)^n = (c·a^n)·(x + b/a)^n, and periodic phases reduced to one period."""
    if name == "exp" and abs(b) < 50:
        return a, 0.0, c * math.exp(b), d
    if name in ("sin", "cos", "tan"):  # shift b into (-π, π] (tan: (-π/2, π/2])
        period = math.pi if name == "tan" else 2 * math.pi
        return a, b - period * round(b / period), c, d
    n = _POWERS.get(name)
    if n is not None and abs(a) > 1e-8:
        return 1.0, b / a, c * a**n, d
    return a, b, c, d


def _r2(pred: Tensor, y: Tensor) -> float:
    ss = float(((y - pred) ** 2).sum())
    tot = float(((y - y.mean()) ** 2).sum())
    if not math.isfinite(ss):
        return -math.inf
    return 1.0 - ss / tot if tot > 0 else (1.0 if ss == 0 else 0.0)


def rank_score(r2: float, complexity: float, weight_simple: float = 0.8) -> float:
    """pykan's ranking: weight·complexity + (1-weight)·log2(1 + 1e-5 - R²); lower is better."""
    if not math.isfinite(r2):
        return math.inf
    return weight_simple * complexity + (1 - weight_simple) * math.log2(
        max(1 + 1e-5 - min(r2, 1.0), 1e-12)
    )


def suggest_symbolic(
    x: Tensor,
    y: Tensor,
    lib: Iterable[str] | None = None,
    *,
    weight_simple: float = 0.8,
    **fit_kwargs,
) -> list[EdgeFit]:
    """Fit every library function to one edge and rank them (best first).

    Args:
        x: (n,) edge inputs.
        y: (n,) edge outputs.
        lib: function names to try; None means the whole library.
        weight_simple: weight of complexity against R² in :func:`rank_score`. Degenerate
            fits (a huge c·f(u) cancelled by d: a Taylor approximation, e.g. cos(0.16x) for
            x²) rank with ``DEGENERATE_PENALTY`` added to their complexity.
        **fit_kwargs: passed to :func:`fit_edge`.

    Returns:
        Fits sorted by score (lower first); fits with no valid domain come last.
    """
    names: Sequence[str] = list(SYMBOLIC_LIB) if lib is None else list(lib)
    fits = [fit_edge(x, y, n, **fit_kwargs) for n in names]
    for f in fits:
        penalty = DEGENERATE_PENALTY if f.note and f.note.startswith("degenerate") else 0.0
        f.score = rank_score(f.r2, f.complexity + penalty, weight_simple)
    return sorted(fits, key=lambda f: (f.score, f.complexity))
