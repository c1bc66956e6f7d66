"""The whole-layer kernels (kanplatform.kernels.clayer): one call per direction with the base
term and the bias, the same numbers as the per-term kernels and the dense reference, on the
shapes that exercise their loops (output chunks of 4 vectors, single vectors, scalar tails,
O = 1, orders other than cubic, no base term, no bias, several sample blocks and threads)."""

import pytest
import torch

from kanplatform.kernels import clayer
from kanplatform.nn import KANLayer


def _layer(n_in, n_out, g, k, dtype, adaptive, base=True, bias=True, seed=0) -> KANLayer:
    gen = torch.Generator().manual_seed(seed)
    layer = KANLayer(n_in, n_out, grid_size=g, spline_order=k, generator=gen,
                     base_activation="silu" if base else None, bias=bias).to(dtype)
    if adaptive:
        layer.update_grid(torch.randn(400, n_in, generator=gen, dtype=dtype) ** 3)
    with torch.no_grad():
        layer.coef.normal_(generator=gen)
        if bias:
            layer.bias.normal_(generator=gen)
    return layer


def _grads(fn, layer: KANLayer, x: torch.Tensor, w: torch.Tensor) -> list[torch.Tensor]:
    x = x.detach().clone().requires_grad_()
    params = list(layer.parameters())
    y = fn(x)
    return [y.detach(), *torch.autograd.grad((y * w).sum(), [x, *params])]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("n_in", "n_out", "g", "k", "batch"),
    [
        (3, 1, 5, 3, 700),  # O = 1: the scalar paths
        (5, 37, 5, 3, 300),  # 4-vector chunks, a single vector, a scalar tail
        (2, 5, 50, 3, 3000),  # a tail only; several sample blocks
        (4, 70, 7, 2, 257),  # another order: the generic loops
        (3, 3, 4, 5, 100),
        (9, 16, 1, 1, 90),  # one interval: no interior knots
    ],
)
@pytest.mark.parametrize("adaptive", [False, True])
def test_whole_layer_equals_per_term_kernels_and_dense(dtype, n_in, n_out, g, k, batch,
                                                       adaptive, monkeypatch) -> None:
    layer = _layer(n_in, n_out, g, k, dtype, adaptive)
    assert clayer.fits(n_in, n_out, g, k, dtype, "silu")
    gen = torch.Generator().manual_seed(1)
    x = 1.4 * torch.randn(batch, n_in, generator=gen, dtype=dtype)  # ~1/3 beyond the grid
    w = torch.randn(batch, n_out, generator=gen, dtype=dtype)
    whole = _grads(lambda v: layer.forward_fast(v, backend="c"), layer, x, w)
    monkeypatch.setattr(clayer, "SMALL_TABLE_BYTES", 0)  # every layer on the per-term kernels
    per_term = _grads(lambda v: layer.forward_fast(v, backend="c"), layer, x, w)
    dense = _grads(layer.forward_dense, layer, x, w)
    tol = 2e-5 if dtype == torch.float32 else 1e-11
    for a, b, c in zip(whole, per_term, dense):
        scale = c.abs().max().clamp_min(1.0)
        assert (a - c).abs().max() <= tol * scale
        assert (a - b).abs().max() <= tol * scale


@pytest.mark.parametrize("n_out", [19, 3])  # rows by outputs; by samples (O < a vector)
@pytest.mark.parametrize(("base", "bias"), [(False, True), (True, False), (False, False)])
def test_without_base_term_or_bias(base, bias, n_out) -> None:
    layer = _layer(4, n_out, 6, 3, torch.float64, adaptive=True, base=base, bias=bias)
    x = 1.3 * torch.randn(333, 4, dtype=torch.float64)
    w = torch.randn(333, n_out, dtype=torch.float64)
    got = _grads(lambda v: layer.forward_fast(v, backend="c"), layer, x, w)
    ref = _grads(layer.forward_dense, layer, x, w)
    assert len(got) == len(ref)
    for a, b in zip(got, ref):
        assert torch.allclose(a, b, rtol=1e-11, atol=1e-11)


def test_threads_give_the_same_bits() -> None:
    """Forward rows split by sample blocks, backward by inputs: the thread count changes the
    split, not one sum's order."""
    layer = _layer(16, 24, 5, 3, torch.float64, adaptive=True)
    x = torch.randn(9000, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    w = torch.randn(9000, 24, dtype=torch.float64)
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _grads(lambda v: layer.forward_fast(v, backend="c"), layer, x, w)
        torch.set_num_threads(2)
        two = _grads(lambda v: layer.forward_fast(v, backend="c"), layer, x, w)
    finally:
        torch.set_num_threads(n)
    for a, b in zip(one, two):
        assert torch.equal(a, b)


def test_silu_and_nonfinite_inputs() -> None:
    """The kernels' own exp gives silu to an ulp or two over the whole range (saturating far
    out); NaN and inf inputs give non-finite rows, never a crash."""
    for dtype, ulp in ((torch.float64, 2.0**-52), (torch.float32, 2.0**-23)):
        layer = _layer(1, 1, 5, 3, dtype, adaptive=False, bias=False)
        with torch.no_grad():
            layer.coef.zero_()  # the base term alone
            layer.scale_base.fill_(1.0)
        x = torch.cat([torch.linspace(-800, 800, 4001), torch.linspace(-30, 30, 4001)])
        x = x.to(dtype)[:, None]
        with torch.no_grad():
            y = layer.forward_fast(x, backend="c").double()
        ref = torch.nn.functional.silu(x.double())
        assert ((y - ref).abs() <= 4 * ulp * ref.abs() + 1e-30).all()
    layer = _layer(1, 3, 5, 3, torch.float64, adaptive=False)
    bad = torch.tensor([[float("nan")], [float("inf")], [-float("inf")], [0.5]],
                       dtype=torch.float64)
    out = layer.forward_fast(bad, backend="c")
    assert not torch.isfinite(out[:3]).all(dim=1).any()
    assert torch.isfinite(out[3]).all()
