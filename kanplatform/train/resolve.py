"""From config files to the run config that trains: the checks and fills that need registries.

:mod:`kanplatform.config` knows the schema and the YAML files but no dataset or model. Here
they meet the registries of :mod:`kanplatform.data` and :mod:`kanplatform.nn`:

* :func:`check_run_config`: dataset names, data files (their columns and contents: numeric,
  finite, enough rows), the model's input and output widths against the dataset, model
  kinds, activation names, every constructor argument of the model (after
  :func:`kanplatform.config.validate`'s own checks);
* :func:`apply_run_overrides`: :func:`kanplatform.config.apply_overrides`, plus the parameter
  count a ``match: params`` MLP selected over a KAN (``model=mlp``) is matched to;
* :func:`load_run_config`: files + overrides + both, what ``kanplatform train`` trains.

The CLI, Ray Tune trials and scaling studies all go through these, so a trial is exactly a
``kanplatform train`` run with some keys set.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from omegaconf import DictConfig

from kanplatform._util.dotted import Overrides
from kanplatform._util.problems import Problems, did_you_mean
from kanplatform.config import ConfigError, apply_overrides, config_root, load_config, validate
from kanplatform.config.load import PathLike
from kanplatform.config.schema import MODEL_CONFIGS, model_keys


def check_run_config(cfg: DictConfig, problems: Problems | None = None) -> DictConfig:
    """Check a run config completely before any work starts; return it unchanged.

    Args:
        cfg: the run config.
        problems: add every problem here instead of raising (the caller raises them all).

    Raises:
        ConfigError: every problem, one per line, e.g. ``model.grid_size: must be >= 1, got
            0``, ``data.dataset: unknown dataset 'nope'; valid: file, ...`` or
            ``model.width: first entry 3 != 2 inputs of dataset 'exp_sin_sq' (use 2)``.
    """
    p = problems if problems is not None else Problems(ConfigError)
    validate(cfg, p)
    before = len(p)
    _check_data(cfg.data, p)
    _check_model(cfg, p, data_ok=len(p) == before)
    if problems is None:
        p.raise_if_any()
    return cfg


def _check_data(d: DictConfig, p: Problems) -> None:
    from kanplatform.data import TARGETS, DataError, column_names
    from kanplatform.data.checks import check_data_config

    if d.dataset != "file":
        valid = ["file", *sorted(TARGETS)]
        p.check(d.dataset in TARGETS, "data.dataset", f"unknown dataset {d.dataset!r}; valid: "
                f"{', '.join(valid)}{did_you_mean(d.dataset, valid)}")
        return
    p.check(d.n_ood == 0, "data.n_ood", "an out-of-domain split needs a registered target "
            "(its training box); a file has none: set data.n_ood: 0")
    if not (p.check(bool(d.path), "data.path", "is required with dataset: file (a .csv or .npz)")
            and p.check(Path(d.path).is_file(), "data.path", f"file not found: {d.path}")
            and p.check(Path(d.path).suffix in (".csv", ".npz"), "data.path",
                        f"{Path(d.path).suffix!r}: use .csv or .npz")):
        return
    path = Path(d.path)
    before = len(p)
    try:
        columns = column_names(path)
    except DataError as err:
        p.add(str(err))
        return
    for key in ("inputs", "targets"):
        names = list(d[key])
        p.check(bool(names), f"data.{key}", f"name at least one column of {path}")
        missing = [n for n in names if n not in columns]
        p.check(not missing, f"data.{key}", f"no column {missing} in {path}; columns: "
                f"{', '.join(columns)}")
    if len(p) > before:  # the content is read only once the file and its columns are right
        return
    try:  # the content: readable, numeric, finite, enough rows
        check_data_config(d)
    except DataError as err:
        p.add(str(err))


def _check_model(cfg: DictConfig, p: Problems, *, data_ok: bool = True) -> None:
    from kanplatform.data import dataset_dims
    from kanplatform.nn import MODEL_REGISTRY
    from kanplatform.nn.functional import ACTIVATIONS

    m = cfg.model
    p.one_of(m.kind, "model.kind", sorted(MODEL_REGISTRY))
    p.check(m.kind not in MODEL_REGISTRY or m.kind in MODEL_CONFIGS, "model.kind",
            f"{m.kind!r} is registered in kanplatform.nn but has no config dataclass in "
            "kanplatform.config.schema.MODEL_CONFIGS")
    p.one_of(m.base_activation, "model.base_activation", sorted(ACTIVATIONS))
    p.one_of(m.activation, "model.activation", sorted(ACTIVATIONS))
    width = list(m.width)
    if not data_ok or len(width) < 2:  # the dataset's dims are unknown, or the width says
        return
    n_in, n_out = dataset_dims(cfg.data)
    name = cfg.data.dataset if cfg.data.dataset != "file" else cfg.data.path
    p.check(width[0] == n_in, "model.width",
            f"first entry {width[0]} != {n_in} inputs of dataset {name!r} (use {n_in})")
    p.check(width[-1] == n_out, "model.width",
            f"last entry {width[-1]} != {n_out} outputs of dataset {name!r} (use {n_out})")
    if not p:  # last, and only on its own: the keys above have more specific messages
        _check_model_args(cfg, p)


def _check_model_args(cfg: DictConfig, p: Problems) -> None:
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
        p.add(f"{key}: {message}")


def apply_run_overrides(cfg: DictConfig, overrides: Overrides, *, root: PathLike | None = None,
                        check: bool = False, problems: Problems | None = None) -> DictConfig:
    """:func:`kanplatform.config.apply_overrides`, then the fills that need the model registry.

    An MLP with ``match: params`` and no ``match_params`` that replaced another kind
    (``model=mlp`` over a KAN config) gets that model's parameter count at its final grid
    size, which is how ``kanplatform train EXP.yaml model=mlp`` trains a parameter-matched MLP.

    Args:
        cfg: a loaded run config (not modified).
        overrides: ``["key=value", "group=name"]`` words or a mapping of dotted keys.
        root: the ``configs/`` directory for group selections.
        check: also :func:`check_run_config` the result.
        problems: add every problem here instead of raising (the caller raises them all).

    Raises:
        ConfigError: what ``apply_overrides`` raises, or a failed check: every problem.
    """
    p = problems if problems is not None else Problems(ConfigError)
    new = apply_overrides(cfg, overrides, root=root, problems=p)
    m = new.model
    if m.match == "params" and m.match_params is None and m.kind != cfg.model.kind \
            and cfg.model.kind in MODEL_CONFIGS and not p:  # a broken config has no count
        m.match_params = param_count(cfg.model, cfg.grid.schedule)
    if check:
        check_run_config(new, p)
    if not p:
        fill_matched_width(new)
    if problems is None:
        p.raise_if_any()
    return new


def fill_matched_width(cfg: DictConfig) -> DictConfig:
    """Write the widths a ``match: params`` MLP trains with into ``cfg.model.width`` (in
    place; returned): the resolved ``config.yaml`` records the model that was trained, not
    the group file's placeholder hidden widths. Matching again gives the same widths."""
    m = cfg.model
    if "match" in model_keys(m.kind) and m.match == "params" and m.match_params \
            and len(m.width) >= 3:
        from kanplatform.train.models import matched_width

        m.width = matched_width({"width": list(m.width), "activation": m.activation},
                                int(m.match_params))
    return cfg


def load_run_config(files: PathLike | Iterable[PathLike] = (), overrides: Overrides = None,
                    *, check: bool = True) -> DictConfig:
    """The run config ``kanplatform train FILES OVERRIDES`` trains, checked.

    Raises:
        ConfigError: every missing file, unknown key, wrong type and failed check, one per
            line (``.problems`` lists them).
    """
    files = [files] if isinstance(files, str | Path) else list(files)
    p = Problems(ConfigError)
    cfg = load_config(files, validate=False, problems=p)
    root = config_root(files[0]) if files else config_root()
    cfg = apply_run_overrides(cfg, overrides, root=root, check=check, problems=p)
    p.raise_if_any()
    return cfg


def param_count(model: DictConfig, schedule: Iterable[int] = ()) -> int:
    """Parameter count of the model ``model`` describes, at the last grid of ``schedule``
    (a grid kind's; other kinds ignore it)."""
    from kanplatform.nn import count_params
    from kanplatform.train.models import build_model_from_config

    schedule = list(schedule)
    return int(count_params(build_model_from_config(model, schedule[-1] if schedule else None)))



def check_group_file(path: Path, overrides: Overrides = ()) -> str:
    """A group file (``configs/model/mlp.yaml``) is valid when the default run config selecting
    it (then ``overrides``) passes :func:`check_run_config`, its model's in/out widths set to
    the dataset's."""
    from kanplatform.data import dataset_dims

    group = path.parent.name
    cfg = load_config([], [f"{group}={path.stem}", *list(overrides or [])], validate=False)
    if group in ("data", "model"):  # a data group changes the dims
        n_in, n_out = dataset_dims(cfg.data)
        width = list(cfg.model.width)
        width[0], width[-1] = n_in, n_out
        cfg.model.width = width
        if cfg.model.match == "params" and cfg.model.match_params is None:
            cfg.model.match_params = 100
    check_run_config(cfg)
    return f"{group} group ({config_root(path).name}/{group})"


def check_run_config_file(path: Path, overrides: Overrides = ()) -> str | None:
    """A run config file is valid when it loads (with ``overrides``) and passes
    :func:`check_run_config`; every problem is named."""
    load_run_config(path, overrides)
    return None
