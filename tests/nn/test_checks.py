"""``check_model_args``: the constructors' checks, without building a model."""

from __future__ import annotations

import pytest

from kanplatform.nn import KAN, MLP, build_model
from kanplatform.nn.checks import ModelArgError, check_model_args

BAD = [
    ({"kind": "kan", "width": [2, 1], "spline_order": 0}, "spline_order"),
    ({"kind": "kan", "width": [2, 1], "spline_order": 2.5}, "spline_order"),
    ({"kind": "kan", "width": [2, 1], "grid_size": 0}, "grid_size"),
    ({"kind": "kan", "width": [2, 1], "grid_range": [1.0, -1.0]}, "grid_range"),
    ({"kind": "kan", "width": [2, 1], "grid_eps": 2.0}, "grid_eps"),
    ({"kind": "kan", "width": [2, 1], "base_activation": "swish"}, "base_activation"),
    ({"kind": "kan", "width": [2]}, "width"),
    ({"kind": "kan", "width": [2, 1], "spline": 3}, "spline"),
    ({"kind": "mlp", "width": [2, 0, 1]}, "width"),
    ({"kind": "mlp", "width": [2, 4, 1], "activation": None}, "activation"),
    ({"kind": "cnn"}, "kind"),
]


@pytest.mark.parametrize("config, arg", BAD, ids=[a for _, a in BAD])
def test_a_bad_argument_is_named_and_building_fails_the_same_way(config, arg):
    with pytest.raises(ModelArgError) as err:
        check_model_args(config)
    assert err.value.arg == arg
    with pytest.raises(ValueError):  # the constructor refuses it too: the checks agree
        build_model(config)


def test_good_arguments_pass_for_every_registered_model():
    for model in (KAN(width=[2, 3, 1], grid_size=4, spline_order=1), MLP(width=[2, 8, 1])):
        check_model_args(model.config())


def test_huge_widths_are_checked_without_building_anything():
    check_model_args({"kind": "kan", "width": [10**6, 10**6, 1], "grid_size": 1000})
