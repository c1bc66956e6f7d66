"""kanplatform.scaling: size sweeps and power-law fits with confidence intervals.

``fit_power_law`` fits ``loss = a * N**-alpha (+ c)`` with a bootstrap CI, dropping diverged
points and the overfitting tail by stated rules; ``run_study`` trains a study's sizes through
Ray Tune and writes the table, ``scaling.json`` and the plots (``kanplatform scale``).

Example:
    >>> from kanplatform.scaling import fit_power_law
    >>> fit = fit_power_law([10, 100, 1000], [1e-1, 1e-3, 1e-5], n_boot=0)
    >>> round(fit.alpha, 3)
    2.0
    >>> from kanplatform.scaling import load_study, run_study
    >>> result = run_study(load_study("configs/scaling/tiny.yaml"))  # doctest: +SKIP
"""

from kanplatform.scaling.fit import DroppedPoint, PowerLawFit, fit_power_law, tail_mask
from kanplatform.scaling.spec import StudyError, StudySpec, Trial, expand, load_study
from kanplatform.scaling.study import StudyResult, run_study

__all__ = [
    "DroppedPoint",
    "PowerLawFit",
    "StudyError",
    "StudyResult",
    "StudySpec",
    "Trial",
    "expand",
    "fit_power_law",
    "load_study",
    "run_study",
    "tail_mask",
]
