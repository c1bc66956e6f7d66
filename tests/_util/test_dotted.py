"""Dotted keys: one flatten, one key=value parser, one setter for every YAML kind."""

import pytest

from kanplatform._util.dotted import flatten, parse_overrides, set_dotted, split_override


def test_flatten_keeps_empty_dotted_and_kept_mappings_whole():
    nested = {"model": {"grid_size": 5, "width": [2, 1]}, "a.b": {"c": 1}, "e": {},
              "space": {"lr": {"choice": [1, 2]}}}
    flat = flatten(nested, keep=lambda v: "choice" in v)
    assert flat == {"model.grid_size": 5, "model.width": [2, 1], "a.b": {"c": 1}, "e": {},
                    "space.lr": {"choice": [1, 2]}}


def test_words_parse_as_yaml_and_mappings_flatten():
    words = ["model.width=[2,5,1]", "optim.lr=0.5", "name=", "x=null", "t=a: b: c"]
    assert parse_overrides(words) == [("model.width", [2, 5, 1]), ("optim.lr", 0.5),
                                      ("name", ""), ("x", None), ("t", "a: b: c")]
    assert parse_overrides({"model": {"grid_size": 3}}) == [("model.grid_size", 3)]
    assert parse_overrides(None) == []


def test_a_word_without_equals_names_the_fix():
    class MyError(ValueError):
        pass

    with pytest.raises(MyError, match=r"'grid' is not KEY=VALUE \(e\.g\. model\.grid_size=10\)"):
        parse_overrides(["grid"], MyError)
    assert split_override("model.width=[2, 1]") == ("model.width", "[2, 1]")


def test_set_dotted_creates_sections_and_keeps_whole_sections_flat():
    data: dict = {"fit": {"n_boot": 10}}
    set_dotted(data, "fit.floor", True)
    set_dotted(data, "families.mlp.overrides.trainer.max_steps", 5, whole=["overrides"])
    assert data == {"fit": {"n_boot": 10, "floor": True},
                    "families": {"mlp": {"overrides": {"trainer.max_steps": 5}}}}
    with pytest.raises(ValueError, match="fit.n_boot.x: n_boot is not a section"):
        set_dotted(data, "fit.n_boot.x", 1)


def test_get_dotted_reads_nested_keys_or_the_default():
    from kanplatform._util.dotted import get_dotted

    data = {"model": {"width": [2, 1], "grid_size": None}}
    assert get_dotted(data, "model.width") == [2, 1]
    assert get_dotted(data, "model.grid_size", "x") is None
    assert get_dotted(data, "model.kind", "x") == "x" and get_dotted(data, "a.b.c") is None
