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
from kanplatform.nn.registry import MODEL_REGISTRY, GridModel, build_model, register_model
from kanplatform.nn.regularization import regularization

__all__ = [
    "KAN",
    "MLP",
    "MODEL_REGISTRY",
    "GridModel",
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

# Interpretability (pruning, attribution, symbolic formulas): imported on first use, so that
# `import kanplatform.nn` does not pay for sympy.
from kanplatform.nn.attribution import attribute, feature_importance  # noqa: E402
from kanplatform.nn.prune import prune  # noqa: E402  (the function shadows the module name)

_LAZY = {
    "fit_edge": "kanplatform.nn.symbolic",
    "register_symbolic": "kanplatform.nn.symbolic",
    "suggest_symbolic": "kanplatform.nn.symbolic",
    "SYMBOLIC_LIB": "kanplatform.nn.symbolic",
    "SymbolicKAN": "kanplatform.nn.symbolic_kan",
    "auto_symbolic": "kanplatform.nn.symbolic_kan",
    "formula": "kanplatform.nn.symbolic_kan",
    "train_affine": "kanplatform.nn.symbolic_kan",
}
__all__ += ["attribute", "feature_importance", "prune", *sorted(_LAZY)]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kanplatform.nn' has no attribute {name!r}")
