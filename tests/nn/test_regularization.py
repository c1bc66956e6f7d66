"""Regularisation: hand-worked values for both variants, gradients to every parameter."""

import math

import pytest
import torch

from kanplatform.nn import KAN, MLP, regularization


def _linear_edges_kan() -> KAN:
    """[2, 1] KAN, no base, splines phi_0(x) = x and phi_1(x) = 3x (linear B-spline coef)."""
    kan = KAN(width=[2, 1], grid_size=4, spline_order=1, base_activation=None, bias=False)
    layer = kan.layers[0]
    with torch.no_grad():
        knots = layer.grid[:, 1:-1]  # inner knots; order-1 coefficients = values at knots
        layer.coef.copy_(knots.unsqueeze(-1) * torch.tensor([[1.0], [3.0]]).unsqueeze(1))
        layer.scale_sp.fill_(1.0)
    return kan


def test_paper_variant_hand_worked() -> None:
    kan = _linear_edges_kan()
    x = torch.tensor([[0.5, 0.5], [-0.5, 0.5]])
    # |phi_0|_1 = mean(|0.5|, |-0.5|) = 0.5, |phi_1|_1 = mean(1.5, 1.5) = 1.5, total 2
    p = torch.tensor([0.25, 0.75])
    entropy = -(p * p.log()).sum().item()
    got = regularization(kan, x, lamb=0.1, lamb_l1=1.0, lamb_entropy=2.0, variant="paper")
    assert got.item() == pytest.approx(0.1 * (2.0 + 2.0 * entropy), rel=1e-5)


def test_pykan_variant_hand_worked() -> None:
    kan = _linear_edges_kan()
    x = torch.tensor([[0.5, 0.5], [-0.5, -0.5]])
    # std (unbiased) of phi: edge0 std(0.5,-0.5)=0.7071, edge1 3*0.7071; input std 0.7071
    s = math.sqrt(0.5)
    a = torch.tensor([s / (s + 0.1), 3 * s / (s + 0.1)])
    p_row = a / (a.sum() + 1)  # one output row over two inputs
    p_col = a / (a + 1)  # each column holds one edge
    h_row = -(p_row * torch.log2(p_row + 1e-4)).sum()
    h_col = -(p_col * torch.log2(p_col + 1e-4)).mean()
    want = a.sum() + 2.0 * (h_row + h_col)
    got = regularization(kan, x, lamb=1.0, variant="pykan")
    assert got.item() == pytest.approx(want.item(), rel=1e-5)


@pytest.mark.parametrize("variant", ["paper", "pykan"])
def test_differentiable_wrt_every_parameter(variant) -> None:
    kan = KAN(width=[2, 3, 1], grid_size=5, seed=0)
    reg = regularization(kan, torch.rand(32, 2) * 2 - 1, lamb=1e-2, variant=variant)
    assert reg.dim() == 0
    reg.backward()
    for name, p in kan.named_parameters():
        if name.endswith("bias") and name.startswith("layers.1"):
            continue  # the last layer's bias enters no edge activation
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_mlp_and_bad_variant() -> None:
    mlp = MLP(width=[2, 4, 1])
    reg = regularization(mlp, torch.rand(4, 2))
    assert reg.item() == 0.0
    reg.backward()
    with pytest.raises(ValueError, match="variant"):
        regularization(KAN(width=[2, 1]), torch.rand(4, 2), variant="nope")
