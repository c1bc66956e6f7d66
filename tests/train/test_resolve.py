"""The run config that trains: the checks and fills that need the data and model registries."""

from pathlib import Path

import pytest

from kanplatform.config import ConfigError, load_config
from kanplatform.nn import KAN, count_params
from kanplatform.train.resolve import apply_run_overrides, check_run_config, load_run_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
GRID_EXT = CONFIGS / "experiment" / "grid_extension.yaml"

BROKEN = {
    "width_in": ("model:\n  width: [3, 1, 1]\n",
                 r"model\.width: first entry 3 != 2 inputs of dataset 'exp_sin_sq'"),
    "width_out": ("model:\n  width: [2, 1, 2]\n",
                  r"model\.width: last entry 2 != 1 outputs of dataset 'exp_sin_sq'"),
    "unknown_dataset": ("data:\n  dataset: nope\n", r"data\.dataset: unknown dataset 'nope'.*xy"),
    "unknown_kind": ("model:\n  kind: cnn\n", r"model\.kind: 'cnn' is not valid; valid: kan, mlp"),
    "unknown_activation": ("model:\n  base_activation: swish\n",
                           r"model\.base_activation: 'swish' is not valid; valid: gelu"),
    "missing_data_file": ("data:\n  dataset: file\n  path: /no/such.csv\n",
                          r"data\.path: file not found"),
    "range_still_checked": ("model:\n  grid_size: 0\n", r"model\.grid_size: must be >= 1, got 0"),
    "spline_order_0": ("model:\n  spline_order: 0\n",
                       r"model\.spline_order: must be an integer >= 1, got 0"),
    "mlp_activation": ("model:\n  kind: mlp\n  width: [2, 4, 1]\n  activation: swish\n",
                       r"model\.activation"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_config_fails_with_its_message(tmp_path, name):
    text, message = BROKEN[name]
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    load_config(path, validate=False)  # the schema alone takes it
    with pytest.raises(ConfigError, match=message):
        load_run_config(path)


def test_file_dataset_columns_are_checked(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("a,b,y\n1,2,3\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data:\n  dataset: file\n  path: {data}\n  inputs: [a, c]\n  targets: [y]\n")
    with pytest.raises(ConfigError, match=r"data\.inputs: no column \['c'\].*columns: a, b, y"):
        load_run_config(cfg)


def test_an_mlp_selected_over_a_kan_matches_its_parameter_count():
    cfg = load_run_config(GRID_EXT, ["model=mlp"])
    assert cfg.model.kind == "mlp" and cfg.model.match == "params"
    kan = load_run_config(GRID_EXT)
    final = KAN(width=list(kan.model.width), grid_size=kan.grid.schedule[-1])
    assert cfg.model.match_params == count_params(final)
    # model.* overrides beside model=mlp size the KAN it is matched to (the user's KAN)
    wide = load_run_config(GRID_EXT, ["model.width=[2,7,1]", "model=mlp",
                                      "model.activation=relu", "grid.schedule=[3,9]"])
    assert wide.model.match_params == count_params(KAN(width=[2, 7, 1], grid_size=9))
    assert wide.model.activation == "relu"
    # the resolved config holds the widths the MLP trains with (idempotent: matched again)
    from kanplatform.train.models import build_model_from_config

    assert list(cfg.model.width) == build_model_from_config(cfg.model).width
    assert list(cfg.model.width)[1] != 32
    # the schema alone keeps the widths but cannot count: the check then names the key
    bare = load_config(GRID_EXT, ["model=mlp"], validate=False)
    assert bare.model.match_params is None and list(bare.model.width)[::3] == [2, 1]
    with pytest.raises(ConfigError, match=r"model\.match_params: set a parameter count"):
        check_run_config(bare)


def test_overrides_on_a_loaded_config_match_too_and_leave_it_unchanged():
    kan = load_run_config(GRID_EXT)
    mlp = apply_run_overrides(kan, {"model": "mlp", "seed": 4}, check=True)
    assert mlp.model.match_params > 0 and mlp.seed == 4 and kan.model.kind == "kan"


def test_a_data_name_without_group_file_is_a_dataset_checked_by_the_registry():
    assert load_run_config(GRID_EXT, ["data=feynman_I_12_11"]) \
        .data.dataset == "feynman_I_12_11"
    with pytest.raises(ConfigError, match=r"data\.dataset: unknown dataset 'feynman_nope'"):
        load_run_config(GRID_EXT, ["data=feynman_nope"])
