"""Symbolic fitting of single edges: accuracy, singular functions, ranking, extensibility."""

from __future__ import annotations

import math

import pytest
import sympy
import torch

from kanplatform.nn.symbolic import (
    SYMBOLIC_LIB,
    fit_edge,
    get_symbolic,
    register_symbolic,
    suggest_symbolic,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_fit_recovers_known_sine_constants_to_1e_3():
    x = torch.linspace(-1, 1, 400, dtype=torch.float64)
    fit = fit_edge(x, 2 * torch.sin(3 * x + 1) - 0.5, "sin")
    assert fit.r2 > 1 - 1e-10
    for got, want in zip((fit.a, fit.b, fit.c, fit.d), (3.0, 1.0, 2.0, -0.5)):
        assert abs(got - want) < 1e-3


def test_fit_refines_off_grid_constants():
    # a = 2.345, b = -0.777 lie between grid points: zoom-ins + Levenberg-Marquardt find them
    x = torch.rand(300, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 - 1
    y = -1.3 * torch.tanh(2.345 * x - 0.777) + 0.25
    fit = fit_edge(x, y, "tanh")
    assert (fit.a, fit.b, fit.c, fit.d) == pytest.approx((2.345, -0.777, -1.3, 0.25), abs=1e-4)


def test_suggest_ranks_the_true_function_first():
    x = torch.linspace(-1, 1, 300, dtype=torch.float64)
    fits = suggest_symbolic(x, 0.5 * torch.exp(1.5 * x) + 1, lib=["x", "x^2", "exp", "sin"])
    assert fits[0].name == "exp" and fits[0].r2 > 1 - 1e-9
    assert [f.score for f in fits] == sorted(f.score for f in fits)


@pytest.mark.parametrize("name", ["1/x", "log", "sqrt", "arctanh", "1/x^2", "tan", "arcsin"])
def test_singular_functions_never_nan(name):
    # data straddling 0 and beyond ±1: every singular function must return finite scores/fits
    x = torch.linspace(-3, 3, 200, dtype=torch.float64)
    y = torch.sin(x)
    fit = fit_edge(x, y, name)
    assert not math.isnan(fit.r2)
    for v in (fit.a, fit.b, fit.c, fit.d):
        assert math.isfinite(v)
    assert torch.isfinite(fit(torch.linspace(-10, 10, 101, dtype=torch.float64))).all()
    assert torch.isfinite(get_symbolic(name).safe(torch.tensor([0.0, -1.0, 1.0, 1e9]))).all()


def test_singular_fit_keeps_data_inside_domain():
    x = torch.linspace(0.1, 2, 200, dtype=torch.float64)
    fit = fit_edge(x, torch.log(x), "log")
    assert fit.r2 > 1 - 1e-9 and fit.note is None
    u = fit.a * x + fit.b
    assert (u > 0).all()
    fit = fit_edge(x, 3 / x, "1/x")
    assert fit.r2 > 1 - 1e-9


def test_domain_excluding_all_data_is_reported():
    # with a and b restricted to positive values, arcsin cannot see x ∈ [2, 3] inside [-1, 1]
    x = torch.linspace(2, 3, 50, dtype=torch.float64)
    fit = fit_edge(x, x, "arcsin", a_range=(1.0, 2.0), b_range=(0.0, 1.0))
    assert fit.r2 == -math.inf and "domain" in fit.note


def test_constant_edge_is_zero_function():
    x = torch.linspace(-1, 1, 50, dtype=torch.float64)
    fits = suggest_symbolic(x, torch.full_like(x, 0.7))
    assert fits[0].name == "0" and fits[0].d == pytest.approx(0.7) and fits[0].r2 == 1.0


def test_register_symbolic_extends_library():
    try:
        register_symbolic("sinh", torch.sinh, sympy.sinh, 3)
        with pytest.raises(ValueError, match="already registered"):
            register_symbolic("sinh", torch.sinh, sympy.sinh, 3)
        x = torch.linspace(-1, 1, 200, dtype=torch.float64)
        fits = suggest_symbolic(x, 2 * torch.sinh(1.7 * x), lib=["sinh", "x", "x^3"])
        assert fits[0].name == "sinh" and fits[0].r2 > 1 - 1e-9
        expr = fits[0].sympy(sympy.Symbol("x"), digits=3)
        assert expr.has(sympy.sinh)
    finally:
        SYMBOLIC_LIB.pop("sinh", None)


def test_unknown_function_names_library():
    with pytest.raises(KeyError, match="register_symbolic"):
        get_symbolic("nope")


def test_taylor_approximations_do_not_beat_the_true_function():
    # cos(a·x + b) with a → 0 fits x² almost perfectly by cancelling a huge constant
    x = torch.linspace(-1, 1, 300, dtype=torch.float64)
    y = x**2 + 1e-4 * torch.sin(7 * x)  # a spline-like imperfection
    fits = suggest_symbolic(x, y, lib=["cos", "x^2", "gaussian"])
    assert fits[0].name == "x^2"
    cos = next(f for f in fits if f.name == "cos")
    assert cos.note and cos.note.startswith("degenerate")
