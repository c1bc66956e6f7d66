"""Edge, node and input-feature importance of a KAN, measured on a sample batch.

Two rules:

* ``"l1"`` (KAN paper §2.5): an edge's score is its mean magnitude ``|φ|_1 = mean_x |φ(x)|``;
  a hidden node scores the smaller of its largest incoming and largest outgoing edge score
  (the paper keeps a node when both exceed θ).
* ``"attribution"`` (KAN 2.0, pykan 0.2.8 ``attribute``): scores flow back from the outputs.
  With ``σ_e`` the standard deviation of edge ``e``'s output over the batch and ``σ_j`` that of
  node ``j``: output nodes score 1, ``score(e: i→j) = σ_e · score(j) / (σ_j + 1e-4)`` and
  ``score(i) = Σ_j score(i→j)``. The input nodes' scores are the feature importances.

Example:
    >>> att = attribute(kan, x)
    >>> att.node_scores[0]          # (width[0],) input feature importance
    >>> att.edge_scores[1].shape    # (width[2], width[1])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from kanplatform.nn.kan import KAN

__all__ = ["Attribution", "attribute", "edge_l1", "feature_importance"]

METHODS = ("attribution", "l1")


@dataclass
class Attribution:
    """Importance scores of one KAN on one batch.

    Attributes:
        edge_scores: per layer ``l``, ``(width[l+1], width[l])``.
        node_scores: per node layer ``l = 0..depth``, ``(width[l],)``; ``node_scores[0]`` is
            the input feature importance.
        method: ``"attribution"`` or ``"l1"``.
    """

    edge_scores: list[Tensor]
    node_scores: list[Tensor]
    method: str


@torch.no_grad()
def edge_l1(model: KAN, x: Tensor) -> list[Tensor]:
    """Mean absolute edge outputs ``|φ|_1`` per layer, ``[(width[l+1], width[l])]``.

    Args:
        model: the KAN.
        x: ``(batch, width[0])`` samples.
    """
    return [phi.abs().mean(0) for phi in model.edge_activations(x)]


@torch.no_grad()
def attribute(model: KAN, x: Tensor, method: str = "attribution") -> Attribution:
    """Edge and node importance scores of ``model`` on the batch ``x``.

    Args:
        model: the KAN.
        x: ``(batch, width[0])`` samples, ideally the training inputs.
        method: ``"attribution"`` (KAN 2.0, default) or ``"l1"`` (KAN paper).

    Returns:
        The :class:`Attribution`.

    Raises:
        ValueError: for an unknown method or a badly shaped batch.
    """
    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; use one of {METHODS}")
    if x.dim() != 2 or x.shape[1] != model.width[0]:
        raise ValueError(f"expected x of shape (batch, {model.width[0]}), got {tuple(x.shape)}")
    acts = model.edge_activations(x)  # [(B, out, in)]
    if method == "l1":
        edges = [phi.abs().mean(0) for phi in acts]
        nodes = [edges[0].amax(0)]  # inputs: largest outgoing edge
        for l in range(1, len(edges)):
            nodes.append(torch.minimum(edges[l - 1].amax(1), edges[l].amax(0)))
        nodes.append(edges[-1].amax(1))  # outputs: largest incoming edge
        return Attribution(edges, nodes, method)

    edge_std = [phi.std(0, unbiased=False) for phi in acts]  # (out, in)
    node_std = [phi.sum(-1).std(0, unbiased=False) for phi in acts]  # (out,)
    node_score = torch.ones(model.width[-1], dtype=acts[-1].dtype, device=x.device)
    nodes, edges = [node_score], []
    for l in range(len(acts) - 1, -1, -1):
        e = edge_std[l] * (node_score / (node_std[l] + 1e-4))[:, None]
        node_score = e.sum(0)
        edges.insert(0, e)
        nodes.insert(0, node_score)
    return Attribution(edges, nodes, method)


def feature_importance(model: KAN, x: Tensor, method: str = "attribution") -> Tensor:
    """Importance of every input feature, ``(width[0],)`` (see :func:`attribute`)."""
    return attribute(model, x, method).node_scores[0]
