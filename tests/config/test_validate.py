"""Every shipped run config loads; each broken config fails with its own message (the checks
that need no registry: the others are tests/train/test_resolve.py's)."""

from pathlib import Path

import pytest

from kanplatform.config import ConfigError, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
ALL_YAML = sorted(CONFIGS.rglob("*.yaml"))
MINE = [p for p in ALL_YAML if p.parent.name in ("model", "data", "trainer", "experiment")
        or p.parent == CONFIGS]


def test_configs_are_found():
    assert len(MINE) >= 10


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
    "unknown_optimizer": ("optim:\n  name: sgd\n", r"optim\.name: 'sgd'.*lbfgs, adam, adamw"),
    "lbfgs_minibatch": ("data:\n  batch_size: 32\n", r"data\.batch_size: LBFGS needs the full"),
    "precision": ("trainer:\n  precision: 16\n",
                  r"trainer\.precision: 16 is not valid; valid: 32, 64"),
    "schedule_order": ("grid:\n  schedule: [5, 3]\n", r"grid\.schedule: grid sizes must increase"),
    "schedule_zero": ("grid:\n  schedule: [0, 3]\n",
                      r"grid\.schedule\[0\]: grid sizes must be >= 1"),
    "tracking_mode": ("tracking:\n  mode: cloud\n", r"tracking\.mode: 'cloud'.*offline"),
    "bad_group": ("defaults:\n  - modle: kan\n", r"unknown group 'modle' in defaults"),
    "missing_group_file": ("defaults:\n  - model: cnn\n", r"model=cnn: no file"),
    "match_without_count": ("model:\n  kind: mlp\n  width: [2, 4, 1]\n  match: params\n",
                            r"model\.match_params: set a parameter count"),
    "not_a_mapping": ("- 1\n- 2\n", r"expected a mapping"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_config_fails_with_its_message(tmp_path, name):
    text, message = BROKEN[name]
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)
