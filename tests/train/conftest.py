"""Shared fixtures: the shipped quick config, shrunk further, writing under tmp_path."""

from pathlib import Path

import pytest

from kanplatform.config import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
QUICK = CONFIGS / "experiment" / "quick.yaml"


@pytest.fixture
def quick_cfg(tmp_path):
    """The quick experiment (2 grids x 10 LBFGS steps) writing under tmp_path."""
    return load_config(QUICK, [f"output_dir={tmp_path / 'runs'}", "trainer.num_threads=1"])
