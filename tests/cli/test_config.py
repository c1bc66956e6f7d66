"""``kanplatform config show`` and ``kanplatform config keys``."""

import dataclasses
from pathlib import Path

import yaml

from kanplatform.cli import main
from kanplatform.config.keys import schema_keys
from kanplatform.config.schema import RunConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _fields(cls: type, prefix: str = "") -> list[str]:
    out = []
    for f in dataclasses.fields(cls):
        sub = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
        out += (_fields(type(sub), f"{prefix}{f.name}.") if dataclasses.is_dataclass(sub)
                else [f"{prefix}{f.name}"])
    return out


def test_config_keys_lists_every_schema_field_with_type_default_and_meaning(capsys):
    assert main(["config", "keys"]) == 0
    lines = capsys.readouterr().out.splitlines()
    fields = _fields(RunConfig)
    assert [line.split()[0] for line in lines] == fields  # every field, in schema order
    undocumented = [k.key for k in schema_keys() if not k.doc]
    assert not undocumented, f"schema fields without an Attributes entry: {undocumented}"
    grid_size = next(line for line in lines if line.startswith("model.grid_size "))
    assert grid_size.split()[1:3] == ["int", "5"] and "intervals" in grid_size
    assert any(line.split()[:3] == ["data.batch_size", "int", "|"] and "null" in line
               for line in lines)


def test_config_keys_of_one_section_and_an_unknown_one(capsys):
    assert main(["config", "keys", "reg"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == \
        ["reg.lamb", "reg.lamb_l1", "reg.lamb_entropy", "reg.variant"]
    assert main(["config", "keys", "modle"]) == 2
    assert "no config section 'modle'; sections: data, grid, model" in capsys.readouterr().err


def test_config_show_prints_the_resolved_config_and_names_every_problem(capsys):
    assert main(["config", "show", str(CONFIGS / "experiment" / "quick.yaml"),
                 "model.grid_size=7", "seed=3"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["model"]["grid_size"] == 7 and shown["seed"] == 3
    assert shown["grid"]["schedule"] == [3, 5] and shown["name"] == "quick"
    assert main(["config", "show", str(CONFIGS / "experiment" / "quick.yaml"), "seed=x",
                 "modle.width=[2,1]"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("invalid config: 2 problems:") and "did you mean 'model'" in err
