"""Pruning a KAN: drop unimportant hidden nodes, mask unimportant edges.

:func:`prune` returns a new, smaller :class:`~kanplatform.nn.kan.KAN` (the input model is
untouched). Removed nodes and masked edges are not simply dropped: the batch mean of what they
contributed is folded into the bias of the node they fed, so the pruned model's function
differs from the original only by the (small) variation of the removed parts.

Example:
    >>> small = prune(kan, x_train, node_threshold=1e-2, edge_threshold=3e-2)
    >>> small.width
    [2, 1, 1]
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from kanplatform.nn.attribution import attribute
from kanplatform.nn.kan import KAN
from kanplatform.nn.layer import KANLayer

__all__ = ["kept_nodes", "mask_edges", "prune", "prune_nodes", "select_nodes"]


def _sub_layer(layer: KANLayer, in_idx: Tensor, out_idx: Tensor) -> KANLayer:
    """A copy of ``layer`` restricted to inputs ``in_idx`` and outputs ``out_idx``."""
    new = copy.deepcopy(layer)
    new.in_features, new.out_features = len(in_idx), len(out_idx)
    new.grid = layer.grid[in_idx].contiguous()
    new.mask = layer.mask[out_idx][:, in_idx].contiguous()
    # contiguous, not clone(): clone keeps the indexed view's strides, and LBFGS needs
    # contiguous gradients
    new.coef = nn.Parameter(layer.coef.detach()[in_idx][:, :, out_idx].contiguous())
    new.scale_sp = nn.Parameter(layer.scale_sp.detach()[out_idx][:, in_idx].contiguous())
    if layer.scale_base is not None:
        new.scale_base = nn.Parameter(
            layer.scale_base.detach()[out_idx][:, in_idx].contiguous())
    if layer.bias is not None:
        new.bias = nn.Parameter(layer.bias.detach()[out_idx].contiguous())
    return new


@torch.no_grad()
def select_nodes(model: KAN, x: Tensor, keep: Sequence[Sequence[int]]) -> KAN:
    """A new KAN keeping only the hidden nodes ``keep[l]`` of hidden layer ``l``.

    Inputs and outputs are always kept. The batch mean of every removed node's outgoing edges
    is added to the bias of the node it fed (when the layer has biases).

    Args:
        model: the KAN.
        x: ``(batch, width[0])`` samples used for the folded means.
        keep: for each hidden layer (``len(width) - 2`` lists), the node indices to keep.

    Returns:
        The smaller KAN.
    """
    if len(keep) != len(model.width) - 2:
        raise ValueError(f"keep needs one index list per hidden layer ({len(model.width) - 2})")
    acts = model.edge_activations(x)
    idx = [torch.arange(model.width[0])]
    idx += [torch.as_tensor(sorted(set(int(i) for i in k)), dtype=torch.long) for k in keep]
    idx += [torch.arange(model.width[-1])]
    new = copy.deepcopy(model)
    layers = []
    for l, layer in enumerate(model.layers):
        sub = _sub_layer(layer, idx[l], idx[l + 1])
        if sub.bias is not None:
            dropped = torch.ones(layer.in_features, dtype=torch.bool)
            dropped[idx[l]] = False
            fold = acts[l][:, :, dropped].sum(-1).mean(0)  # (out,)
            sub.bias.add_(fold[idx[l + 1]].to(sub.bias.dtype))
        layers.append(sub)
    new.layers = nn.ModuleList(layers)
    new.width = [len(i) for i in idx]
    return new


@torch.no_grad()
def kept_nodes(
    model: KAN, x: Tensor, node_threshold: float = 1e-2, method: str = "attribution"
) -> list[list[int]]:
    """Hidden nodes whose score exceeds ``node_threshold``, per hidden layer.

    A hidden layer keeps at least its best node so the network stays connected.
    """
    scores = attribute(model, x, method).node_scores[1:-1]
    keep = []
    for s in scores:
        k = torch.nonzero(s > node_threshold).flatten().tolist()
        keep.append(k or [int(s.argmax())])
    return keep


def prune_nodes(
    model: KAN, x: Tensor, node_threshold: float = 1e-2, method: str = "attribution"
) -> KAN:
    """A new KAN without the hidden nodes scoring at most ``node_threshold``."""
    return select_nodes(model, x, kept_nodes(model, x, node_threshold, method))


@torch.no_grad()
def mask_edges(
    model: KAN, x: Tensor, edge_threshold: float = 3e-2, method: str = "attribution"
) -> KAN:
    """A copy of ``model`` with every edge scoring below ``edge_threshold`` masked out.

    The batch mean of each masked edge is folded into its output node's bias.
    """
    new = copy.deepcopy(model)
    att = attribute(model, x, method)
    acts = model.edge_activations(x)
    for layer, score, phi in zip(new.layers, att.edge_scores, acts):
        drop = (score < edge_threshold) & (layer.mask > 0)
        if layer.bias is not None:
            layer.bias.add_((phi.mean(0) * drop).sum(-1).to(layer.bias.dtype))
        layer.mask[drop] = 0.0
    return new


def prune(
    model: KAN,
    x: Tensor,
    node_threshold: float = 1e-2,
    edge_threshold: float = 3e-2,
    method: str = "attribution",
) -> KAN:
    """Prune nodes then edges (pykan 0.2.8 order), returning a new, smaller KAN.

    Args:
        model: the trained KAN (unchanged).
        x: ``(batch, width[0])`` samples, ideally the training inputs.
        node_threshold: hidden nodes scoring at most this are removed.
        edge_threshold: edges scoring below this are masked (scores recomputed after node
            pruning).
        method: ``"attribution"`` (KAN 2.0 scores, default) or ``"l1"`` (KAN paper rule).

    Returns:
        The pruned KAN; ``.width`` gives its shape and each layer's ``mask`` its edges.

    Example:
        >>> prune(kan, x).width  # doctest: +SKIP
        [2, 1, 1]
    """
    x = x.to(next(model.parameters()).dtype)
    small = prune_nodes(model, x, node_threshold, method)
    return mask_edges(small, x, edge_threshold, method)
