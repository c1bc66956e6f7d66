"""Semantic checks of a run config that need nothing but the config itself.

:func:`validate` raises one :class:`ConfigError` naming the key and what would be valid.
The checks that need the registries (dataset names and dimensions, model kinds, activations,
data files) are :func:`kanplatform.train.resolve.check_run_config`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from kanplatform.config.load import ConfigError
from kanplatform.config.schema import (
    MATCH_MODES,
    OPTIMIZERS,
    PRECISIONS,
    REG_VARIANTS,
    TRACKING_MODES,
    model_keys,
)

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {message}")


def _one_of(value: Any, key: str, valid: tuple) -> None:
    _check(value in valid, key, f"{value!r} is not valid; valid: {', '.join(map(str, valid))}")


def validate(cfg: DictConfig) -> DictConfig:
    """Check a loaded config for values that cannot train; return it unchanged.

    Raises:
        ConfigError: the first problem found, e.g. ``model.grid_size: must be >= 1, got 0``.
    """
    _validate_data(cfg.data)
    _validate_model(cfg)
    _validate_optim(cfg)
    t = cfg.trainer
    _check(t.max_steps >= 1, "trainer.max_steps", f"must be >= 1, got {t.max_steps}")
    _one_of(t.precision, "trainer.precision", PRECISIONS)
    _one_of(t.accelerator, "trainer.accelerator", ACCELERATORS)
    _check(t.val_every_n_steps >= 1, "trainer.val_every_n_steps", "must be >= 1")
    _check(t.log_every_n_steps >= 1, "trainer.log_every_n_steps", "must be >= 1")
    _check(t.num_threads is None or t.num_threads >= 1, "trainer.num_threads",
           "must be >= 1 or null")
    _check(t.divergence_factor is None or t.divergence_factor == 0 or t.divergence_factor > 1,
           "trainer.divergence_factor", f"must be > 1, or 0/null to count only NaN/inf losses, "
           f"got {t.divergence_factor}")
    g = cfg.grid
    for i, size in enumerate(g.schedule):
        _check(size >= 1, f"grid.schedule[{i}]", f"grid sizes must be >= 1, got {size}")
    _check(all(a < b for a, b in zip(g.schedule, g.schedule[1:])), "grid.schedule",
           f"grid sizes must increase (extension refines the grid), got {list(g.schedule)}")
    _check(g.steps_per_stage >= 1, "grid.steps_per_stage", "must be >= 1")
    _check(g.update_every >= 0, "grid.update_every", "must be >= 0 (0 = no grid updates)")
    _check(0.0 <= g.grid_eps <= 1.0, "grid.grid_eps", f"must be in [0, 1], got {g.grid_eps}")
    r = cfg.reg
    _check(r.lamb >= 0, "reg.lamb", f"must be >= 0, got {r.lamb}")
    _one_of(r.variant, "reg.variant", REG_VARIANTS)
    _one_of(cfg.tracking.mode, "tracking.mode", TRACKING_MODES)
    _check(cfg.tracking.snapshot_every >= 0, "tracking.snapshot_every", "must be >= 0")
    return cfg


def _validate_data(d: DictConfig) -> None:
    for key in ("n_train", "n_val", "n_test"):
        _check(d[key] >= 1, f"data.{key}", f"must be >= 1, got {d[key]}")
    _check(d.noise >= 0, "data.noise", f"must be >= 0, got {d.noise}")
    _check(d.batch_size is None or d.batch_size >= 1, "data.batch_size",
           f"must be >= 1 or null (full batch), got {d.batch_size}")
    _check(d.n_ood >= 0, "data.n_ood", f"must be >= 0 (0 = no out-of-domain split), got {d.n_ood}")
    shell = list(d.ood_shell)
    _check(len(shell) == 2 and 1.0 <= shell[0] < shell[1], "data.ood_shell",
           f"must be [r_lo, r_hi] with 1 <= r_lo < r_hi (half-widths of the training box), "
           f"got {shell}")


def _validate_model(cfg: DictConfig) -> None:
    m = cfg.model
    width = list(m.width)
    _check(len(width) >= 2, "model.width", f"needs at least [in, out], got {width}")
    _check(all(w >= 1 for w in width), "model.width", f"entries must be >= 1, got {width}")
    _check(m.grid_size >= 1, "model.grid_size", f"must be >= 1, got {m.grid_size}")
    _check(len(m.grid_range) == 2 and m.grid_range[0] < m.grid_range[1], "model.grid_range",
           f"must be [low, high] with low < high, got {list(m.grid_range)}")
    _one_of(m.match, "model.match", MATCH_MODES)
    if m.match == "params":
        _check("match" in model_keys(m.kind), "model.match",
               "'params' resizes MLP hidden layers; use kind: mlp")
        _check(len(width) >= 3, "model.width", "match: params needs at least one hidden layer")
        _check(m.match_params is not None and m.match_params >= 1, "model.match_params",
               "set a parameter count (or select model=mlp over a KAN config to fill it)")


def _validate_optim(cfg: DictConfig) -> None:
    o = cfg.optim
    _one_of(o.name, "optim.name", OPTIMIZERS)
    _check(o.lr > 0, "optim.lr", f"must be > 0, got {o.lr}")
    _check(o.weight_decay >= 0, "optim.weight_decay", f"must be >= 0, got {o.weight_decay}")
    _one_of(o.line_search, "optim.line_search", (None, "strong_wolfe"))
    _check(o.history_size >= 1 and o.max_iter >= 1, "optim.max_iter",
           "history_size and max_iter must be >= 1")
    if o.name == "lbfgs":
        _check(cfg.data.batch_size is None, "data.batch_size",
               "LBFGS needs the full batch: set data.batch_size: null (or use optim.name=adam)")


# --- which file is which, for `kanplatform validate` (its file-kind table is in cli) --------


def is_group_file(path: Path, data: Any = None) -> bool:
    """Whether ``path`` is a config group file (``configs/model/mlp.yaml``...)."""
    from kanplatform.config.load import config_root
    from kanplatform.config.schema import GROUPS

    root = config_root(path)
    return path.resolve().parent.parent == root.resolve() and path.parent.name in GROUPS


def is_run_config(path: Path, data: Any = None) -> bool:
    """Any other YAML file is taken for a run config."""
    return path.suffix in (".yaml", ".yml")
