"""kanplatform.scaling: size sweeps and power-law fits with confidence intervals.

Example:
    >>> from kanplatform.scaling import fit_power_law
    >>> fit = fit_power_law([10, 100, 1000], [1e-1, 1e-3, 1e-5], n_boot=0)
    >>> round(fit.alpha, 3)
    2.0
"""

from kanplatform.scaling.fit import DroppedPoint, PowerLawFit, fit_power_law, tail_mask

__all__ = ["DroppedPoint", "PowerLawFit", "fit_power_law", "tail_mask"]
