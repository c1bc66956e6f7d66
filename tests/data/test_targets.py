"""The target registry: counts, shapes, ranges, finiteness."""

import numpy as np
import pytest

from kanplatform.data import TARGETS, get_target

GROUPS = {g: [t for t in TARGETS.values() if t.group == g] for g in ("toy", "special", "feynman")}


def test_counts():
    assert len(GROUPS["toy"]) == 5
    assert len(GROUPS["special"]) >= 15
    assert len(GROUPS["feynman"]) >= 20


def test_paper_toys():
    assert get_target("j0_20x").n_inputs == 1
    assert get_target("exp_sin_sq").n_inputs == 2
    assert get_target("xy").n_inputs == 2
    assert get_target("exp_mean_sin_sq_100").n_inputs == 100
    assert get_target("nested_4").n_inputs == 4
    x = np.array([[0.5, 0.5]])
    assert get_target("exp_sin_sq")(x)[0, 0] == pytest.approx(np.exp(1 + 0.25))
    assert get_target("xy")(x)[0, 0] == pytest.approx(0.25)


def test_feynman_names_and_a_formula():
    assert "feynman_I_6_2" in TARGETS
    t = get_target("feynman_I_6_2")
    assert t.input_names == ("theta", "sigma")
    value = t(np.array([[0.0, 1.0]]))[0, 0]
    assert value == pytest.approx(1 / np.sqrt(2 * np.pi))


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_every_target_is_finite_on_its_ranges(name):
    t = TARGETS[name]
    rng = np.random.default_rng(0)
    low, high = np.array(t.ranges).T
    x = low + (high - low) * rng.random((256, t.n_inputs))
    y = t(x)
    assert y.shape == (256, t.n_outputs)
    assert np.isfinite(y).all()
    assert t.formula and len(t.input_names) == t.n_inputs


def test_unknown_target_lists_valid_names():
    with pytest.raises(KeyError, match="unknown dataset 'nope'.*exp_sin_sq"):
        get_target("nope")
