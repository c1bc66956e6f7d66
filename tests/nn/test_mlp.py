"""MLP baseline."""

import pytest
import torch

from kanplatform.nn import MLP


def test_shapes_seed_and_activation() -> None:
    state = torch.get_rng_state()
    a, b = MLP(width=[2, 8, 8, 1], seed=3), MLP(width=[2, 8, 8, 1], seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    x = torch.rand(5, 2)
    assert torch.equal(a(x), b(x)) and a(x).shape == (5, 1)
    relu = MLP(width=[2, 8, 1], activation="relu", seed=0)
    h = torch.relu(relu.layers[0](x))
    assert torch.allclose(relu(x), relu.layers[1](h))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="width"):
        MLP(width=[4])
    with pytest.raises(ValueError, match="activation"):
        MLP(width=[2, 1], activation="nope")
