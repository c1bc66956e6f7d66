"""Pruning: smaller KANs whose function on the kept part is unchanged."""

from __future__ import annotations

import pytest
import torch

from kanplatform.nn import KAN, build_model
from kanplatform.nn.prune import mask_edges, prune, select_nodes


def _x(n=256, d=2):
    return torch.rand(n, d, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1


def _kan_with_dead_nodes() -> KAN:
    """[2, 4, 1] where hidden nodes 1 and 3 receive nothing (constant outputs)."""
    kan = KAN([2, 4, 1], grid_size=5, seed=0).double()
    with torch.no_grad():
        for j in (1, 3):
            kan.layers[0].scale_sp[j] = 0
            kan.layers[0].scale_base[j] = 0
            kan.layers[0].bias[j] = 0.3  # constant but non-zero: folded into the next bias
    return kan


@pytest.mark.parametrize("method", ["attribution", "l1"])
def test_prune_removes_dead_nodes_and_keeps_function(method):
    kan, x = _kan_with_dead_nodes(), _x()
    small = prune(kan, x, method=method, edge_threshold=0.0)
    assert small.width == [2, 2, 1]
    torch.testing.assert_close(small(x), kan(x), atol=1e-10, rtol=0)
    # the original is untouched, the pruned model round-trips through its config
    assert kan.width == [2, 4, 1]
    again = build_model(small.config()).double()
    again.load_state_dict(small.state_dict())
    torch.testing.assert_close(again(x), small(x))


def test_edge_masking_folds_mean_into_bias():
    kan, x = KAN([2, 2, 1], grid_size=5, seed=3).double(), _x()
    with torch.no_grad():  # edge 1 -> 0 of layer 0 becomes (almost) constant
        kan.layers[0].scale_sp[0, 1] = 0
        kan.layers[0].scale_base[0, 1] = 1e-6
    masked = mask_edges(kan, x, edge_threshold=1e-3)
    assert masked.layers[0].mask[0, 1] == 0 and masked.layers[0].mask.sum() == 3
    torch.testing.assert_close(masked(x), kan(x), atol=1e-6, rtol=0)


def test_select_nodes_keeps_given_nodes():
    kan, x = KAN([2, 5, 3, 1], grid_size=4, seed=0).double(), _x()
    small = select_nodes(kan, x, [[0, 4], [1]])
    assert small.width == [2, 2, 1, 1]
    torch.testing.assert_close(small.layers[0].coef, kan.layers[0].coef[:, :, [0, 4]])
    torch.testing.assert_close(small.layers[1].scale_sp, kan.layers[1].scale_sp[[1]][:, [0, 4]])
    with pytest.raises(ValueError, match="hidden layer"):
        select_nodes(kan, x, [[0]])


def test_prune_keeps_at_least_one_node_per_layer():
    kan, x = KAN([2, 3, 1], grid_size=5, seed=0).double(), _x()
    small = prune(kan, x, node_threshold=1e9, edge_threshold=0.0)
    assert small.width == [2, 1, 1]


def test_pruned_parameters_are_contiguous_for_lbfgs():
    kan, x = _kan_with_dead_nodes(), _x()
    small = prune(kan, x)
    assert all(p.is_contiguous() for p in small.parameters())
    opt = torch.optim.LBFGS(small.parameters(), max_iter=2)

    def closure():
        opt.zero_grad()
        loss = small(x).pow(2).mean()
        loss.backward()
        return loss

    opt.step(closure)  # LBFGS views every gradient flat
