"""Loading configs: files, defaults, groups, overrides, round trips."""

from pathlib import Path

import pytest
from omegaconf import DictConfig

from kanplatform.config import (
    ConfigError,
    apply_overrides,
    load_config,
    save_config,
    to_dict,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
GRID_EXT = CONFIGS / "experiment" / "grid_extension.yaml"


def test_grid_extension_matches_the_paper_setup():
    cfg = load_config(GRID_EXT)
    assert cfg.model.kind == "kan" and list(cfg.model.width) == [2, 1, 1]
    assert cfg.data.dataset == "exp_sin_sq"
    assert (cfg.data.n_train, cfg.data.n_test) == (1000, 1000)
    assert list(cfg.grid.schedule) == [3, 5, 10, 20, 50]
    assert cfg.grid.steps_per_stage == 200
    assert cfg.optim.name == "lbfgs" and cfg.optim.line_search == "strong_wolfe"
    assert cfg.trainer.precision == 64


def test_key_overrides_from_strings_and_dicts():
    cfg = load_config(GRID_EXT, ["model.grid_size=10", "optim.lr=0.5", "seed=3"])
    assert (cfg.model.grid_size, cfg.optim.lr, cfg.seed) == (10, 0.5, 3)
    other = apply_overrides(cfg, {"model.grid_size": 7, "data": {"n_train": 10}})
    assert other.model.grid_size == 7 and other.data.n_train == 10
    assert cfg.model.grid_size == 10  # the input is not modified


def test_list_values_parse_as_yaml():
    cfg = load_config(GRID_EXT, ["model.width=[2,3,1]", "grid.schedule=[3,5]"])
    assert list(cfg.model.width) == [2, 3, 1] and list(cfg.grid.schedule) == [3, 5]


def test_group_selection_swaps_the_section_and_keeps_io_dims():
    cfg = load_config(GRID_EXT, ["model=mlp"], validate=False)
    assert cfg.model.kind == "mlp" and cfg.model.activation == "silu"
    assert cfg.model.width[0] == 2 and cfg.model.width[-1] == 1
    assert cfg.model.match == "params"  # the count: tests/train/test_resolve.py


def test_group_selection_is_applied_before_keys():
    cfg = load_config(GRID_EXT, ["model.activation=tanh", "model=mlp"], validate=False)
    assert cfg.model.kind == "mlp" and cfg.model.activation == "tanh"


def test_data_group_falls_back_to_dataset_names():
    cfg = load_config(GRID_EXT, ["data=feynman_I_12_11"], validate=False)
    assert cfg.data.dataset == "feynman_I_12_11"


def test_unknown_group_name_lists_valid_ones():
    with pytest.raises(ConfigError, match=r"model=cnn: .*valid model names: kan, mlp"):
        load_config(GRID_EXT, ["model=cnn"])


def test_unknown_override_key_is_named():
    with pytest.raises(ConfigError, match=r"unknown key 'optim\.learning_rate'.*lr"):
        load_config(GRID_EXT, ["optim.learning_rate=1"])


def test_override_without_equals_sign():
    with pytest.raises(ConfigError, match="not KEY=VALUE"):
        apply_overrides(load_config(GRID_EXT), ["model.grid_size"])


def test_wrong_type_override():
    with pytest.raises(ConfigError, match=r"model\.grid_size"):
        load_config(GRID_EXT, ["model.grid_size=abc"])


def test_to_dict_is_plain_and_round_trips(tmp_path):
    cfg = load_config(GRID_EXT, ["model.grid_size=10"])
    plain = to_dict(cfg)
    assert type(plain) is dict and type(plain["model"]["width"]) is list
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert isinstance(again, DictConfig) and to_dict(again) == plain


def test_loading_a_plain_dict_applies_it():
    cfg = load_config([], {"model.grid_size": 4, "name": "x"})
    assert cfg.model.grid_size == 4 and cfg.name == "x"


def test_later_files_win(tmp_path):
    over = tmp_path / "over.yaml"
    over.write_text("model:\n  grid_size: 11\n")
    cfg = load_config([GRID_EXT, over])
    assert cfg.model.grid_size == 11 and list(cfg.grid.schedule) == [3, 5, 10, 20, 50]


def test_missing_file():
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("no/such/file.yaml")
