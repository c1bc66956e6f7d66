"""Every shipped YAML validates; each broken config fails with its own message."""

from pathlib import Path

import pytest

from kanplatform.config import VALIDATORS, ConfigError, load_config, validate_file

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
ALL_YAML = sorted(CONFIGS.rglob("*.yaml"))
MINE = [p for p in ALL_YAML if p.parent.name in ("model", "data", "trainer", "experiment")
        or p.parent == CONFIGS]


def test_configs_are_found():
    assert len(MINE) >= 10


@pytest.mark.parametrize("path", ALL_YAML, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_shipped_yaml_validates(path):
    """Run configs and groups here; other kinds (search, scaling) through their validators."""
    import yaml

    data = yaml.safe_load(path.read_text())
    kinds = [v.kind for v in VALIDATORS if v.detect(path, data)]
    if path not in MINE and kinds[:1] == ["run config"]:
        pytest.skip(f"no validator registered for {path.parent.name}/ files yet")
    kind, _ = validate_file(path)
    assert kind == kinds[0]


@pytest.mark.parametrize("path", [p for p in MINE if p.parent.name in ("experiment",)
                                  or p.parent == CONFIGS], ids=lambda p: p.name)
def test_top_level_configs_load(path):
    cfg = load_config(path)
    assert cfg.name


BROKEN = {
    "unknown_key": ("model:\n  gridsize: 5\n", r"unknown key 'model\.gridsize'.*grid_size"),
    "unknown_section": ("modle:\n  kind: kan\n", r"unknown key 'modle'.*model"),
    "wrong_type": ("model:\n  grid_size: five\n", r"model\.grid_size.*'five'"),
    "grid_size_0": ("model:\n  grid_size: 0\n", r"model\.grid_size: must be >= 1, got 0"),
    "width_in": ("model:\n  width: [3, 1, 1]\n",
                 r"model\.width: first entry 3 != 2 inputs of dataset 'exp_sin_sq'"),
    "width_out": ("model:\n  width: [2, 1, 2]\n",
                  r"model\.width: last entry 2 != 1 outputs of dataset 'exp_sin_sq'"),
    "unknown_dataset": ("data:\n  dataset: nope\n", r"data\.dataset: unknown dataset 'nope'.*xy"),
    "unknown_kind": ("model:\n  kind: cnn\n", r"model\.kind: 'cnn' is not valid; valid: kan, mlp"),
    "unknown_optimizer": ("optim:\n  name: sgd\n", r"optim\.name: 'sgd'.*lbfgs, adam, adamw"),
    "lbfgs_minibatch": ("data:\n  batch_size: 32\n", r"data\.batch_size: LBFGS needs the full"),
    "precision": ("trainer:\n  precision: 16\n",
                  r"trainer\.precision: 16 is not valid; valid: 32, 64"),
    "schedule_order": ("grid:\n  schedule: [5, 3]\n", r"grid\.schedule: grid sizes must increase"),
    "schedule_zero": ("grid:\n  schedule: [0, 3]\n",
                      r"grid\.schedule\[0\]: grid sizes must be >= 1"),
    "tracking_mode": ("tracking:\n  mode: cloud\n", r"tracking\.mode: 'cloud'.*offline"),
    "missing_data_file": ("data:\n  dataset: file\n  path: /no/such.csv\n",
                          r"data\.path: file not found"),
    "bad_group": ("defaults:\n  - modle: kan\n", r"unknown group 'modle' in defaults"),
    "missing_group_file": ("defaults:\n  - model: cnn\n", r"model=cnn: no file"),
    "match_without_count": ("model:\n  kind: mlp\n  width: [2, 4, 1]\n  match: params\n",
                            r"model\.match_params: set a parameter count"),
    "not_a_mapping": ("- 1\n- 2\n", r"expected a mapping"),
    "spline_order_0": ("model:\n  spline_order: 0\n",
                       r"model\.spline_order: must be an integer >= 1, got 0"),
    "base_activation": ("model:\n  base_activation: swish\n", r"model\.base_activation"),
    "mlp_activation": ("model:\n  kind: mlp\n  width: [2, 4, 1]\n  activation: swish\n",
                       r"model\.activation"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_config_fails_with_its_message(tmp_path, name):
    text, message = BROKEN[name]
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_file_dataset_columns_are_checked(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("a,b,y\n1,2,3\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data:\n  dataset: file\n  path: {data}\n  inputs: [a, c]\n  targets: [y]\n")
    with pytest.raises(ConfigError, match=r"data\.inputs: no column \['c'\].*columns: a, b, y"):
        load_config(cfg)
