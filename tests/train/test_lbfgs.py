"""FlatLBFGS: torch.optim.LBFGS's iterates to rounding (its own numpy step: the same decisions
and evaluation counts on a short run), on flat parameters, with a fused loss, across its exits
(iteration and evaluation budgets, tolerances, history wrap-around); fits through either reach
the same loss; its state loads into either optimiser."""

import copy

import pytest
import torch

from kanplatform.nn import KAN, MLP
from kanplatform.nn.fused import FusedMSE
from kanplatform.train.lbfgs import FlatLBFGS

X = torch.rand(400, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1
Y = torch.exp(torch.sin(torch.pi * X[:, :1]) + X[:, 1:] ** 2)


def _closure(model, fused=None, counter=None, x=X, y=Y):
    def closure():
        if counter is not None:
            counter.append(1)
        if fused is not None:
            return fused()
        for p in model.parameters():
            p.grad = None
        loss = torch.mean((model(x) - y) ** 2)
        loss.backward()
        return loss
    return closure


def _close(a, b, tol=1e-7):
    """Equal to rounding: the two steps round a few operations differently (numpy's dot,
    float scalars), which LBFGS amplifies over many iterations, not over a short run."""
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max()) <= tol * max(1.0, float(a.abs().max()))


def _loss(model, x=X, y=Y):
    with torch.no_grad():
        return float(torch.mean((model(x) - y) ** 2))


def _train(opt_cls, model, steps, fused=False, x=X, y=Y, **kwargs):
    opt = opt_cls(model.parameters(), **kwargs)
    closure = _closure(model, FusedMSE(model, x, y) if fused else None, x=x, y=y)
    for step in range(steps):
        if step % 4 == 0 and hasattr(model, "update_grid"):
            model.update_grid(x)  # in place, between steps, as the grid schedule does
        opt.step(closure)
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]), opt


SETTINGS = [
    {"max_iter": 12, "history_size": 10},
    {"max_iter": 20, "history_size": 3, "tolerance_grad": 1e-32, "tolerance_change": 1e-32},
    {"max_iter": 5, "max_eval": 6, "lr": 0.5},  # the evaluation budget cuts line searches
    {"max_iter": 50, "tolerance_change": 1e-3},  # the change tolerance ends steps early
]


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("kind", ["kan", "kan-fused", "mlp"])
def test_same_iterates_as_torch_lbfgs(settings, kind) -> None:
    def model():
        if kind == "mlp":
            return MLP([2, 8, 8, 1], seed=0).double()
        return KAN([2, 1, 1], grid_size=8, seed=0).double()

    kw = {"line_search_fn": "strong_wolfe", **settings}
    ref, ref_opt = _train(torch.optim.LBFGS, model(), 2, **kw)
    got, opt = _train(FlatLBFGS, model(), 2, fused=kind == "kan-fused", **kw)
    assert _close(ref, got)
    a, b = ref_opt.state_dict()["state"][0], opt.state_dict()["state"][0]
    assert (a["func_evals"], a["n_iter"]) == (b["func_evals"], b["n_iter"])
    assert _close(a["d"], b["d"]) and abs(float(a["t"]) - float(b["t"])) <= 1e-7 * abs(b["t"])


@pytest.mark.parametrize("kind", ["kan-fused", "mlp"])
def test_a_fit_reaches_torch_lbfgs_loss(kind) -> None:
    """Over many iterations the rounding differences grow (LBFGS is chaotic at that level);
    the fits reach the same loss."""
    def model():
        if kind == "mlp":
            return MLP([2, 8, 8, 1], seed=0).double()
        return KAN([2, 1, 1], grid_size=8, seed=0).double()

    kw = {"line_search_fn": "strong_wolfe", "max_iter": 12, "history_size": 10}
    ref, got = model(), model()
    _train(torch.optim.LBFGS, ref, 12, **kw)
    _train(FlatLBFGS, got, 12, fused=kind != "mlp", **kw)
    start = _loss(model())
    assert _loss(ref) < 0.02 * start and 0.5 < _loss(got) / _loss(ref) < 2


@pytest.mark.parametrize("line_search", ["strong_wolfe", None])
def test_float32_and_no_line_search(line_search) -> None:
    """float32 parameters and the fixed-step variant: torch's iterates too, on flat
    parameters, with the plain and the fused loss."""
    kan = KAN([2, 3, 1], grid_size=5, seed=0)
    kw = {"line_search_fn": line_search, "max_iter": 6, "x": X.float(), "y": Y.float()}
    ref, _ = _train(torch.optim.LBFGS, copy.deepcopy(kan), 2, **kw)
    got, opt = _train(FlatLBFGS, copy.deepcopy(kan), 2, fused=False, **kw)
    fused, _ = _train(FlatLBFGS, copy.deepcopy(kan), 2, fused=True, **kw)
    # float32 rounding (torch keeps float32 scalars, we Python floats), grown over 12 iterations
    assert _close(ref, fused, 1e-4)
    assert torch.equal(got, fused) and opt._flat is not None


def test_parameters_are_views_of_one_vector_and_survive_replacement() -> None:
    model = MLP([2, 5, 1], seed=0).double()
    opt = FlatLBFGS(model.parameters(), line_search_fn="strong_wolfe")
    flat = opt._flat
    assert all(p.data_ptr() >= flat.data_ptr() for p in model.parameters())
    assert sum(p.numel() for p in model.parameters()) == flat.numel()
    model.zero_grad(set_to_none=True)  # grads re-attached as views at the next step
    before = [p.detach().clone() for p in model.parameters()]
    model.layers[0].weight.data = model.layers[0].weight.data.clone()  # a storage replaced
    opt.step(_closure(model))
    assert opt._flat is not flat  # the layout was rebuilt, from the current values
    start, size = opt._flat.data_ptr(), opt._flat.numel() * opt._flat.element_size()
    assert all(start <= p.data_ptr() < start + size for p in model.parameters())
    assert torch.equal(opt._flat, torch.cat([p.detach().reshape(-1) for p in model.parameters()]))
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))


def test_evaluate_runs_the_line_search_and_closure_once_per_step() -> None:
    model = KAN([2, 1, 1], grid_size=5, seed=0).double()
    fused = FusedMSE(model, X, Y)
    outer, inner = [], []
    ref, _ = _train(torch.optim.LBFGS, KAN([2, 1, 1], grid_size=5, seed=0).double(), 3,
                    line_search_fn="strong_wolfe")
    opt = FlatLBFGS(model.parameters(), line_search_fn="strong_wolfe")
    for step in range(3):
        if step % 4 == 0:
            model.update_grid(X)
        opt.step(_closure(model, fused, outer), evaluate=_closure(model, fused, inner))
    assert len(outer) == 3 and len(inner) > 3
    assert _close(ref, torch.cat([p.detach().reshape(-1) for p in model.parameters()]))


def test_state_loads_into_torch_lbfgs_and_back() -> None:
    """A checkpoint of either optimiser resumes in the other with the same iterates (to
    rounding)."""
    kw = {"line_search_fn": "strong_wolfe", "max_iter": 8, "history_size": 5}
    model = KAN([2, 1, 1], grid_size=5, seed=0).double()
    _, opt = _train(FlatLBFGS, model, 4, **kw)
    twin = copy.deepcopy(model)
    other = torch.optim.LBFGS(twin.parameters(), **kw)
    other.load_state_dict(copy.deepcopy(opt.state_dict()))
    for _ in range(2):
        opt.step(_closure(model))
        other.step(_closure(twin))
    assert all(_close(a, b) for a, b in zip(model.parameters(), twin.parameters()))
    assert opt.state_dict()["state"][0]["func_evals"] == other.state_dict()["state"][0][
        "func_evals"]
    back = FlatLBFGS(model.parameters(), **kw)
    back.load_state_dict(copy.deepcopy(other.state_dict()))  # a copy: state is shared
    back.step(_closure(model))
    other.step(_closure(twin))
    assert all(_close(a, b) for a, b in zip(model.parameters(), twin.parameters()))
