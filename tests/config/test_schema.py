"""Per-kind model configs: the registry of dataclasses agrees with the nn registry and with the
`model:` section a YAML file may hold."""

import dataclasses
import inspect

import pytest

from kanplatform.config.schema import MODEL_CONFIGS, ModelConfig, has_grid, model_keys
from kanplatform.nn import MODEL_REGISTRY, GridModel, build_model
from kanplatform.train.models import model_spec


def _defaults(cls: type) -> dict:
    return {f.name: f.default_factory() if f.default is dataclasses.MISSING else f.default
            for f in dataclasses.fields(cls)}


def test_the_model_section_holds_every_kinds_keys_with_the_same_defaults():
    section = _defaults(ModelConfig)
    for kind, cls in MODEL_CONFIGS.items():
        for key, value in _defaults(cls).items():
            assert key in section, f"{kind}: key {key!r} missing from ModelConfig's bases"
            assert key == "kind" or section[key] == value, (kind, key)
    assert set(section) == {k for cls in MODEL_CONFIGS.values() for k in _defaults(cls)}


@pytest.mark.parametrize("kind", sorted(MODEL_REGISTRY))
def test_every_registered_model_builds_from_its_config_defaults(kind):
    assert kind in MODEL_CONFIGS, f"model kind {kind!r} has no config dataclass"
    cfg = {**_defaults(MODEL_CONFIGS[kind]), "kind": kind, "width": [2, 3, 1]}
    spec = model_spec(cfg, grid_size=4, grid_eps=0.1, seed=0)
    accepted = inspect.signature(MODEL_REGISTRY[kind].__init__).parameters
    assert set(spec) - {"kind"} <= set(accepted)
    model = build_model(spec)
    # the config side and the model side of "has a grid" agree
    assert has_grid(kind) == isinstance(model, GridModel)
    if has_grid(kind):
        assert model.grid_size == 4 and spec["grid_eps"] == 0.1


def test_a_kind_reads_its_own_keys_and_ignores_the_others():
    both = dataclasses.asdict(ModelConfig(width=[2, 4, 1], grid_size=7, activation="tanh"))
    kan = model_spec({**both, "kind": "kan"})
    mlp = model_spec({**both, "kind": "mlp"})
    assert kan["grid_size"] == 7 and "activation" not in kan
    assert mlp["activation"] == "tanh" and "grid_size" not in mlp and "match" not in mlp
    assert model_keys("nope") == [] and not has_grid("nope")
    with pytest.raises(ValueError, match=r"unknown model kind 'nope'; valid kinds: \['kan'"):
        model_spec({"kind": "nope", "width": [2, 1]})
