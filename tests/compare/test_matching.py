"""Matching by parameters and by FLOPs hits the budget within one hidden unit / grid interval."""

from __future__ import annotations

import pytest

from kanplatform.compare.matching import closest_knob, counts, size_arm, with_knob
from kanplatform.compare.spec import ArmSpec, CompareError
from kanplatform.nn import build_model, count_flops, count_params

KAN = {"kind": "kan", "width": [2, 2, 1], "grid_size": 5, "spline_order": 3,
       "grid_range": [-1.0, 1.0], "base_activation": "silu", "bias": True}
MLP = {"kind": "mlp", "width": [2, 8, 1], "activation": "silu", "bias": True}
ARMS = {
    "kan_grid": (ArmSpec(kind="kan", size="grid_size", hidden=[2]), KAN),
    "kan_width": (ArmSpec(kind="kan", size="width", depth=1), KAN),
    "mlp_d1": (ArmSpec(kind="mlp", size="width", depth=1), MLP),
    "mlp_d3_relu": (ArmSpec(kind="mlp", size="width", depth=3), {**MLP, "activation": "relu"}),
}
BUDGETS = {"params": [60, 97, 250, 1000, 3333], "flops": [1500, 2500, 9000, 40000]}


@pytest.mark.parametrize("name", sorted(ARMS))
@pytest.mark.parametrize("axis", ["params", "flops"])
def test_the_chosen_size_is_the_closest_one_step_away_at_most(name, axis):
    arm, model = ARMS[name]
    io = (2, 1)
    index = 0 if axis == "params" else 1
    for budget in BUDGETS[axis]:
        try:
            sized = size_arm(name, arm, model, io, axis, budget)
        except CompareError:
            continue  # outside this arm's range; the range errors are tested below
        k = sized.knob

        def cost(j: int) -> int:
            return counts(with_knob(arm, model, io, j))[index]

        # every other size is at least as far from the budget (brute force around it and
        # at the ends of a wide range)
        for j in [*range(max(1, k - 20), k + 21), 1, 2 * k + 50]:
            assert abs(cost(j) - budget) >= abs(sized.achieved - budget), (budget, k, j)
        # within one knob unit: the budget lies between the neighbours' counts
        assert cost(k - 1) <= budget <= cost(k + 1) if k > 1 else budget <= cost(k + 1)
        assert abs(sized.achieved - budget) <= sized.step
        # the recorded counts are those of the built model under the default conventions
        built = build_model(sized.model)
        assert (sized.params, sized.flops) == (count_params(built), count_flops(built))


def test_params_and_flops_matching_size_the_same_arm_differently():
    arm, model = ARMS["mlp_d1"]
    by_params = size_arm("mlp", arm, model, (2, 1), "params", 100)
    by_flops = size_arm("mlp", arm, model, (2, 1), "flops", 100)
    assert by_params.model["width"] == [2, 25, 1] and by_params.params == 101
    assert by_flops.model["width"] == [2, 9, 1] and by_flops.flops == 99  # 11 FLOPs per unit
    assert by_params.label == "w2-25-1"


def test_a_kan_is_sized_by_its_grid_one_interval_at_a_time():
    arm, model = ARMS["kan_grid"]
    sized = size_arm("kan", arm, model, (2, 1), "params", 100)
    # [2, 2, 1] KAN: 6 edges x (G + 3 + 2) + 3 biases = 6G + 33
    assert sized.knob == 11 and sized.params == 99 and sized.step == 6
    assert sized.model["width"] == [2, 2, 1] and sized.label == "w2-2-1-g11"


def test_budget_below_the_smallest_model_names_the_key():
    arm, model = ARMS["kan_grid"]
    with pytest.raises(CompareError, match=r"budgets\.params\[0\]=20: below the smallest kan "
                                           r"model \(grid_size=1: 39 params\)"):
        size_arm("kan", arm, model, (2, 1), "params", 20, "budgets.params[0]")


def test_budget_above_the_largest_model_names_the_key():
    arm = ArmSpec(kind="mlp", size="width", depth=1, max_size=16)
    with pytest.raises(CompareError, match=r"above the largest mlp model.*max_size"):
        size_arm("mlp", arm, MLP, (2, 1), "params", 1000, "budgets.params[1]")


def test_closest_knob_prefers_the_smaller_size_on_a_tie():
    assert closest_knob(lambda k: 10 * k, 15, 1, 100) == 1
    assert closest_knob(lambda k: 10 * k, 16, 1, 100) == 2
    assert closest_knob(lambda k: k * k, 10**6, 1, 10**4) == 1000
