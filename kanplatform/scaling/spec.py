"""The scaling-study YAML: schema, checks, and its expansion into training trials.

A study file says which model sizes to train and how to fit them; the run configs it
names say how each model trains::

    name: toy_exp_sin_sq
    base: [../experiment/grid_extension.yaml]   # run config file(s), relative to this file
    overrides: {trainer.enable_progress_bar: false}   # dotted keys, applied to every trial
    seeds: [0, 1, 2]
    metric: test/rmse                 # the loss that is fitted
    fit: {drop_tail: plateau, tail_slope: 0.5, floor: false, n_boot: 1000}
    families:
      kan:                            # one family = one curve on the plot
        kind: kan
        sizes_from: stages            # sizes are the stages of one grid-extension run
        grid_sizes: [3, 5, 10, 20, 50, 100]
        widths: [[2, 1, 1]]
      mlp:
        kind: mlp
        sizes_from: runs              # one independent run per size
        depths: [2, 3, 4]             # number of linear layers
        widths: {2: [5, 10, 20, 40], 3: [3, 5, 8, 12], 4: [3, 4, 6, 9]}   # hidden widths
        overrides: {model: mlp, grid.schedule: [], trainer.max_steps: 600}

Top-level overrides on the command line (``kanplatform scale STUDY key=value``) go to the
study when the first part of the key is a study field (``seeds=[0]``,
``families.mlp.depths=[2]``, ``fit.n_boot=100``), and to every trial's run config otherwise
(``data.n_train=500``, ``grid.steps_per_stage=50``).

Nothing here imports Ray or torch: a bad study fails in milliseconds with the key named.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kanplatform._util.checks import check_bool, check_int, check_name, check_number, check_str
from kanplatform._util.dotted import parse_overrides, set_dotted
from kanplatform._util.strict import check_keys, field_names, from_mapping
from kanplatform._util.yamlfile import read_yaml
from kanplatform.config.schema import MODEL_CONFIGS, has_grid, model_keys

SIZES_FROM = ("runs", "stages")
DROP_TAIL = ("none", "rise", "plateau")
X_AXES = ("model/params", "model/flops")


class StudyError(ValueError):
    """A study file that cannot run; the message names the key and the fix."""


@dataclass
class FitSpec:
    """How each family's points are fitted (see :func:`kanplatform.scaling.fit_power_law`)."""

    drop_tail: str = "plateau"
    tail_slope: float = 0.5
    floor: bool = False
    n_boot: int = 1000
    ci_level: float = 0.95
    diverge_factor: float = 100.0
    seed_factor: float = 10.0
    min_sizes: int = 3
    gap_factor: float | None = 2.0  # test/train ratio that marks an overfitted size (null: off)


@dataclass
class FamilySpec:
    """A family of model sizes: one curve, one fit.

    ``kind: kan`` (a grid kind: :func:`~kanplatform.config.schema.has_grid`): ``grid_sizes``
    x ``widths`` (full width lists). With ``sizes_from:
    stages`` each width is one grid-extension run through all ``grid_sizes`` (per seed) and
    every stage is a size; with ``runs`` each (width, grid size) is its own run.

    ``kind: mlp`` (any other kind): ``depths`` (linear layers) x ``widths`` (hidden widths: a
    list, or a mapping depth -> list); input and output widths come from the base config. Or
    ``widths`` as full width lists and no ``depths``.

    ``fit`` changes the study's fit settings for this family only, e.g. ``{drop_tail: none}``
    for MLPs, whose flattening at large sizes is their scaling, not grid overfitting.
    """

    kind: str = "kan"
    sizes_from: str = "runs"
    grid_sizes: list[int] = field(default_factory=list)
    widths: Any = field(default_factory=list)
    depths: list[int] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] | None = None
    fit: dict[str, Any] = field(default_factory=dict)  # this family's changes to the study fit


@dataclass
class StudySpec:
    """A parsed study file. Build it with :func:`load_study` or :func:`parse_study`."""

    families: dict[str, FamilySpec]
    name: str = "scaling"
    base: list[str] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0])
    metric: str = "test/rmse"
    x: list[str] = field(default_factory=lambda: list(X_AXES))
    fit: FitSpec = field(default_factory=FitSpec)
    output_dir: str = "runs/scaling"
    resources: dict[str, float] = field(default_factory=lambda: {"cpu": 1})
    max_concurrent_trials: int | None = None
    max_failures: int = 1
    stack_runs: bool = True  # Adam/AdamW seeds of one size train as one stack (same results)
    wandb: str = "auto"  # the study's own W&B run; auto = the base config's tracking.mode
    source: str | None = None  # the file it came from (base paths are relative to it)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (for scaling.json and logs)."""
        return dataclasses.asdict(self)

    def fit_for(self, family: str) -> FitSpec:
        """The fit settings of one family: the study's, with the family's ``fit`` on top."""
        return dataclasses.replace(self.fit, **self.families[family].fit)

    def base_files(self) -> list[Path]:
        """The base run-config files, resolved against the study file's folder."""
        here = Path(self.source).resolve().parent if self.source else Path.cwd()
        return [(here / p).resolve() for p in self.base]


@dataclass(frozen=True)
class Trial:
    """One training run of a study.

    ``key`` names it stably (``family/label/seed``), so a resumed study recognises the
    trials it has already completed.
    """

    family: str
    kind: str
    label: str
    seed: int
    sizes_from: str
    overrides: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.family}/{self.label}/seed{self.seed}"

    def run_dir(self, exp_dir: str | Path) -> Path:
        """Where this trial's run directory lives inside the experiment directory."""
        return Path(exp_dir) / "runs" / self.family / f"{self.label}-seed{self.seed}"


def _fields(cls: type) -> list[str]:
    return [f for f in field_names(cls) if f != "source"]  # `source` is not a file key


def _int_list(value: Any, where: str) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(v, int) and v > 0 for v in value):
        raise StudyError(f"{where}: expected a list of positive integers, got {value!r}")
    return list(value)


def _parse_family(name: str, data: Any) -> FamilySpec:
    where = f"families.{name}"
    if not isinstance(data, Mapping):
        raise StudyError(f"{where}: expected a mapping (kind, sizes_from, widths, ...)")
    fam = from_mapping(FamilySpec, copy.deepcopy(dict(data)), where, StudyError)
    if fam.kind not in MODEL_CONFIGS:
        raise StudyError(f"{where}.kind={fam.kind!r}: expected one of {', '.join(MODEL_CONFIGS)}")
    if fam.sizes_from not in SIZES_FROM:
        raise StudyError(
            f"{where}.sizes_from={fam.sizes_from!r}: expected one of {', '.join(SIZES_FROM)}"
        )
    grid = has_grid(fam.kind)  # a grid family sweeps grid sizes, any other one widths
    if fam.sizes_from == "stages" and not grid:
        raise StudyError(f"{where}: sizes_from=stages needs kind=kan (grid extension)")
    if grid:
        fam.grid_sizes = _int_list(fam.grid_sizes, f"{where}.grid_sizes")
        if not fam.grid_sizes:
            raise StudyError(f"{where}.grid_sizes: a KAN family needs at least one grid size")
        if fam.sizes_from == "stages" and fam.grid_sizes != sorted(set(fam.grid_sizes)):
            raise StudyError(f"{where}.grid_sizes: grid extension needs increasing sizes")
        if fam.depths:
            raise StudyError(f"{where}.depths: only for MLP families (KAN: full widths)")
    else:
        if fam.grid_sizes:
            raise StudyError(f"{where}.grid_sizes: only for KAN families")
        if fam.depths:
            fam.depths = _int_list(fam.depths, f"{where}.depths")
            if min(fam.depths) < 2:
                raise StudyError(f"{where}.depths: an MLP has at least 2 layers")
    if isinstance(fam.widths, Mapping):
        fam.widths = {int(k): _int_list(v, f"{where}.widths.{k}") for k, v in fam.widths.items()}
        missing = set(fam.depths) - set(fam.widths)
        if missing:
            raise StudyError(f"{where}.widths: no widths for depth(s) {sorted(missing)}")
    elif not isinstance(fam.widths, list):
        raise StudyError(f"{where}.widths: expected a list or a mapping depth -> list")
    if not grid and not fam.widths:
        raise StudyError(f"{where}.widths: an MLP family needs widths")
    if fam.seeds is not None:
        fam.seeds = [int(s) for s in fam.seeds]
    if not isinstance(fam.overrides, Mapping):
        raise StudyError(f"{where}.overrides: expected a mapping of dotted keys to values")
    check_keys(fam.fit or {}, _fields(FitSpec), f"{where}.fit", StudyError)
    if fam.fit.get("drop_tail", "none") not in DROP_TAIL:
        raise StudyError(f"{where}.fit.drop_tail={fam.fit['drop_tail']!r}: expected one of "
                         f"{', '.join(DROP_TAIL)}")
    return fam


def parse_study(data: Mapping[str, Any], source: str | Path | None = None) -> StudySpec:
    """Check a study mapping and return the :class:`StudySpec`.

    Raises:
        StudyError: unknown key, wrong value, or a family that cannot expand into runs.
    """
    where = str(source or "study")
    if not isinstance(data, Mapping):
        raise StudyError(f"{where}: expected a mapping with 'families'")
    check_keys(data, _fields(StudySpec), "", StudyError, source=where)
    data = copy.deepcopy(dict(data))
    families = data.pop("families", None)
    if not isinstance(families, Mapping) or not families:
        raise StudyError(f"{where}: 'families' must map names to families (e.g. kan:, mlp:)")
    fit = from_mapping(FitSpec, data.pop("fit", None), "fit", StudyError, source=where)
    if fit.drop_tail not in DROP_TAIL:
        raise StudyError(f"fit.drop_tail={fit.drop_tail!r}: expected one of {', '.join(DROP_TAIL)}")
    base = data.pop("base", []) or []
    if isinstance(base, str):
        base = [base]
    spec = StudySpec(
        families={str(k): _parse_family(str(k), v) for k, v in families.items()},
        fit=fit,
        base=[str(b) for b in base],
        source=str(source) if source else None,
        **data,
    )
    _check_types(spec, where)
    spec.seeds = [int(s) for s in spec.seeds]
    if not spec.seeds:
        raise StudyError(f"{where}: seeds must list at least one seed")
    if spec.wandb not in ("auto", "offline", "online", "disabled"):
        raise StudyError(f"wandb={spec.wandb!r}: use auto, offline, online or disabled")
    for x in spec.x:
        if x not in X_AXES:
            raise StudyError(f"x: {x!r} is not a size axis; use {', '.join(X_AXES)}")
    if not spec.metric.startswith(("train/", "val/", "test/")):
        raise StudyError(f"metric={spec.metric!r}: use a logged loss like test/rmse")
    if spec.metric.split("/")[-1] in ("accuracy", "f1"):
        raise StudyError(f"metric={spec.metric!r} grows with size and is bounded by 1: fit a "
                         "loss that falls as a power law, e.g. test/loss (cross-entropy) for "
                         "classification")
    for path in spec.base_files():
        if not path.is_file():
            raise StudyError(f"base: run config {path} not found (paths are relative to the study)")
    return spec


def _check_types(spec: StudySpec, where: str) -> None:
    """Type and range of the study's scalar fields (Ray would meet them unchecked)."""
    E = StudyError
    check_name(spec.name, "name", E)
    check_str(spec.metric, "metric", E)
    check_str(spec.output_dir, "output_dir", E)
    check_int(spec.max_failures, "max_failures", E, minimum=0,
              hint=" (restarts of a crashed training; 0 = none)")
    check_int(spec.max_concurrent_trials, "max_concurrent_trials", E, minimum=1, optional=True)
    check_bool(spec.stack_runs, "stack_runs", E)
    if not isinstance(spec.seeds, list) or not all(_int(v) for v in spec.seeds):
        raise E(f"{where}: seeds must be a list of integers, got {spec.seeds!r}")
    if not isinstance(spec.resources, Mapping):
        raise E(f"resources: expected a mapping like {{cpu: 1, gpu: 0}}, got {spec.resources!r}")
    unknown = sorted(set(spec.resources) - {"cpu", "gpu", "workers", "use_gpu"})
    if unknown:
        raise E(f"resources: unknown key(s) {unknown}; allowed: cpu, gpu, workers, use_gpu")
    for key in ("cpu", "gpu"):
        check_number(spec.resources.get(key, 0), f"resources.{key}", E, minimum=0)
    check_int(spec.resources.get("workers", 1), "resources.workers", E, minimum=1)
    f = spec.fit
    check_int(f.n_boot, "fit.n_boot", E, minimum=1)
    check_int(f.min_sizes, "fit.min_sizes", E, minimum=2)
    check_number(f.ci_level, "fit.ci_level", E, above=0)
    if f.ci_level >= 1:
        raise E(f"fit.ci_level: must be in (0, 1), got {f.ci_level!r}")
    for key in ("tail_slope", "diverge_factor", "seed_factor"):
        check_number(getattr(f, key), f"fit.{key}", E, above=0)
    check_number(f.gap_factor, "fit.gap_factor", E, above=0, optional=True)
    check_bool(f.floor, "fit.floor", E)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _split_overrides(overrides: Iterable[str] | Mapping[str, Any]) -> tuple[dict, dict]:
    """Split CLI overrides into (study keys, run-config keys)."""
    pairs = (list(overrides.items()) if isinstance(overrides, Mapping)
             else parse_overrides(overrides, StudyError))
    study, run = {}, {}
    for key, value in pairs:
        (study if key.split(".")[0] in _fields(StudySpec) else run)[key] = value
    return study, run


def load_study(
    path: str | Path, overrides: Iterable[str] | Mapping[str, Any] = ()
) -> StudySpec:
    """Read a study YAML and apply ``key=value`` overrides (see the module docstring).

    Raises:
        StudyError: missing file, bad YAML, unknown key, wrong value.
    """
    path = Path(path)
    data = read_yaml(path, StudyError, "study file") or {}
    study_keys, run_keys = _split_overrides(overrides)
    for key, value in study_keys.items():
        # a study's overrides hold dotted run-config keys: below one the rest is one key
        set_dotted(data, key, value, whole=("overrides",), error=StudyError)
    if run_keys:
        data["overrides"] = {**(data.get("overrides") or {}), **run_keys}
    return parse_study(data, source=path)


def _mlp_widths(fam: FamilySpec, d_in: int, d_out: int) -> list[list[int]]:
    if not fam.depths:
        return [list(w) if isinstance(w, list) else [d_in, int(w), d_out] for w in fam.widths]
    out = []
    for depth in fam.depths:
        hidden = fam.widths[depth] if isinstance(fam.widths, Mapping) else fam.widths
        out += [[d_in] + [int(h)] * (depth - 1) + [d_out] for h in hidden]
    return out


def width_label(width: list[int]) -> str:
    return "w" + "-".join(str(w) for w in width)


def expand(spec: StudySpec, io: tuple[int, int] = (2, 1)) -> list[Trial]:
    """Every training run of the study, in a stable order.

    Args:
        spec: the study.
        io: (input, output) width of the dataset, for MLP widths given as hidden sizes and
            KAN families without widths.

    Returns:
        Trials with the overrides that turn the base config into each run.
    """
    trials = []
    for name, fam in spec.families.items():
        seeds = fam.seeds if fam.seeds is not None else spec.seeds
        common = {**spec.overrides, **fam.overrides}
        if has_grid(fam.kind):
            widths = [list(w) for w in fam.widths] or [[io[0], io[1]]]
            if fam.sizes_from == "stages":
                sizes = [
                    (width_label(w), {"model.width": w, "grid.schedule": list(fam.grid_sizes)})
                    for w in widths
                ]
            else:
                sizes = [
                    (
                        f"{width_label(w)}-g{g}",
                        {"model.width": w, "model.grid_size": g, "grid.schedule": []},
                    )
                    for w, g in itertools.product(widths, fam.grid_sizes)
                ]
        else:
            sizes = [
                (f"d{len(w) - 1}-{width_label(w)}", {"model.width": w})
                for w in _mlp_widths(fam, *io)
            ]
        for seed in seeds:
            for label, size_keys in sizes:
                kind_keys = {"model.kind": fam.kind}
                if "match" in model_keys(fam.kind):
                    kind_keys["model.match"] = "none"  # the listed widths, not a matched one
                overrides = {**common, **kind_keys, **size_keys, "seed": seed}
                trials.append(Trial(name, fam.kind, label, seed, fam.sizes_from, overrides))
    return trials


def is_study_file(path: Path, data: Any) -> bool:
    """``kanplatform validate`` hook: a mapping with ``families`` is a scaling study."""
    return isinstance(data, Mapping) and "families" in data


def check_study_file(path: Path, overrides: Iterable[str] = ()) -> str:
    """``kanplatform validate`` hook: parse the study (with ``key=value`` overrides) and
    resolve every trial's config."""
    from kanplatform.scaling.study import check_study

    spec = load_study(path, overrides)
    _, trials = check_study(spec)
    return f"scaling study, {len(trials)} trainings"
