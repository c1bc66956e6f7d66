"""Parameter and FLOP counts and match_mlp on hand-worked cases."""

import pytest

from kanplatform.nn import KAN, MLP, count_flops, count_params, match_mlp
from kanplatform.nn.counting import mlp_flops, mlp_params


def test_kan_params_hand_worked() -> None:
    kan = KAN(width=[2, 3, 1], grid_size=5, spline_order=3)
    # layer 1: 6 edges * (5 + 3 + 2) + 3 = 63; layer 2: 3 edges * 10 + 1 = 31
    assert count_params(kan) == 94
    assert count_params(kan, "fairer") == 94 + 6 + 3  # + in*out for the base function
    assert count_params(kan, "paper") == (6 + 3) * 5
    no_base = KAN(width=[2, 3, 1], grid_size=5, base_activation=None, bias=False)
    assert count_params(no_base) == 9 * (5 + 3 + 1)


def test_counts_follow_grid_size() -> None:
    kan = KAN(width=[2, 1, 1], grid_size=3)
    assert count_params(kan.extend_grid(10)) == count_params(kan) + 3 * 7


def test_mlp_params_and_flops_hand_worked() -> None:
    mlp = MLP(width=[2, 3, 1])
    assert count_params(mlp) == (2 * 3 + 3) + (3 + 1) == 13 == mlp_params([2, 3, 1])
    assert count_flops(mlp) == 2 * 2 * 3 + 5 * 3 + 2 * 3 * 1 == 33
    assert mlp_flops([4, 8, 8, 2], "relu") == 2 * 32 + 8 + 2 * 64 + 8 + 2 * 16


def test_kan_flops_hand_worked() -> None:
    kan = KAN(width=[2, 1], grid_size=5, spline_order=3)
    per_edge = 9 * 3 * (5 + 4.5) + 2 * 5 - 7.5 + 1  # 260
    assert count_flops(kan) == round(2 * per_edge) + 5 * 2 + 2 * 2 == 534
    # implementation: de Boor 30 per input, 8 per edge spline, 2 per edge base, silu, bias
    assert count_flops(kan, "implementation") == 2 * 30 + 2 * 8 + 2 * 5 + 2 * 2 + 1 == 91


def test_match_mlp_hand_worked() -> None:
    # params of [2, h, 1] = 4h + 1: budget 100 -> h = 25 (101) vs 24 (97)
    assert match_mlp(100, depth=1, in_features=2, out_features=1) == [2, 25, 1]
    # [2, h, h, 1]: h^2 + 5h + 1; budget 94 -> h = 7 (85) or 8 (105): 7 is closer
    kan = KAN(width=[2, 3, 1], grid_size=5)
    assert match_mlp(kan, depth=2) == [2, 7, 7, 1]
    assert match_mlp(kan) == [2, 23, 1]  # depth 1 (the KAN's): 4h + 1 ~ 94
    w = match_mlp(kan, by="flops")
    h = w[1]
    best = min(range(1, 2000), key=lambda v: abs(mlp_flops([2, v, 1]) - count_flops(kan)))
    assert h == best


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="by"):
        match_mlp(100, by="time", in_features=1, out_features=1)
    with pytest.raises(ValueError, match="in_features"):
        match_mlp(100)
    with pytest.raises(ValueError, match="depth"):
        match_mlp(100, depth=0, in_features=1, out_features=1)
    with pytest.raises(ValueError, match="convention"):
        count_params(MLP(width=[1, 1]), "bogus")


def test_flops_of_wrapped_models() -> None:
    import torch

    kan = KAN(width=[2, 3, 1], grid_size=5)
    assert count_flops(torch.nn.Sequential(kan)) == count_flops(kan)
    assert count_flops(torch.nn.Linear(4, 2)) == 16
    with pytest.raises(TypeError):
        count_flops(torch.nn.ReLU())
