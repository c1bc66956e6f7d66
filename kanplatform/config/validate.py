"""Semantic checks of a run config, and the registry of file validators behind ``validate``.

:func:`validate` runs before any work starts and raises one :class:`ConfigError` naming the
key and what would be valid. Other subpackages register validators for their own file kinds
(search spaces, job files) with :func:`register_validator`; ``kanplatform validate FILE...``
runs the first validator whose ``detect`` accepts the file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from kanplatform.config.load import ConfigError
from kanplatform.config.schema import (
    MATCH_MODES,
    MODEL_KINDS,
    OPTIMIZERS,
    PRECISIONS,
    REG_VARIANTS,
    TRACKING_MODES,
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
        ConfigError: the first problem found, e.g.
            ``model.grid_size: must be >= 1, got 0`` or
            ``model.width: first entry 3 != 2 inputs of dataset 'exp_sin_sq'``.
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
    _check_model_args(cfg)  # last: the keys above have their own, more specific messages
    return cfg


def _validate_data(d: DictConfig) -> None:
    from kanplatform.data import TARGETS, DataError
    from kanplatform.data.checks import check_data_config

    if d.dataset == "file":
        _check(bool(d.path), "data.path", "is required with dataset: file (a .csv or .npz)")
        path = Path(d.path)
        _check(path.is_file(), "data.path", f"file not found: {path}")
        _check(path.suffix in (".csv", ".npz"), "data.path", f"{path.suffix!r}: use .csv or .npz")
        for key in ("inputs", "targets"):
            _check(bool(list(d[key])), f"data.{key}", f"name at least one column of {path}")
        for key in ("n_train", "n_val", "n_test"):
            _check(d[key] >= 1, f"data.{key}", f"must be >= 1, got {d[key]}")
        try:  # the content: readable, numeric, finite, enough rows (kanplatform.data)
            check_data_config(d)
        except DataError as err:
            raise ConfigError(str(err)) from None
    else:
        _check(d.dataset in TARGETS, "data.dataset",
               f"unknown dataset {d.dataset!r}; valid: file, {', '.join(sorted(TARGETS))}")
    for key in ("n_train", "n_val", "n_test"):
        _check(d[key] >= 1, f"data.{key}", f"must be >= 1, got {d[key]}")
    _check(d.noise >= 0, "data.noise", f"must be >= 0, got {d.noise}")
    _check(d.batch_size is None or d.batch_size >= 1, "data.batch_size",
           f"must be >= 1 or null (full batch), got {d.batch_size}")


def _validate_model(cfg: DictConfig) -> None:
    from kanplatform.data import dataset_dims

    m = cfg.model
    _one_of(m.kind, "model.kind", _model_kinds())
    width = list(m.width)
    _check(len(width) >= 2, "model.width", f"needs at least [in, out], got {width}")
    _check(all(w >= 1 for w in width), "model.width", f"entries must be >= 1, got {width}")
    n_in, n_out = dataset_dims(cfg.data)
    name = cfg.data.dataset if cfg.data.dataset != "file" else cfg.data.path
    _check(width[0] == n_in, "model.width",
           f"first entry {width[0]} != {n_in} inputs of dataset {name!r} (use {n_in})")
    _check(width[-1] == n_out, "model.width",
           f"last entry {width[-1]} != {n_out} outputs of dataset {name!r} (use {n_out})")
    _check(m.grid_size >= 1, "model.grid_size", f"must be >= 1, got {m.grid_size}")
    _check(len(m.grid_range) == 2 and m.grid_range[0] < m.grid_range[1], "model.grid_range",
           f"must be [low, high] with low < high, got {list(m.grid_range)}")
    activations = _activations()
    _one_of(m.base_activation, "model.base_activation", activations)
    _one_of(m.activation, "model.activation", activations)
    _one_of(m.match, "model.match", MATCH_MODES)
    if m.match == "params":
        _check(m.kind == "mlp", "model.match", "'params' resizes MLP hidden layers; use kind: mlp")
        _check(len(width) >= 3, "model.width", "match: params needs at least one hidden layer")
        _check(m.match_params is not None and m.match_params >= 1, "model.match_params",
               "set a parameter count (or select model=mlp over a KAN config to fill it)")


def _check_model_args(cfg: DictConfig) -> None:
    """Every argument the model's constructor checks, without building it (nn's checks)."""
    from kanplatform.nn.checks import ModelArgError, check_model_args
    from kanplatform.train.models import model_spec

    schedule = list(cfg.grid.schedule)
    try:
        check_model_args(model_spec(cfg.model, schedule[0] if schedule else None,
                                    grid_eps=cfg.grid.grid_eps))
    except ModelArgError as err:
        key = {"grid_eps": "grid.grid_eps",
               "grid_size": "grid.schedule[0]" if schedule else "model.grid_size"
               }.get(err.arg, f"model.{err.arg}")
        message = str(err).removeprefix(f"{err.arg} ")  # "spline_order must be ..." -> "must be"
        raise ConfigError(f"{key}: {message}") from None


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


def _model_kinds() -> tuple[str, ...]:
    from kanplatform.nn import MODEL_REGISTRY

    return tuple(sorted(MODEL_REGISTRY)) or MODEL_KINDS


def _activations() -> tuple[str, ...]:
    from kanplatform.nn.functional import ACTIVATIONS

    return tuple(sorted(ACTIVATIONS))


# --- file validators: `kanplatform validate FILE...` -----------------------------------


@dataclass(frozen=True)
class FileValidator:
    """A kind of file ``kanplatform validate`` knows how to check.

    Attributes:
        kind: short name shown in the report (``run config``, ``search``, ``job``).
        detect: ``detect(path, data) -> bool``; ``data`` is the parsed YAML mapping (or None).
        check: ``check(path) -> str | None``; raises on an invalid file, may return a note.
    """

    kind: str
    detect: Callable[[Path, Any], bool]
    check: Callable[[Path], str | None]


VALIDATORS: list[FileValidator] = []


def register_validator(
    kind: str,
    detect: Callable[[Path, Any], bool],
    check: Callable[[Path], str | None],
    *,
    first: bool = True,
) -> None:
    """Teach ``kanplatform validate`` a file kind.

    Validators registered later are tried first (``first=True``), so specific kinds (a
    search space, a job file) win over the run-config fallback.

    Example:
        >>> register_validator("search", lambda p, d: isinstance(d, dict) and "space" in d,
        ...                    check_search_file)  # doctest: +SKIP
    """
    entry = FileValidator(kind, detect, check)
    VALIDATORS[:] = [v for v in VALIDATORS if v.kind != kind]
    VALIDATORS.insert(0, entry) if first else VALIDATORS.append(entry)


def _is_group_file(path: Path) -> bool:
    from kanplatform.config.load import config_root
    from kanplatform.config.schema import GROUPS

    root = config_root(path)
    return path.resolve().parent.parent == root.resolve() and path.parent.name in GROUPS


def _check_group_file(path: Path) -> str:
    from kanplatform.config.load import config_root, load_config
    from kanplatform.data import dataset_dims

    # a group file is valid when the default run config selecting it validates; the model's
    # in/out widths follow the dataset for this check (a data group changes the dims)
    group = path.parent.name
    cfg = load_config([], [f"{group}={path.stem}"], validate=False)
    if group in ("data", "model"):
        n_in, n_out = dataset_dims(cfg.data)
        width = list(cfg.model.width)
        width[0], width[-1] = n_in, n_out
        cfg.model.width = width
        if cfg.model.match == "params" and cfg.model.match_params is None:
            cfg.model.match_params = 100
    validate(cfg)
    return f"{group} group ({config_root(path).name}/{group})"


def _check_run_config(path: Path) -> str | None:
    from kanplatform.config.load import load_config

    load_config(path)
    return None


def _detect_run_config(path: Path, data: Any) -> bool:
    return path.suffix in (".yaml", ".yml")


register_validator("run config", _detect_run_config, _check_run_config)
register_validator("config group", lambda p, d: _is_group_file(p), _check_group_file)


def validate_file(path: str | Path) -> tuple[str, str | None]:
    """Validate one file with the first matching registered validator.

    Returns:
        ``(kind, note)``.

    Raises:
        ConfigError: unknown file kind or an invalid file (other validators may raise
            their own ``ValueError`` subclasses).
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) if path.suffix in (".yaml", ".yml") else None
    except yaml.YAMLError as err:
        raise ConfigError(f"not valid YAML: {err}") from None
    for validator in VALIDATORS:
        if validator.detect(path, data):
            return validator.kind, validator.check(path)
    kinds = ", ".join(v.kind for v in VALIDATORS)
    raise ConfigError(f"{path}: no validator for this file; known kinds: {kinds}")


def _detect_job_file(path: Path, data: Any) -> bool:
    from kanplatform.launch.jobfile import is_job_file

    return is_job_file(path, data)


def _check_job_file(path: Path) -> str:
    from kanplatform.launch.jobfile import check_job_file

    return check_job_file(path)


# job files (jobs/*.yaml): a mapping with `run: {command: ...}`; see kanplatform.launch.jobfile
register_validator("job", _detect_job_file, _check_job_file)


def _detect_study_file(path: Path, data: Any) -> bool:
    from kanplatform.scaling.spec import is_study_file

    return is_study_file(path, data)


def _check_study_file(path: Path) -> str:
    from kanplatform.scaling.spec import check_study_file

    return check_study_file(path)


# scaling studies (configs/scaling/*.yaml): a mapping with `families`; see kanplatform.scaling
register_validator("scaling study", _detect_study_file, _check_study_file)


def _detect_search_file(path: Path, data: Any) -> bool:
    from kanplatform.search.spec import is_search_file

    return is_search_file(path, data)


def _check_search_file(path: Path) -> str:
    from kanplatform.search.spec import check_search_file

    return check_search_file(path)


# Ray Tune searches (configs/search/*.yaml): a mapping with `space`; see kanplatform.search
register_validator("search", _detect_search_file, _check_search_file)
