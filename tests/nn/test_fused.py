"""FusedMSE: a KAN's MSE loss and gradients in one compiled call, equal bit for bit to
``torch.mean((kan(x) - y) ** 2).backward()``, and refused where it does not apply."""

import pytest
import torch

from kanplatform.nn import KAN, MLP
from kanplatform.nn.fused import FusedMSE


def _plain(model, x, y) -> list[torch.Tensor]:
    for p in model.parameters():
        p.grad = None
    loss = torch.mean((model(x) - y) ** 2)
    loss.backward()
    return [loss.detach().clone()] + [p.grad.clone() for p in model.parameters()]


def _fused(model, x, y, fn=None) -> list[torch.Tensor]:
    fn = fn or FusedMSE(model, x, y)
    loss = fn()
    return [loss] + [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize(("width", "g", "k", "dtype", "kwargs"), [
    ([2, 1, 1], 5, 3, torch.float64, {}),
    ([2, 5, 1], 50, 3, torch.float64, {}),
    ([3, 4, 2], 7, 2, torch.float32, {}),
    ([4, 9, 9, 3], 3, 3, torch.float32, {"bias": False}),
    ([2, 3, 1], 5, 3, torch.float64, {"base_activation": None}),
])
def test_equals_the_plain_loss_and_gradients_bitwise(width, g, k, dtype, kwargs) -> None:
    kan = KAN(width, grid_size=g, spline_order=k, seed=0, **kwargs).to(dtype)
    gen = torch.Generator().manual_seed(1)
    x = (2.6 * torch.rand(700, width[0], generator=gen) - 1.3).to(dtype)  # some beyond the grid
    y = torch.randn(700, width[-1], generator=gen).to(dtype)
    kan.update_grid(x)
    assert FusedMSE.supported(kan, x, y)
    ref, got = _plain(kan, x, y), _fused(kan, x, y)
    assert len(ref) == len(got)
    for a, b in zip(ref, got):
        assert torch.equal(a, b)


def test_follows_in_place_changes_and_replaced_tensors() -> None:
    """Parameters changed in place, an adapted grid, replaced gradients and a replaced
    coefficient tensor are all seen by the next call."""
    kan = KAN([2, 3, 1], grid_size=5, seed=0).double()
    x = torch.rand(300, 2, dtype=torch.float64) * 2 - 1
    y = torch.rand(300, 1, dtype=torch.float64)
    fused = FusedMSE(kan, x, y)
    _fused(kan, x, y, fused)
    with torch.no_grad():
        for p in kan.parameters():
            p.add_(0.01 * torch.randn_like(p))
    assert all(torch.equal(a, b) for a, b in zip(_plain(kan, x, y), _fused(kan, x, y, fused)))
    kan.update_grid(x * 1.5)
    for p in kan.parameters():
        p.grad = None
    assert all(torch.equal(a, b) for a, b in zip(_plain(kan, x, y), _fused(kan, x, y, fused)))
    kan.layers[0].set_grid_size(9, x)  # a new coef Parameter and grid buffer
    assert all(torch.equal(a, b) for a, b in zip(_plain(kan, x, y), _fused(kan, x, y, fused)))


def test_refused_where_it_does_not_apply() -> None:
    x = torch.rand(50, 2, dtype=torch.float64)
    y = torch.rand(50, 1, dtype=torch.float64)
    kan = KAN([2, 3, 1], grid_size=5, seed=0).double()
    assert FusedMSE.supported(kan, x, y)
    assert not FusedMSE.supported(MLP([2, 4, 1]).double(), x, y)
    assert not FusedMSE.supported(kan, x.float(), y.float())  # dtype mismatch
    assert not FusedMSE.supported(kan, x, y[:, :0])  # wrong target shape
    assert not FusedMSE.supported(KAN([2, 3, 1], base_activation="relu").double(), x, y)
    assert not FusedMSE.supported(KAN([2, 300, 300, 1], grid_size=20).double(), x, y)
    pruned = KAN([2, 3, 1], grid_size=5, seed=0).double()
    pruned.layers[0].mask[0, 0] = 0
    assert not FusedMSE.supported(pruned, x, y)
    with pytest.raises(ValueError, match="plain loss"):
        FusedMSE(pruned, x, y)


def test_the_float_loss_equals_the_tensor_loss_to_rounding() -> None:
    """``prepare(as_float=True)`` (what LBFGS runs): the loss reduced by numpy, equal to the
    tensor loss to rounding; the gradients are the same, bit for bit."""
    kan = KAN([2, 3, 1], grid_size=7, seed=0).double()
    x = torch.rand(500, 2, dtype=torch.float64) * 2 - 1
    y = torch.rand(500, 1, dtype=torch.float64)
    fused = FusedMSE(kan, x, y)
    loss = fused.prepare()()
    grads = [p.grad.clone() for p in kan.parameters()]
    value = fused.prepare(as_float=True)()
    assert isinstance(value, float) and abs(value - float(loss)) <= 1e-14 * float(loss)
    assert all(torch.equal(a, p.grad) for a, p in zip(grads, kan.parameters()))
