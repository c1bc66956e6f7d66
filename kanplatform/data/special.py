"""Special functions of the KAN paper (§3.2, Table 2) as two-input targets f(x, y).

Ranges: orders and parameters in [0, 1] or [-1, 1]; arguments where the function is real
and finite (Bessel Y and K avoid the singularity at 0; Legendre arguments lie in [-0.9, 0.9],
away from the singularities at +-1;
spherical harmonics take the polar angle in [0, pi] and the azimuth in [0, 2*pi]).
Complex spherical harmonics (m != 0) are registered as real and imaginary parts.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from kanplatform.data.targets import register


def _two(fn):
    return lambda x: fn(x[:, 0], x[:, 1])


def _sph(n: int, m: int, part: str):
    def fn(x):
        y = special.sph_harm_y(n, m, x[:, 0], x[:, 1])
        return np.real(y) if part == "re" else np.imag(y)

    return fn


_UNIT = (0.0, 1.0)
_SIGNED = (-1.0, 1.0)
_ANGLES = [(0.0, np.pi), (0.0, 2 * np.pi)]

register("ellipj", _two(lambda u, m: special.ellipj(u, m)[0]), [_SIGNED, _UNIT],
         "sn(x | y), Jacobian elliptic function", "special", ["x", "y"])
register("ellipkinc", _two(special.ellipkinc), [_SIGNED, _UNIT],
         "F(x | y), incomplete elliptic integral of the first kind", "special", ["x", "y"])
register("ellipeinc", _two(special.ellipeinc), [_SIGNED, _UNIT],
         "E(x | y), incomplete elliptic integral of the second kind", "special", ["x", "y"])
register("jv", _two(special.jv), [_UNIT, _UNIT],
         "J_x(y), Bessel function of the first kind", "special", ["x", "y"])
register("yv", _two(special.yv), [_UNIT, (0.2, 1.0)],
         "Y_x(y), Bessel function of the second kind", "special", ["x", "y"])
register("kv", _two(special.kv), [_UNIT, (0.2, 1.0)],
         "K_x(y), modified Bessel function of the second kind", "special", ["x", "y"])
register("iv", _two(special.iv), [_UNIT, _UNIT],
         "I_x(y), modified Bessel function of the first kind", "special", ["x", "y"])
for _m in (0, 1, 2):
    register(f"lpmv_m_{_m}", _two(lambda v, z, m=_m: special.lpmv(m, v, z)), [_UNIT, (-0.9, 0.9)],
             f"P_x^{_m}(y), associated Legendre function (m={_m})", "special", ["x", "y"])
for _m, _n in ((0, 1), (1, 1), (0, 2), (1, 2), (2, 2)):
    register(f"sph_harm_m_{_m}_n_{_n}", _sph(_n, _m, "re"), _ANGLES,
             f"Re Y_{_n}^{_m}(theta, phi), spherical harmonic", "special", ["theta", "phi"])
    if _m:
        register(f"sph_harm_m_{_m}_n_{_n}_imag", _sph(_n, _m, "im"), _ANGLES,
                 f"Im Y_{_n}^{_m}(theta, phi), spherical harmonic", "special", ["theta", "phi"])
