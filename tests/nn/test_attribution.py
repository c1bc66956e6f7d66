"""Edge/node importance scores and input feature importance."""

from __future__ import annotations

import pytest
import torch

from kanplatform.nn import KAN
from kanplatform.nn.attribution import attribute, edge_l1, feature_importance


def _kan_ignoring_input(dead: int) -> KAN:
    kan = KAN([3, 2, 1], grid_size=5, seed=0).double()
    with torch.no_grad():
        kan.layers[0].scale_sp[:, dead] = 0
        kan.layers[0].scale_base[:, dead] = 0
    return kan


def _x(n=256, d=3):
    return torch.rand(n, d, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1


@pytest.mark.parametrize("method", ["attribution", "l1"])
def test_unused_input_has_zero_importance(method):
    kan, x = _kan_ignoring_input(2), _x()
    imp = feature_importance(kan, x, method)
    assert imp.shape == (3,)
    assert imp[2] == 0 and (imp[:2] > 1e-3).all()


def test_score_shapes_and_output_score_one():
    kan, x = _kan_ignoring_input(0), _x()
    att = attribute(kan, x)
    assert [tuple(e.shape) for e in att.edge_scores] == [(2, 3), (1, 2)]
    assert [tuple(n.shape) for n in att.node_scores] == [(3,), (2,), (1,)]
    assert att.node_scores[-1].tolist() == [1.0]
    # node score = sum of its outgoing edge scores
    torch.testing.assert_close(att.node_scores[1], att.edge_scores[1].sum(0))


def test_single_edge_attribution_is_about_one():
    kan = KAN([1, 1], grid_size=5, seed=1).double()
    att = attribute(kan, _x(d=1))
    assert float(att.edge_scores[0]) == pytest.approx(1.0, abs=1e-2)  # σ_e / (σ_j + 1e-4)


def test_l1_matches_mean_absolute_activation():
    kan, x = _kan_ignoring_input(1), _x()
    l1 = edge_l1(kan, x)
    want = [phi.abs().mean(0) for phi in kan.edge_activations(x)]
    for a, b in zip(l1, want):
        torch.testing.assert_close(a, b)


def test_bad_inputs_are_refused():
    kan = _kan_ignoring_input(0)
    with pytest.raises(ValueError, match="method"):
        attribute(kan, _x(), method="shapley")
    with pytest.raises(ValueError, match="shape"):
        attribute(kan, _x(d=2))
