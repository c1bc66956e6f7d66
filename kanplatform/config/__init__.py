"""Run configs: typed schema, loading with overrides, validation.

Example:
    >>> from kanplatform.config import load_config, apply_overrides, to_dict
    >>> cfg = load_config("configs/experiment/grid_extension.yaml")  # doctest: +SKIP
    >>> cfg = apply_overrides(cfg, {"model.grid_size": 10})          # doctest: +SKIP
"""

from kanplatform._util.dotted import flatten
from kanplatform.config.load import (
    ConfigError,
    apply_overrides,
    config_root,
    load_config,
    save_config,
    to_dict,
)
from kanplatform.config.schema import (
    DataConfig,
    GridConfig,
    ModelConfig,
    OptimConfig,
    RegConfig,
    RunConfig,
    TrackingConfig,
    TrainerConfig,
)
from kanplatform.config.validate import validate

__all__ = [
    "ConfigError",
    "DataConfig",
    "GridConfig",
    "ModelConfig",
    "OptimConfig",
    "RegConfig",
    "RunConfig",
    "TrackingConfig",
    "TrainerConfig",
    "apply_overrides",
    "config_root",
    "flatten",
    "load_config",
    "save_config",
    "to_dict",
    "validate",
]
