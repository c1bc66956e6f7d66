"""Strict dataclasses from mappings: unknown and missing keys named, with a suggestion."""

from dataclasses import dataclass, field

import pytest

from kanplatform._util.strict import check_keys, from_mapping


@dataclass
class Spec:
    command: str
    grid_size: int = 5
    tags: list = field(default_factory=list)
    path: str | None = None


class SpecError(ValueError):
    pass


def test_builds_with_defaults_and_fixed_fields():
    spec = from_mapping(Spec, {"command": "train"}, "run", SpecError, path="x")
    assert spec == Spec("train", 5, [], "x")


def test_unknown_key_is_named_by_its_path_with_a_guess_and_the_valid_keys():
    with pytest.raises(SpecError, match=r"^job.yaml: unknown key 'run.gridsize' \(did you mean "
                       r"'run.grid_size'\?\); valid keys in 'run': command, grid_size, tags$"):
        from_mapping(Spec, {"command": "t", "gridsize": 3}, "run", SpecError, source="job.yaml",
                     exclude=["path"])
    with pytest.raises(SpecError, match=r"^unknown keys 'x', 'y'; valid keys: a, b$"):
        check_keys({"x": 1, "y": 2}, ["a", "b"], error=SpecError)
    # two typos in one section: each with its own near miss, in one message
    with pytest.raises(SpecError, match=r"^unknown keys 'grace_perod' \(did you mean "
                       r"'grace_period'\?\), 'reduction_factr' \(did you mean "
                       r"'reduction_factor'\?\); valid keys: "):
        check_keys({"grace_perod": 1, "reduction_factr": 2}, ["grace_period", "reduction_factor"],
                   error=SpecError)


def test_missing_key_and_non_mapping_are_named():
    with pytest.raises(SpecError, match=r"^missing key 'run.command'$"):
        from_mapping(Spec, {}, "run", SpecError)
    with pytest.raises(SpecError, match=r"^'run' must be a mapping, got list \[1\]$"):
        from_mapping(Spec, [1], "run", SpecError)
