"""kanplatform.nn: pure-PyTorch KAN and MLP models.

B-spline bases, the fast :class:`KANLayer`, :class:`KAN` (grid update and extension),
:class:`MLP`, regularisation, parameter/FLOP counting and the model registry.

Example:
    >>> from kanplatform.nn import KAN, MLP, build_model, count_params
    >>> kan = KAN(width=[2, 1, 1], grid_size=5, spline_order=3)
    >>> same = build_model(kan.config())
    >>> count_params(kan) == count_params(same)
    True
"""

from kanplatform.nn.basis import bspline_basis, bspline_local, uniform_grid
from kanplatform.nn.counting import count_flops, count_params, match_mlp, mlp_flops, mlp_params
from kanplatform.nn.functional import kan_linear, kan_linear_dense
from kanplatform.nn.kan import KAN
from kanplatform.nn.layer import KANLayer
from kanplatform.nn.mlp import MLP
from kanplatform.nn.registry import MODEL_REGISTRY, build_model, register_model
from kanplatform.nn.regularization import regularization

__all__ = [
    "KAN",
    "MLP",
    "MODEL_REGISTRY",
    "KANLayer",
    "bspline_basis",
    "bspline_local",
    "build_model",
    "count_flops",
    "count_params",
    "kan_linear",
    "kan_linear_dense",
    "match_mlp",
    "mlp_flops",
    "mlp_params",
    "register_model",
    "regularization",
    "uniform_grid",
]
