"""kanplatform.compare: fair KAN-vs-MLP studies with verdicts, N(eps) and extrapolation.

A study (``configs/compare/*.yaml``) names tasks, arms, budgets, seeds and a metric;
``run_compare`` sizes every arm to every budget by parameters and by FLOPs, optionally
tunes each arm with the same number of Ray Tune trials, trains every seed as a Tune trial,
and writes the cells (mean, 95% CI), per-budget verdicts (paired t-test over seeds), N(eps),
the out-of-domain errors, figures, ``report.html`` and a W&B run (``kanplatform compare``).

Example:
    >>> from kanplatform.compare import paired_verdict
    >>> paired_verdict({0: 1.0, 1: 1.1, 2: 0.9}, {0: 1.05, 1: 1.0, 2: 0.95},
    ...                ("kan", "mlp")).winner
    'tie'
    >>> from kanplatform.compare import load_compare, run_compare
    >>> result = run_compare(load_compare("configs/compare/demo.yaml"))  # doctest: +SKIP
"""

from kanplatform.compare.spec import CompareError, CompareSpec, load_compare, parse_compare
from kanplatform.compare.stats import mean_ci, paired_verdict


def __getattr__(name: str):
    # the planner and runner import torch and the config machinery: load them when asked
    if name in ("run_compare", "CompareResult"):
        from kanplatform.compare import run

        return getattr(run, name)
    if name in ("plan_study", "Plan"):
        from kanplatform.compare import plan

        return getattr(plan, name)
    raise AttributeError(name)


__all__ = [
    "CompareError",
    "CompareResult",
    "CompareSpec",
    "Plan",
    "load_compare",
    "mean_ci",
    "paired_verdict",
    "parse_compare",
    "plan_study",
    "run_compare",
]
