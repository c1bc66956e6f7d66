"""Feynman equations of the KAN paper (Table 6, dimensionless forms) as targets.

Names follow the Feynman dataset (``feynman_I_6_2`` is equation I.6.2). Ranges follow the
paper's sampling in [-1, 1] where the formula is finite there; variables in denominators,
square roots and logarithms are kept positive and away from their singularities.
"""

from __future__ import annotations

import numpy as np

from kanplatform.data.targets import register

pi = np.pi
S = (-1.0, 1.0)  # signed
P = (0.5, 2.0)   # positive, away from zero
U = (0.0, 1.0)

# name, formula, variables, ranges, fn(columns...)
_EQUATIONS = [
    ("I_6_2", "exp(-theta**2/(2*sigma**2)) / sqrt(2*pi*sigma**2)", ["theta", "sigma"], [S, P],
     lambda t, s: np.exp(-t**2 / (2 * s**2)) / np.sqrt(2 * pi * s**2)),
    ("I_6_2b", "exp(-(theta-theta1)**2/(2*sigma**2)) / sqrt(2*pi*sigma**2)",
     ["theta", "theta1", "sigma"], [S, S, P],
     lambda t, t1, s: np.exp(-(t - t1)**2 / (2 * s**2)) / np.sqrt(2 * pi * s**2)),
    ("I_9_18", "a / ((b-1)**2 + (c-d)**2 + (e-f)**2)", list("abcdef"),
     [S, (2.0, 3.0), S, (2.0, 3.0), S, (2.0, 3.0)],
     lambda a, b, c, d, e, f: a / ((b - 1)**2 + (c - d)**2 + (e - f)**2)),
    ("I_12_11", "1 + a*sin(theta)", ["a", "theta"], [S, S],
     lambda a, t: 1 + a * np.sin(t)),
    ("I_13_12", "a*(1/b - 1)", ["a", "b"], [S, P], lambda a, b: a * (1 / b - 1)),
    ("I_15_3x", "(1 - a) / sqrt(1 - b**2)", ["a", "b"], [S, (-0.9, 0.9)],
     lambda a, b: (1 - a) / np.sqrt(1 - b**2)),
    ("I_16_6", "(a + b) / (1 + a*b)", ["a", "b"], [(-0.9, 0.9), (-0.9, 0.9)],
     lambda a, b: (a + b) / (1 + a * b)),
    ("I_18_4", "(1 + a*b) / (1 + a)", ["a", "b"], [P, S], lambda a, b: (1 + a * b) / (1 + a)),
    ("I_26_2", "arcsin(n*sin(theta2))", ["n", "theta2"], [(0.0, 0.9), S],
     lambda n, t: np.arcsin(n * np.sin(t))),
    ("I_27_6", "1 / (1 + a*b)", ["a", "b"], [U, U], lambda a, b: 1 / (1 + a * b)),
    ("I_29_16", "sqrt(1 + a**2 - 2*a*cos(theta1 - theta2))", ["a", "theta1", "theta2"],
     [(1.5, 2.5), S, S], lambda a, t1, t2: np.sqrt(1 + a**2 - 2 * a * np.cos(t1 - t2))),
    ("I_30_3", "sin(n*theta/2)**2 / sin(theta/2)**2", ["n", "theta"], [S, (0.5, 2.0)],
     lambda n, t: np.sin(n * t / 2)**2 / np.sin(t / 2)**2),
    ("I_30_5", "arcsin(a/n)", ["a", "n"], [S, (1.0, 2.0)], lambda a, n: np.arcsin(a / n)),
    ("I_37_4", "1 + a + 2*sqrt(a)*cos(delta)", ["a", "delta"], [U, S],
     lambda a, d: 1 + a + 2 * np.sqrt(a) * np.cos(d)),
    ("I_40_1", "n0*exp(-a)", ["n0", "a"], [S, S], lambda n0, a: n0 * np.exp(-a)),
    ("I_44_4", "n*log(a)", ["n", "a"], [S, P], lambda n, a: n * np.log(a)),
    ("I_50_26", "cos(a) + alpha*cos(a)**2", ["a", "alpha"], [S, S],
     lambda a, al: np.cos(a) + al * np.cos(a)**2),
    ("II_2_42", "(a - 1)*b", ["a", "b"], [S, S], lambda a, b: (a - 1) * b),
    ("II_6_15a", "c*sqrt(a**2 + b**2) / (4*pi)", ["a", "b", "c"], [S, S, S],
     lambda a, b, c: c * np.sqrt(a**2 + b**2) / (4 * pi)),
    ("II_11_7", "n0*(1 + a*cos(theta))", ["n0", "a", "theta"], [S, S, S],
     lambda n0, a, t: n0 * (1 + a * np.cos(t))),
    ("II_11_27", "n*alpha / (1 - n*alpha/3)", ["n", "alpha"], [S, S],
     lambda n, al: n * al / (1 - n * al / 3)),
    ("II_35_18", "n0 / (exp(a) + exp(-a))", ["n0", "a"], [S, S],
     lambda n0, a: n0 / (np.exp(a) + np.exp(-a))),
    ("II_36_38", "a + alpha*b", ["a", "alpha", "b"], [S, S, S], lambda a, al, b: a + al * b),
    ("II_38_3", "a / b", ["a", "b"], [S, P], lambda a, b: a / b),
    ("III_9_52", "a*sin((b - c)/2)**2 / ((b - c)/2)**2", ["a", "b", "c"], [S, (1.0, 3.0), S],
     lambda a, b, c: a * np.sin((b - c) / 2)**2 / ((b - c) / 2)**2),
    ("III_10_19", "sqrt(1 + a**2 + b**2)", ["a", "b"], [S, S],
     lambda a, b: np.sqrt(1 + a**2 + b**2)),
    ("III_17_37", "beta*(1 + alpha*cos(theta))", ["alpha", "beta", "theta"], [S, S, S],
     lambda al, be, t: be * (1 + al * np.cos(t))),
]

for _name, _formula, _vars, _ranges, _fn in _EQUATIONS:
    register(f"feynman_{_name}", lambda x, f=_fn: f(*x.T), _ranges, _formula, "feynman", _vars)
