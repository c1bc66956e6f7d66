"""Semantic checks of a run config that need nothing but the config itself.

:func:`validate` raises one :class:`ConfigError` naming every problem: the key, the bad
value and what would be valid.
The checks that need the registries (dataset names and dimensions, model kinds, activations,
data files) are :func:`kanplatform.train.resolve.check_run_config`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from kanplatform._util.problems import Problems
from kanplatform.config.load import ConfigError
from kanplatform.config.schema import (
    EARLY_STOP_MODES,
    MATCH_MODES,
    NORMALIZE,
    OPTIMIZERS,
    PRECISIONS,
    REG_VARIANTS,
    SCHEDULERS,
    TASKS,
    TRACKING_MODES,
    model_keys,
)

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
HIGHER_IS_BETTER = ("accuracy", "f1")  # metric names (after the split) that grow when better


def task_metrics(task: str) -> tuple[str, ...]:
    """The ``{split}/{name}`` metrics a run of ``task`` logs (DESIGN.md names)."""
    if task == "classification":
        return ("train/loss", "train/accuracy", "val/loss", "val/accuracy", "val/f1",
                "test/loss", "test/accuracy", "test/f1")
    return ("train/loss", "train/rmse", "val/rmse", "test/rmse")


def validate(cfg: DictConfig, problems: Problems | None = None) -> DictConfig:
    """Check a loaded config for values that cannot train; return it unchanged.

    Args:
        cfg: the config.
        problems: add every problem here instead of raising (the caller raises them all).

    Raises:
        ConfigError: every problem found, one per line, e.g. ``model.grid_size: must be >= 1,
            got 0``, ``optim.name: 'adm' is not valid; valid: ... (did you mean 'adam'?)``.
    """
    p = problems if problems is not None else Problems(ConfigError)
    p.one_of(cfg.task, "task", TASKS)
    _validate_data(cfg.data, p)
    _validate_model(cfg, p)
    _validate_optim(cfg, p)
    _validate_trainer(cfg.trainer, p)
    g = cfg.grid
    for i, size in enumerate(g.schedule):
        p.check(size >= 1, f"grid.schedule[{i}]", f"grid sizes must be >= 1, got {size}")
    p.check(all(a < b for a, b in zip(g.schedule, g.schedule[1:])), "grid.schedule",
            f"grid sizes must increase (extension refines the grid), got {list(g.schedule)}")
    p.check(g.steps_per_stage >= 1, "grid.steps_per_stage", "must be >= 1")
    p.check(g.update_every >= 0, "grid.update_every", "must be >= 0 (0 = no grid updates)")
    p.check(0.0 <= g.grid_eps <= 1.0, "grid.grid_eps", f"must be in [0, 1], got {g.grid_eps}")
    r = cfg.reg
    p.check(r.lamb >= 0, "reg.lamb", f"must be >= 0, got {r.lamb}")
    p.one_of(r.variant, "reg.variant", REG_VARIANTS)
    p.one_of(cfg.tracking.mode, "tracking.mode", TRACKING_MODES)
    p.check(cfg.tracking.snapshot_every >= 0, "tracking.snapshot_every", "must be >= 0")
    if problems is None:
        p.raise_if_any()
    return cfg


def _validate_trainer(t: DictConfig, p: Problems) -> None:
    p.check(t.max_steps is None or t.max_steps >= 1, "trainer.max_steps",
            f"must be >= 1 (or null with trainer.max_epochs), got {t.max_steps}")
    p.check(t.max_epochs is None or t.max_epochs >= 1, "trainer.max_epochs",
            f"must be >= 1 or null, got {t.max_epochs}")
    p.check(t.max_steps is not None or t.max_epochs is not None, "trainer.max_steps",
            "is null, so set trainer.max_epochs (a run needs a budget)")
    p.one_of(t.precision, "trainer.precision", PRECISIONS)
    p.one_of(t.accelerator, "trainer.accelerator", ACCELERATORS)
    p.check(t.val_every_n_steps >= 1, "trainer.val_every_n_steps", "must be >= 1")
    p.check(t.log_every_n_steps >= 1, "trainer.log_every_n_steps", "must be >= 1")
    p.check(t.num_threads is None or t.num_threads >= 1, "trainer.num_threads",
            "must be >= 1 or null")
    p.check(t.divergence_factor is None or t.divergence_factor == 0 or t.divergence_factor > 1,
            "trainer.divergence_factor", f"must be > 1, or 0/null to count only NaN/inf losses, "
            f"got {t.divergence_factor}")
    p.check(t.gradient_clip_val is None or t.gradient_clip_val > 0, "trainer.gradient_clip_val",
            f"must be > 0 or null, got {t.gradient_clip_val}")
    e = t.early_stopping
    if e is not None:
        p.check(e.metric is None or str(e.metric).startswith("val/"),
                "trainer.early_stopping.metric",
                f"{e.metric!r} is not a validation metric; use e.g. val/loss, val/rmse, "
                "val/accuracy")
        higher = isinstance(e.metric, str) and e.metric.split("/")[-1] in HIGHER_IS_BETTER
        p.check(not higher or e.mode == "max", "trainer.early_stopping.mode",
                f"{e.metric} grows as the model improves: use mode: max")
        p.check(e.patience >= 1, "trainer.early_stopping.patience",
                f"must be >= 1 validations, got {e.patience}")
        p.one_of(e.mode, "trainer.early_stopping.mode", EARLY_STOP_MODES)
        p.check(e.min_delta >= 0, "trainer.early_stopping.min_delta", "must be >= 0")


def size_value(value: Any) -> int | None:
    """A ``data.n_train``/``n_val``/``n_test`` value as a count, or None for every row."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "all"):
        return None
    return int(value)


def _validate_data(d: DictConfig, p: Problems) -> None:
    for key in ("n_train", "n_val", "n_test"):
        value = d[key]
        ok = value is None or (isinstance(value, str) and value.strip().lower() == "all") or (
            isinstance(value, int) and not isinstance(value, bool) and value >= 1)
        p.check(ok, f"data.{key}", f"must be a count >= 1, or null/all for every row by "
                f"data.split, got {value!r}")
    split = list(d.split)
    if p.check(len(split) == 3 and all(isinstance(f, float | int) and f >= 0 for f in split)
               and split[0] > 0 and sum(split) > 0, "data.split",
               f"must be three fractions [train, val, test] (train > 0), got {split}"):
        p.check(abs(sum(split) - 1.0) < 1e-6, "data.split",
                f"fractions must add up to 1, got {split} (sum {sum(split):g})")
    p.one_of(d.normalize, "data.normalize", NORMALIZE)
    p.check(d.pool >= 1, "data.pool", f"must be >= 1 (1 = full resolution), got {d.pool}")
    p.check(d.noise >= 0, "data.noise", f"must be >= 0, got {d.noise}")
    p.check(d.batch_size is None or d.batch_size >= 1, "data.batch_size",
            f"must be >= 1 or null (full batch), got {d.batch_size}")
    p.check(d.n_ood >= 0, "data.n_ood", f"must be >= 0 (0 = no out-of-domain split), got {d.n_ood}")
    shell = list(d.ood_shell)
    p.check(len(shell) == 2 and 1.0 <= shell[0] < shell[1], "data.ood_shell",
            f"must be [r_lo, r_hi] with 1 <= r_lo < r_hi (half-widths of the training box), "
            f"got {shell}")


def _validate_model(cfg: DictConfig, p: Problems) -> None:
    m = cfg.model
    width = list(m.width)
    p.check(len(width) >= 2, "model.width", f"needs at least [in, out], got {width}")
    p.check(all(w >= 1 for w in width), "model.width", f"entries must be >= 1, got {width}")
    p.check(m.grid_size >= 1, "model.grid_size", f"must be >= 1, got {m.grid_size}")
    p.check(len(m.grid_range) == 2 and m.grid_range[0] < m.grid_range[1], "model.grid_range",
           f"must be [low, high] with low < high, got {list(m.grid_range)}")
    p.one_of(m.match, "model.match", MATCH_MODES)
    if m.match == "params":
        p.check("match" in model_keys(m.kind), "model.match",
                "'params' resizes MLP hidden layers; use kind: mlp")
        p.check(len(width) >= 3, "model.width", "match: params needs at least one hidden layer")
        p.check(m.match_params is not None and m.match_params >= 1, "model.match_params",
                "set a parameter count (or select model=mlp over a KAN config to fill it)")


def _validate_optim(cfg: DictConfig, p: Problems) -> None:
    o = cfg.optim
    p.one_of(o.name, "optim.name", OPTIMIZERS)
    p.check(o.lr > 0, "optim.lr", f"must be > 0, got {o.lr}")
    p.check(o.weight_decay >= 0, "optim.weight_decay", f"must be >= 0, got {o.weight_decay}")
    p.one_of(o.line_search, "optim.line_search", (None, "strong_wolfe"))
    p.check(o.history_size >= 1 and o.max_iter >= 1, "optim.max_iter",
            "history_size and max_iter must be >= 1")
    p.one_of(o.scheduler, "optim.scheduler", SCHEDULERS)
    p.check(o.warmup_steps >= 0, "optim.warmup_steps", f"must be >= 0, got {o.warmup_steps}")
    p.check(o.step_size >= 1, "optim.step_size", f"must be >= 1, got {o.step_size}")
    p.check(0 < o.gamma <= 1, "optim.gamma", f"must be in (0, 1], got {o.gamma}")
    p.check(0 <= o.min_lr <= o.lr, "optim.min_lr", f"must be in [0, optim.lr], got {o.min_lr}")
    if o.name == "lbfgs":
        p.check(cfg.data.batch_size is None, "data.batch_size",
                "LBFGS needs the full batch: set data.batch_size: null (or use optim.name=adam)")
        p.check(o.scheduler == "none", "optim.scheduler",
                "LBFGS steps its own line search: use optim.scheduler: none (or optim.name=adam)")
        p.check(cfg.trainer.gradient_clip_val is None, "trainer.gradient_clip_val",
                "clipping needs automatic optimisation: use it with optim.name=adam/adamw")
        p.check(cfg.trainer.precision != "bf16-mixed", "trainer.precision",
                "bf16-mixed is for Adam/AdamW mini-batch training; LBFGS needs 32 or 64")


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
