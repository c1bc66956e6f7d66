"""Every registered model: build, forward, state_dict round trip, deepcopy, pickle, float64."""

import copy
import pickle

import pytest
import torch

from kanplatform.nn import MODEL_REGISTRY, GridModel, build_model

SMALL = {"kan": {"width": [3, 4, 2], "grid_size": 4}, "mlp": {"width": [3, 8, 2]}}


def _config(kind: str) -> dict:
    return {"kind": kind, **SMALL.get(kind, {"width": [3, 4, 2]})}


@pytest.mark.parametrize("kind", sorted(MODEL_REGISTRY))
def test_registered_model_contract(kind: str) -> None:
    model = build_model(_config(kind))
    x = torch.rand(16, 3)
    y = model(x)
    assert y.shape == (16, 2)
    y.sum().backward()
    clone = build_model(model.config())
    clone.load_state_dict(model.state_dict())
    assert torch.equal(clone(x), model(x))
    for other in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert torch.equal(other(x), model(x))
    model64 = copy.deepcopy(model).double()
    y64 = model64(x.double())
    assert y64.dtype == torch.float64
    assert torch.allclose(y64.float(), y, atol=1e-5)
    y64.sum().backward()


def test_unknown_kind_and_argument() -> None:
    with pytest.raises(ValueError, match="valid kinds"):
        build_model({"kind": "transformer"})
    with pytest.raises(ValueError, match="gird_size"):
        build_model({"kind": "kan", "width": [2, 1], "gird_size": 5})


def test_grid_model_is_a_capability_not_a_kind() -> None:
    kan, mlp = build_model(_config("kan")), build_model(_config("mlp"))
    assert isinstance(kan, GridModel) and not isinstance(mlp, GridModel)
    finer = kan.extend_grid(8)
    assert isinstance(finer, GridModel) and finer.grid_size == 8
