"""KAN.forward's one-node path for small KANs on the compiled kernels
(:class:`kanplatform.kernels.clayer.NetworkFunction`): outputs and every gradient (input,
coef, scale_sp, scale_base, bias) equal the layer-by-layer path's bit for bit, it follows
in-place changes and replaced tensors, and it steps aside where the layers must run."""

import copy
import pickle

import pytest
import torch

from kanplatform.kernels import ckernel
from kanplatform.nn import KAN
from kanplatform.train.optim import make_optimizer

pytestmark = pytest.mark.skipif(ckernel.library() is None, reason="no C compiler here")


def _layerwise(kan: KAN, x: torch.Tensor) -> torch.Tensor:
    for layer in kan.layers:
        x = layer(x)
    return x


def _run(fn, kan: KAN, x: torch.Tensor, w: torch.Tensor) -> tuple[str, list[torch.Tensor]]:
    """(name of the output's autograd node, [output, grad x, grads of the parameters])."""
    x = x.detach().clone().requires_grad_()
    for p in kan.parameters():
        p.grad = None
    y = fn(x)
    (y * w).sum().backward()
    return type(y.grad_fn).__name__, [y.detach(), x.grad, *[p.grad for p in kan.parameters()]]


def _same(kan: KAN, x: torch.Tensor, one_node: bool = True) -> None:
    gen = torch.Generator().manual_seed(3)
    w = torch.randn(x.shape[0], kan.width[-1], generator=gen, dtype=x.dtype)
    node, got = _run(kan, kan, x, w)
    _, ref = _run(lambda v: _layerwise(kan, v), kan, x, w)
    assert (node == "NetworkFunctionBackward") == one_node, node
    assert len(got) == len(ref) == 2 + len(list(kan.parameters()))
    for a, b in zip(got, ref):
        assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("width", "g", "k", "kwargs", "batch"), [
    ([8, 32, 32, 1], 5, 3, {}, 256),  # issue 19's model
    ([3, 7, 2], 4, 2, {}, 37),  # odd sizes, another order
    ([5, 1], 6, 3, {}, 129),  # one layer: the input gradient comes straight from the output's
    ([4, 9, 9, 3], 3, 3, {"bias": False}, 300),
    ([2, 3, 5, 1], 5, 1, {"base_activation": None}, 61),
])
def test_equals_the_layerwise_path_bitwise(dtype, width, g, k, kwargs, batch) -> None:
    kan = KAN(width, grid_size=g, spline_order=k, seed=0, **kwargs).to(dtype)
    gen = torch.Generator().manual_seed(1)
    x = (2.8 * torch.rand(batch, width[0], generator=gen) - 1.4).to(dtype)  # some off-grid
    _same(kan, x)
    kan.update_grid(x)  # adapted knots: a new grid plan
    with torch.no_grad():
        for p in kan.parameters():
            p.normal_(generator=gen)
    _same(kan, x)
    with torch.no_grad():  # inference takes the same path
        assert torch.equal(kan(x), _layerwise(kan, x))
    _same(kan, x.t().contiguous().t())  # a non-contiguous input
    with pytest.raises(ValueError, match=f"batch, {width[0]}"):  # the layers say what is wrong
        kan(x[:, :-1])


def test_adam_steps_equal_the_layerwise_path() -> None:
    """The platform's optimiser over a few steps: the same parameters either way."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(256, 8, generator=gen) * 2 - 1
    y = x[:, :4].sum(1, keepdim=True).sin()
    models = [KAN([8, 32, 32, 1], grid_size=5, seed=0) for _ in range(2)]
    optim = type("Optim", (), {"name": "adam", "lr": 0.01, "weight_decay": 0.0})
    for kan, fn in zip(models, (lambda m, v: m(v), _layerwise)):
        opt = make_optimizer(kan.parameters(), optim)
        for _ in range(5):
            opt.zero_grad()
            torch.mean((fn(kan, x) - y) ** 2).backward()
            opt.step()
    for a, b in zip(*(m.parameters() for m in models)):
        assert torch.equal(a, b)


def test_follows_changes_and_steps_aside() -> None:
    """In-place updates, a replaced coefficient tensor, a converted model, pruned edges
    (layers again), hooks on a layer (layers again) and a dropped cache on copies."""
    kan = KAN([3, 4, 2], grid_size=5, seed=0).double()
    x = torch.rand(90, 3, dtype=torch.float64) * 2 - 1
    _same(kan, x)
    with torch.no_grad():
        for p in kan.parameters():
            p.add_(0.1)
    _same(kan, x)
    kan.layers[1].set_grid_size(8)  # a new coef Parameter and grid buffer
    _same(kan, x)
    kan.float()  # every tensor's storage replaced under the same Parameter objects
    _same(kan, x.float())
    for clone in (copy.deepcopy(kan), pickle.loads(pickle.dumps(kan))):
        assert "_network_cache" not in clone.__dict__
        _same(clone, x.float())
    handle = kan.layers[0].register_forward_hook(lambda mod, inp, out: None)
    _same(kan, x.float(), one_node=False)
    handle.remove()
    _same(kan, x.float())
    kan.layers[0].mask[0, 1] = 0  # pruned: the masked scales need the layers' own path
    _same(kan, x.float(), one_node=False)
    kan.layers[0].mask.fill_(1)
    _same(kan, x.float())
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the layers cast for themselves
        assert type(kan(x.float()).grad_fn).__name__ != "NetworkFunctionBackward"


def test_in_place_change_before_backward_raises() -> None:
    """As on the layers' path: the saved parameters are version-checked."""
    kan = KAN([2, 3, 1], grid_size=5, seed=0)
    y = kan(torch.rand(10, 2))
    assert type(y.grad_fn).__name__ == "NetworkFunctionBackward"
    with torch.no_grad():
        kan.layers[0].coef.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_frozen_parameters_get_no_gradient() -> None:
    """A frozen bias is not formed, a frozen coef not returned; the rest as layer by layer."""
    kan = KAN([3, 5, 2], grid_size=4, seed=0).double()
    kan.layers[1].bias.requires_grad_(False)
    kan.layers[0].coef.requires_grad_(False)
    x = torch.rand(40, 3, dtype=torch.float64) * 2 - 1
    grads = []
    for fn in (kan, lambda v: _layerwise(kan, v)):
        for p in kan.parameters():
            p.grad = None
        y = fn(x)
        y.square().sum().backward()
        grads.append([p.grad for p in kan.parameters()])
    assert grads[0][0] is None and grads[0][-1] is None  # layer 0's coef, layer 1's bias
    for a, b in zip(*grads):
        assert (a is None and b is None) or torch.equal(a, b)
