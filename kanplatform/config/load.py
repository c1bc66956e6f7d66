"""Load run configs: YAML files and ``key=value`` overrides merged onto the typed schema.

A top-level config file holds sections of :class:`~kanplatform.config.schema.RunConfig`
and may start with a ``defaults`` list naming group files and other top-level files::

    defaults:
      - model: kan             # configs/model/kan.yaml  -> the `model` section
      - data: exp_sin_sq       # configs/data/exp_sin_sq.yaml -> the `data` section
      - ../default.yaml        # another top-level file, relative to this one
    model:
      grid_size: 10            # this file's own keys win over its defaults

Overrides (CLI arguments and Ray Tune samples alike, via :func:`apply_overrides`):

- ``model.grid_size=10`` sets one key (values parse as YAML: ``model.width=[2,5,1]``);
- ``model=mlp`` selects a group file: the section is reset to its schema defaults and
  ``configs/model/mlp.yaml`` merged on top (group selections are applied before keys).
  For ``model=...`` the input/output widths of the replaced model are kept (a group file
  with ``match: params`` is matched to the replaced KAN's parameter count by
  :func:`kanplatform.train.resolve.apply_run_overrides`, which counts it);
- ``data=NAME`` falls back to ``data.dataset=NAME`` when there is no ``configs/data/NAME.yaml``
  (whether NAME is a dataset is checked with the registry, by
  :func:`kanplatform.train.resolve.check_run_config`).

This module knows the schema and the files, nothing of models or datasets: the run config
``kanplatform train`` trains is :func:`kanplatform.train.resolve.load_run_config`'s.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from kanplatform._util.dotted import Overrides, flatten, parse_overrides
from kanplatform._util.problems import Problems, did_you_mean
from kanplatform._util.yamlfile import read_yaml
from kanplatform.config.schema import GROUPS, RunConfig


class ConfigError(ValueError):
    """A config that cannot run: names the offending key and what would be valid."""


PathLike = str | Path


def config_root(start: PathLike | None = None) -> Path:
    """Return the ``configs/`` directory that group names (``model=mlp``) refer to.

    The nearest ancestor of ``start`` holding a ``model/`` folder, else ``./configs``, else
    the ``configs/`` folder next to the installed package.
    """
    if start is not None:
        for parent in Path(start).resolve().parents:
            if (parent / "model").is_dir():
                return parent
    for candidate in (Path.cwd() / "configs", Path(__file__).resolve().parents[2] / "configs"):
        if (candidate / "model").is_dir():
            return candidate
    return Path.cwd() / "configs"


def load_config(
    files: PathLike | Iterable[PathLike] = (),
    overrides: Overrides = None,
    *,
    validate: bool = True,
    problems: Problems | None = None,
) -> DictConfig:
    """Merge config files and overrides onto the schema and (by default) validate the result.

    Every problem is found in one pass: a bad key or value is left out of the merge (the
    rest goes on), and the error names them all, one per line.

    Args:
        files: one path or several, merged left to right (later files win).
        overrides: ``["model.grid_size=10", "model=mlp"]`` or ``{"model.grid_size": 10}``.
        validate: run :func:`kanplatform.config.validate` (the checks that need no
            registry) on the result.
        problems: add every problem here instead of raising (the caller raises them all).

    Returns:
        A struct-mode ``DictConfig`` typed by :class:`RunConfig`.

    Raises:
        ConfigError: missing file, unknown key, wrong type, or a failed validation.

    Example:
        >>> cfg = load_config("configs/experiment/grid_extension.yaml", ["model.grid_size=10"])
        ... # doctest: +SKIP
    """
    if isinstance(files, str | Path):
        files = [files]
    files = [Path(f) for f in files]
    p = problems if problems is not None else Problems(ConfigError)
    cfg = OmegaConf.structured(RunConfig)
    OmegaConf.set_struct(cfg, True)
    for path in files:
        with p.collect():  # a missing file or one that is not YAML
            _merge_into(cfg, _read_top_level(path, seen=()), source=str(path), problems=p)
    root = config_root(files[0]) if files else config_root()
    cfg = apply_overrides(cfg, overrides, root=root, validate=False, problems=p)
    if validate:
        from kanplatform.config.validate import validate as _validate

        _validate(cfg, p)
    if problems is None:
        p.raise_if_any()
    return cfg


def apply_overrides(
    cfg: DictConfig,
    overrides: Overrides,
    *,
    root: PathLike | None = None,
    validate: bool = False,
    problems: Problems | None = None,
) -> DictConfig:
    """Return a copy of ``cfg`` with overrides applied: THE path for CLI args and Tune samples.

    Args:
        cfg: a config from :func:`load_config`.
        overrides: ``["key=value", "group=name"]`` strings, or a mapping of dotted keys (or
            nested dicts) to values, e.g. ``{"model.grid_size": 10, "optim.lr": 0.5}``.
        root: the ``configs/`` directory for group selections (default: :func:`config_root`).
        validate: also run semantic validation on the result.
        problems: add every problem here instead of raising (the caller raises them all).

    Returns:
        A new ``DictConfig``; ``cfg`` is not modified.

    Raises:
        ConfigError: every unknown key, wrong type and unknown group file, one per line.
    """
    p = problems if problems is not None else Problems(ConfigError)
    cfg = copy.deepcopy(cfg)
    pairs = []
    for item in [overrides] if isinstance(overrides, Mapping) else (overrides or []):
        with p.collect():  # a word without '='
            pairs += parse_overrides(item if isinstance(item, Mapping) else [item], ConfigError)
    groups = [(k, v) for k, v in pairs if _is_group_select(cfg, k, v)]
    keys = [(k, v) for k, v in pairs if not _is_group_select(cfg, k, v)]
    root = Path(root) if root is not None else config_root()
    for group, name in groups:
        with p.collect():
            _select_group(cfg, group, str(name), root)
    for key, value in keys:
        with p.collect():
            _set_key(cfg, key, value)
    if validate:
        from kanplatform.config.validate import validate as _validate

        _validate(cfg, p)
    if problems is None:
        p.raise_if_any()
    return cfg


def to_dict(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """Return ``cfg`` as plain dicts and lists (what Ray Tune, W&B and JSON accept)."""
    if isinstance(cfg, DictConfig | ListConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return copy.deepcopy(dict(cfg))


def save_config(cfg: DictConfig, path: PathLike) -> None:
    """Write ``cfg`` resolved as YAML; :func:`load_config` reads it back unchanged."""
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))


# --- internals -------------------------------------------------------------------------


def _read_yaml(path: Path) -> dict[str, Any]:
    data = read_yaml(path, ConfigError, "config file")
    if data is None:
        return {}
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise ConfigError(f"{path}: expected a mapping of config sections, got {kind}")
    return data


def _read_top_level(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    """Read a top-level file with its ``defaults`` expanded, as one nested dict."""
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: circular defaults ({' -> '.join(map(str, seen))})")
    data = _read_yaml(path)
    defaults = data.pop("defaults", []) or []
    if not isinstance(defaults, list):
        raise ConfigError(f"{path}: 'defaults' must be a list, e.g. [{{model: kan}}]")
    root = config_root(path)
    merged = OmegaConf.create({})
    for entry in defaults:
        if isinstance(entry, str):
            part = _read_top_level(path.parent / entry, seen + (path,))
        elif isinstance(entry, dict) and len(entry) == 1:
            (group, name), = entry.items()
            if group not in GROUPS:
                valid = ", ".join(GROUPS)
                raise ConfigError(f"{path}: unknown group '{group}' in defaults; valid: {valid}")
            part = {group: _read_group_file(root, group, str(name))}
        else:
            raise ConfigError(
                f"{path}: bad defaults entry {entry!r}; use 'GROUP: NAME' or 'file.yaml'"
            )
        merged = OmegaConf.merge(merged, part)
    merged = OmegaConf.merge(merged, data)
    return OmegaConf.to_container(merged)  # type: ignore[return-value]


def _group_names(root: Path, group: str) -> list[str]:
    return sorted(p.stem for p in (root / group).glob("*.yaml"))


def _read_group_file(root: Path, group: str, name: str) -> dict[str, Any]:
    path = root / group / f"{name}.yaml"
    if not path.is_file():
        valid = ", ".join(_group_names(root, group)) or "(none)"
        raise ConfigError(f"{group}={name}: no file {path}; valid {group} names: {valid}")
    data = _read_yaml(path)
    data.pop("defaults", None)
    return data


def _merge_into(cfg: DictConfig, data: Mapping[str, Any], source: str,
                problems: Problems | None = None) -> None:
    """Merge ``data`` into ``cfg``; on a bad key or value, merge it key by key so that every
    bad one is named (in ``problems``, or raised together) and the good ones still land."""
    try:
        cfg.merge_with(data)
        return
    except OmegaConfBaseException:
        pass
    p = problems if problems is not None else Problems(ConfigError)
    for key, value in flatten(data).items():
        nested: Any = value
        for part in reversed(key.split(".")):
            nested = {part: nested}
        try:
            cfg.merge_with(nested)
        except OmegaConfBaseException as err:
            p.add(str(_wrap(err, source)))
    if problems is None:
        p.raise_if_any()


def _wrap(err: OmegaConfBaseException, source: str) -> ConfigError:
    key = getattr(err, "full_key", None) or ""
    if isinstance(err, ConfigKeyError | AttributeError) or "not in struct" in str(err) or (
        "Key '" in str(err) and "not" in str(err)
    ):
        return ConfigError(f"{source}: {_unknown_key(key)}")
    msg = str(err).splitlines()[0]
    value = getattr(err, "value", None)
    bad = f" (got {value!r})" if value is not None and repr(value) not in msg else ""
    return ConfigError(f"{source}: {key}: {msg}{bad}")


def _unknown_key(key: str) -> str:
    """``unknown key 'trainer.max_step' (did you mean 'trainer.max_steps'?); valid keys in
    'trainer': ...``"""
    parts = key.split(".")
    for i, leaf in enumerate(parts):  # name the first part that is not in the schema
        parent = ".".join(parts[:i])
        valid = _valid_keys(parent)
        if leaf not in valid:
            key = ".".join(parts[:i + 1])
            break
    hint = did_you_mean(leaf, valid)
    if hint and parent:
        hint = hint.replace(" '", f" '{parent}.", 1)
    where = repr(parent) if parent else "the top level"
    return f"unknown key '{key}'{hint}; valid keys in {where}: {', '.join(valid)}"


def _valid_keys(section: str) -> list[str]:
    node: Any = OmegaConf.structured(RunConfig)
    for part in filter(None, section.split(".")):
        node = node.get(part) if isinstance(node, DictConfig) else None
    return list(node.keys()) if isinstance(node, DictConfig) else []


def _is_group_select(cfg: DictConfig, key: str, value: Any) -> bool:
    return key in GROUPS and isinstance(value, str)


def _set_key(cfg: DictConfig, key: str, value: Any) -> None:
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    if not isinstance(node, DictConfig) or leaf not in node:
        raise ConfigError(f"override {key}: {_unknown_key(key)}")
    try:
        OmegaConf.update(cfg, key, value, merge=isinstance(value, Mapping))
    except OmegaConfBaseException as err:
        msg = str(err).splitlines()[0]
        raise ConfigError(f"override {key}={value!r}: {msg}") from None


def _select_group(cfg: DictConfig, group: str, name: str, root: Path) -> None:
    if group == "data" and not (root / group / f"{name}.yaml").is_file():
        cfg.data.dataset = name  # a dataset name (checked against the registry later)
        return
    content = _read_group_file(root, group, name)
    fresh = OmegaConf.structured(RunConfig)[group]
    OmegaConf.set_struct(fresh, True)
    _merge_into(fresh, content, source=str(root / group / f"{name}.yaml"))
    if group == "model":
        _carry_model_dims(cfg, fresh)
    cfg[group] = fresh


def _carry_model_dims(cfg: DictConfig, new: DictConfig) -> None:
    """Keep the replaced model's input/output widths."""
    old = cfg.model
    width = list(new.width)
    if len(width) >= 2:
        width[0], width[-1] = old.width[0], old.width[-1]
        new.width = width
