"""The every-problem collector every spec reader fills (kanplatform/_util/problems.py)."""

import pytest

from kanplatform._util.problems import Problems, did_you_mean, problems_of


class SpecError(ValueError):
    pass


def test_problems_are_collected_then_raised_together_one_per_line():
    p = Problems(SpecError)
    assert p.check(True, "a", "never") and not p
    assert not p.check(False, "trainer.max_steps", "must be >= 1, got 0")
    p.one_of("adm", "optim.name", ("lbfgs", "adam", "adamw"))
    with p.collect():
        raise SpecError("from a reader that raises")
    p.add("from a reader that raises")  # a repeat is recorded once
    with pytest.raises(SpecError) as err:
        p.raise_if_any()
    assert problems_of(err.value) == [
        "trainer.max_steps: must be >= 1, got 0",
        "optim.name: 'adm' is not valid; valid: lbfgs, adam, adamw (did you mean 'adam'?)",
        "from a reader that raises"]
    assert str(err.value).count("\n") == 2
    Problems(SpecError).raise_if_any()  # nothing found: nothing raised


def test_did_you_mean_only_for_near_misses():
    assert did_you_mean("gridsize", ["grid_size", "spline_order"]) == \
        " (did you mean 'grid_size'?)"
    assert did_you_mean("zzz", ["grid_size"]) == ""
    assert problems_of(ValueError("one")) == ["one"]
