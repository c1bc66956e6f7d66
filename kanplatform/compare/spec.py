"""The compare-study YAML: schema and the checks that need nothing but the file.

A study names tasks, arms, budgets, seeds and a metric; each training is a run config
(``base`` files + overrides) with the arm's model sized to a budget::

    name: demo
    base: [../experiment/quick.yaml]       # run config file(s), relative to this file
    overrides: {trainer.max_steps: 100}     # run-config keys for every training
    metric: test/rmse                       # the metric compared (mode: min | max)
    mode: min
    seeds: [0, 1, 2]                        # >= 3: the verdict is a paired test over seeds
    tasks:                                  # each task: its own overrides / base / metric
      exp_sin_sq: {overrides: {data.dataset: exp_sin_sq}}
      xy: xy                                # shorthand: data.dataset: xy
    budgets: {params: [40, 80, 160], flops: [400, 1000, 2500]}
    arms:
      kan: {kind: kan, size: grid_size, hidden: [1]}          # KAN [in, 1, out], G sized
      mlp: {kind: mlp, size: width, depth: 2, model: {activation: silu}}
    tuning: {trials: 0}                     # > 0: that many Tune trials per arm and size
    verdict: {alpha: 0.05, min_effect: 0.0}
    n_eps: {quantiles: [0.25, 0.5, 0.75]}   # or eps: [1e-2, 1e-3]
    ood: {n: 1000, shell: [1.0, 1.5]}       # synthetic targets: the out-of-domain split

Command-line ``key=value`` overrides go to the study when the first part of the key is a
study field (``seeds=[0,1,2]``, ``tuning.trials=2``, ``arms.mlp.depth=3``) and to every
training's run config otherwise (``data.n_train=200``).

Nothing here imports torch or Ray; :mod:`kanplatform.compare.plan` resolves the configs.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kanplatform._util.dotted import parse_overrides, set_dotted
from kanplatform._util.strict import check_keys, field_names, from_mapping
from kanplatform._util.yamlfile import read_yaml

AXES = ("params", "flops")  # budget axes: count_params (trainable), count_flops (fairer)
AXIS_KEYS = {"params": "model/params", "flops": "model/flops"}
SIZES = ("width", "grid_size")
MODES = ("min", "max")
MIN_SEEDS = 3
# keys a study sets on every training itself (an arm or task that sets them is refused)
STUDY_KEYS = ("model.kind", "model.width", "model.match", "model.match_params", "seed")


class CompareError(ValueError):
    """A study that cannot run; the message names the key and the fix."""


@dataclass
class ArmSpec:
    """One arm: a model kind and how it is sized to a budget.

    ``size: width`` sizes the ``depth`` hidden layers (all one width); ``size: grid_size``
    sizes a grid model's grid on a fixed ``hidden`` list (``[]``: one layer ``[in, out]``).
    ``grid_schedule`` (``size: grid_size``): coarser grids trained first, the paper's grid
    extension -- a model sized to ``G`` trains the listed grids below ``G``, then ``G``, in
    ``trainer.max_steps`` steps in all (split evenly), so every arm keeps the same budget.
    ``model`` holds the kind's own keys (``activation``, ``spline_order``...), ``overrides``
    any run-config keys of this arm, ``tune`` its search space (default: ``tuning.space``).
    """

    kind: str
    size: str = "width"
    depth: int = 1
    hidden: list[int] = field(default_factory=list)
    grid_schedule: list[int] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    tune: dict[str, Any] | None = None
    min_size: int = 1
    max_size: int | None = None  # default: 4096 (width), 1000 (grid_size)

    def size_range(self) -> tuple[int, int]:
        """The knob's allowed ``(low, high)``."""
        default = 4096 if self.size == "width" else 1000
        return int(self.min_size), int(self.max_size or default)


@dataclass
class TaskSpec:
    """One task: a run config (the study's ``base`` unless ``base`` is given) + overrides."""

    overrides: dict[str, Any] = field(default_factory=dict)
    base: list[str] | None = None
    metric: str | None = None
    mode: str | None = None
    budgets: dict[str, list[float]] | None = None
    eps: list[float] | None = None
    ood: bool | None = None  # None: on for registered targets, off otherwise


@dataclass
class TuningSpec:
    """Per-arm tuning: ``trials`` Tune trials for every arm at every size, the same number.

    Trials train with ``seed`` (not one of the study's seeds, so the runs compared are not
    the ones selected) and are ranked on ``metric`` (default: the study metric on the
    validation split); the best values are then rerun on every seed.
    """

    trials: int = 0
    seed: int = 1000
    metric: str | None = None
    mode: str | None = None
    space: dict[str, Any] = field(default_factory=dict)
    sampler_seed: int = 0


@dataclass
class VerdictSpec:
    """The paired test over seeds: winner when ``p < alpha`` and the effect ``>= min_effect``.

    The effect is the mean paired difference of ``log(metric)`` for a ``min`` metric (a
    ratio: 0.1 ~ 10 %) and of the metric itself for a ``max`` metric. ``pairs`` lists the
    arm pairs compared (default: every pair, in the order of ``arms``).
    """

    alpha: float = 0.05
    min_effect: float = 0.0
    pairs: list[list[str]] | None = None


@dataclass
class NEpsSpec:
    """N(eps): per arm, the smallest size reaching each ``eps``, measured and fitted.

    ``eps`` (default: the ``quantiles`` of the task's cell means, both arms pooled), on the
    size ``axes``; ``fit`` changes :class:`kanplatform.scaling.spec.FitSpec` settings.
    """

    eps: list[float] | None = None
    quantiles: list[float] = field(default_factory=lambda: [0.25, 0.5, 0.75])
    axes: list[str] = field(default_factory=lambda: ["params"])
    fit: dict[str, Any] = field(default_factory=dict)


@dataclass
class OODSpec:
    """The out-of-domain split of synthetic targets (``data.n_ood``, ``data.ood_shell``)."""

    n: int = 1000
    shell: list[float] = field(default_factory=lambda: [1.0, 1.5])


@dataclass
class CompareSpec:
    """A parsed compare study. Build it with :func:`load_compare` or :func:`parse_compare`."""

    tasks: dict[str, TaskSpec]
    arms: dict[str, ArmSpec]
    budgets: dict[str, list[float]] = field(default_factory=dict)
    name: str = "compare"
    base: list[str] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    metric: str = "test/rmse"
    mode: str = "min"
    vary_data: bool = True  # data.seed follows the seed: pairs share their data sample
    tuning: TuningSpec = field(default_factory=TuningSpec)
    verdict: VerdictSpec = field(default_factory=VerdictSpec)
    n_eps: NEpsSpec = field(default_factory=NEpsSpec)
    ood: OODSpec = field(default_factory=OODSpec)
    output_dir: str = "runs/compare"
    resources: dict[str, float] = field(default_factory=lambda: {"cpu": 1})
    max_concurrent_trials: int | None = None
    max_failures: int = 1
    stack_runs: bool = True  # Adam/AdamW seeds of one arm and size train as one stack
    wandb: str = "auto"
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (compare.json, study.yaml, W&B config)."""
        return dataclasses.asdict(self)

    def here(self) -> Path:
        """The folder ``base`` paths are relative to."""
        return Path(self.source).resolve().parent if self.source else Path.cwd()

    def base_files(self, task: str | None = None) -> list[Path]:
        """The run-config files of ``task`` (the study's when it names none)."""
        files = self.base
        if task is not None and self.tasks[task].base is not None:
            files = self.tasks[task].base
        return [(self.here() / p).resolve() for p in files]

    def task_metric(self, task: str) -> tuple[str, str]:
        """``(metric, mode)`` of one task."""
        t = self.tasks[task]
        return t.metric or self.metric, t.mode or self.mode

    def task_budgets(self, task: str) -> dict[str, list[float]]:
        """``{axis: budgets}`` of one task (its own, else the study's)."""
        return self.tasks[task].budgets or self.budgets

    def tuning_metric(self, task: str) -> tuple[str, str]:
        """``(metric, mode)`` the tuning trials of ``task`` are ranked on."""
        metric, mode = self.task_metric(task)
        return (self.tuning.metric or "val/" + metric.split("/", 1)[1],
                self.tuning.mode or mode)

    def space(self, arm: str) -> dict[str, Any]:
        """The tuning space of ``arm``."""
        own = self.arms[arm].tune
        return dict(own if own is not None else self.tuning.space)

    def pairs(self) -> list[tuple[str, str]]:
        """The arm pairs that get verdicts."""
        if self.verdict.pairs is not None:
            return [(a, b) for a, b in self.verdict.pairs]
        names = list(self.arms)
        return [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]


def _fields(cls: type) -> list[str]:
    return [f for f in field_names(cls) if f != "source"]


def _strict(cls: type, data: Any, where: str) -> Any:
    """``cls`` from a mapping, refusing unknown keys by name (a copy: the file stays as read)."""
    data = copy.deepcopy(dict(data)) if isinstance(data, Mapping) else data
    return from_mapping(cls, data, where, CompareError, exclude=("source",))


def _positive_ints(value: Any, where: str, allow_empty: bool = True) -> list[int]:
    ok = isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool)
                                         and v >= 1 for v in value)
    if not ok or (not allow_empty and not value):
        raise CompareError(f"{where}: expected a list of positive integers, got {value!r}")
    return list(value)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise CompareError(f"{where}: expected a mapping of dotted run-config keys to values")
    return dict(value)


def _parse_arm(name: str, data: Any) -> ArmSpec:
    where = f"arms.{name}"
    if isinstance(data, str):
        data = {"kind": data}
    arm = _strict(ArmSpec, data, where)
    if arm.size not in SIZES:
        raise CompareError(f"{where}.size={arm.size!r}: expected one of {', '.join(SIZES)}")
    if arm.size == "width" and (not isinstance(arm.depth, int) or arm.depth < 1):
        raise CompareError(f"{where}.depth: hidden layers sized by width, >= 1; got {arm.depth}")
    arm.hidden = _positive_ints(arm.hidden, f"{where}.hidden")
    arm.grid_schedule = sorted(_positive_ints(arm.grid_schedule, f"{where}.grid_schedule"))
    if arm.grid_schedule and arm.size != "grid_size":
        raise CompareError(f"{where}.grid_schedule: grid extension up to the sized grid needs "
                           "size: grid_size")
    arm.model = _mapping(arm.model, f"{where}.model")
    arm.overrides = _mapping(arm.overrides, f"{where}.overrides")
    if arm.tune is not None:
        arm.tune = _mapping(arm.tune, f"{where}.tune")
    lo, hi = arm.size_range()
    if not 1 <= lo <= hi:
        raise CompareError(f"{where}: need 1 <= min_size <= max_size, got {lo}, {hi}")
    for key in (*STUDY_KEYS, *(["model.grid_size", "grid.schedule"]
                               if arm.size == "grid_size" else [])):
        short = key.removeprefix("model.")
        if key in arm.overrides or (key.startswith("model.") and short in arm.model):
            raise CompareError(f"{where}: {key} is set by the study (sizing, seeds); remove it")
    return arm


def _parse_task(name: str, data: Any, where: str) -> TaskSpec:
    if isinstance(data, str) or data is None:
        data = {"overrides": {"data.dataset": data or name}}
    task = _strict(TaskSpec, data, where)
    task.overrides = _mapping(task.overrides, f"{where}.overrides")
    if isinstance(task.base, str):
        task.base = [task.base]
    if task.budgets is not None:
        task.budgets = _parse_budgets(task.budgets, f"{where}.budgets")
    if task.eps is not None:
        _positive_floats(task.eps, f"{where}.eps")
    for key in STUDY_KEYS:
        if key in task.overrides:
            raise CompareError(f"{where}.overrides: {key} is set by the study; remove it")
    return task


def _positive_floats(value: Any, where: str) -> list[float]:
    ok = isinstance(value, list) and value and all(
        isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in value)
    if not ok:
        raise CompareError(f"{where}: expected a non-empty list of positive numbers, got "
                           f"{value!r}")
    return [float(v) for v in value]


def _parse_budgets(data: Any, where: str) -> dict[str, list[float]]:
    if not isinstance(data, Mapping) or not data:
        raise CompareError(f"{where}: expected {{params: [...], flops: [...]}} (one or both)")
    out = {}
    for axis, values in data.items():
        if axis not in AXES:
            raise CompareError(f"{where}.{axis}: unknown budget axis; valid: {', '.join(AXES)}")
        out[axis] = sorted(_positive_floats(values, f"{where}.{axis}"))
    return out


def _check_metric(metric: Any, mode: Any, where: str) -> None:
    if not isinstance(metric, str) or metric.split("/")[0] not in ("val", "test", "ood") \
            or metric.count("/") != 1:
        raise CompareError(f"{where}metric={metric!r}: name a recorded metric such as "
                           "test/rmse, ood/rmse or val/rmse")
    if mode not in MODES:
        raise CompareError(f"{where}mode={mode!r}: expected min or max")


def parse_compare(data: Mapping[str, Any], source: str | Path | None = None) -> CompareSpec:
    """Check a study mapping and return the :class:`CompareSpec`.

    Raises:
        CompareError: unknown key or wrong value, naming it (e.g. ``seeds: a paired test
            over seeds needs at least 3 seeds, got [0]``).
    """
    where = str(source or "study")
    if not isinstance(data, Mapping):
        raise CompareError(f"{where}: expected a mapping with tasks, arms and budgets")
    data = copy.deepcopy(dict(data))
    check_keys(data, _fields(CompareSpec), "", CompareError, source=where)
    tasks, arms = data.pop("tasks", None), data.pop("arms", None)
    if isinstance(tasks, list):
        tasks = {str(t): t for t in tasks}
    if not isinstance(tasks, Mapping) or not tasks:
        raise CompareError("tasks: name at least one task (e.g. tasks: {xy: xy})")
    if not isinstance(arms, Mapping) or len(arms) < 2:
        raise CompareError("arms: name at least two arms to compare (e.g. kan: and mlp:)")
    sections = {"tuning": TuningSpec, "verdict": VerdictSpec, "n_eps": NEpsSpec, "ood": OODSpec}
    parts = {k: _strict(cls, data.pop(k, None), k) for k, cls in sections.items()}
    base = data.pop("base", []) or []
    spec = CompareSpec(
        tasks={str(k): _parse_task(str(k), v, f"tasks.{k}") for k, v in tasks.items()},
        arms={str(k): _parse_arm(str(k), v) for k, v in arms.items()},
        base=[str(b) for b in ([base] if isinstance(base, str) else base)],
        source=str(source) if source else None,
        **parts,
        **{k: v for k, v in data.items() if k != "budgets"},
    )
    if "budgets" in data:
        spec.budgets = _parse_budgets(data["budgets"], "budgets")
    _check_spec(spec)
    return spec


def _check_spec(spec: CompareSpec) -> None:
    if not isinstance(spec.seeds, list) or not all(isinstance(s, int) for s in spec.seeds):
        raise CompareError(f"seeds: expected a list of integers, got {spec.seeds!r}")
    if len(set(spec.seeds)) < MIN_SEEDS:
        raise CompareError(f"seeds: a paired test over seeds needs at least {MIN_SEEDS} "
                           f"different seeds, got {spec.seeds}")
    spec.overrides = _mapping(spec.overrides, "overrides")
    if not isinstance(spec.stack_runs, bool):
        raise CompareError(f"stack_runs: expected true or false, got {spec.stack_runs!r}")
    _check_metric(spec.metric, spec.mode, "")
    for name in spec.tasks:
        metric, mode = spec.task_metric(name)
        _check_metric(metric, mode, f"tasks.{name}.")
        if not spec.task_budgets(name):
            raise CompareError(f"budgets: none for task {name!r}; give budgets: {{params: "
                               "[...]}} (or tasks.<name>.budgets)")
    t = spec.tuning
    if not isinstance(t.trials, int) or t.trials < 0:
        raise CompareError(f"tuning.trials: expected an integer >= 0, got {t.trials!r}")
    if t.seed in spec.seeds:
        raise CompareError(f"tuning.seed={t.seed} is one of the seeds {spec.seeds}; the runs "
                           "compared must not be the ones selected: pick another")
    if t.mode is not None and t.mode not in MODES:
        raise CompareError(f"tuning.mode={t.mode!r}: expected min or max")
    if t.trials:
        from kanplatform.search.spec import SearchSpecError, parse_search

        for arm in spec.arms:
            space = spec.space(arm)
            where = f"arms.{arm}.tune" if spec.arms[arm].tune is not None else "tuning.space"
            if not space:
                raise CompareError(f"{where}: empty, but tuning.trials={t.trials}; give every "
                                   "arm a space (each arm gets the same number of trials)")
            try:
                parse_search({"space": space})
            except SearchSpecError as err:
                raise CompareError(f"{where}: {err}") from None
            grid = [k for k, v in space.items() if isinstance(v, Mapping) and "grid_search" in v]
            if grid:
                raise CompareError(f"{where}.{grid[0]}: grid_search would give arms different "
                                   "trial counts; use choice")
    v = spec.verdict
    if not 0 < v.alpha < 1:
        raise CompareError(f"verdict.alpha: expected 0 < alpha < 1, got {v.alpha}")
    if v.min_effect < 0:
        raise CompareError(f"verdict.min_effect: expected >= 0, got {v.min_effect}")
    for pair in spec.pairs():
        if len(pair) != 2 or pair[0] == pair[1] or not set(pair) <= set(spec.arms):
            raise CompareError(f"verdict.pairs: {list(pair)} is not two different arms of "
                               f"{list(spec.arms)}")
    n = spec.n_eps
    if n.eps is not None:
        _positive_floats(n.eps, "n_eps.eps")
    if not n.quantiles or not all(0 < q < 1 for q in n.quantiles):
        raise CompareError(f"n_eps.quantiles: expected numbers in (0, 1), got {n.quantiles}")
    for axis in n.axes:
        if axis not in AXES:
            raise CompareError(f"n_eps.axes: {axis!r} is not a size axis; use params, flops")
    from kanplatform.scaling.spec import FitSpec

    _strict(FitSpec, n.fit, "n_eps.fit")
    if not isinstance(spec.ood.n, int) or spec.ood.n < 0:
        raise CompareError(f"ood.n: expected an integer >= 0, got {spec.ood.n!r}")
    shell = spec.ood.shell
    if not (isinstance(shell, list) and len(shell) == 2 and 1.0 <= shell[0] < shell[1]):
        raise CompareError(f"ood.shell: expected [r_lo, r_hi] with 1 <= r_lo < r_hi, got {shell}")
    if spec.wandb not in ("auto", "offline", "online", "disabled"):
        raise CompareError(f"wandb={spec.wandb!r}: use auto, offline, online or disabled")
    for name in spec.tasks:
        for path in spec.base_files(name):
            if not path.is_file():
                where = f"tasks.{name}.base" if spec.tasks[name].base is not None else "base"
                raise CompareError(f"{where}: run config {path} not found (paths are relative "
                                   "to the study file)")


# -- command-line overrides -------------------------------------------------------------

def split_overrides(overrides: Iterable[str] | Mapping[str, Any]) -> tuple[dict, dict]:
    """Split ``key=value`` overrides into (study keys, run-config keys for every training)."""
    pairs = (list(overrides.items()) if isinstance(overrides, Mapping)
             else parse_overrides(overrides, CompareError))
    study, run = {}, {}
    for key, value in pairs:
        (study if key.split(".")[0] in _fields(CompareSpec) else run)[key] = value
    return study, run


def _set(data: dict[str, Any], key: str, value: Any) -> None:
    """A study key; below ``overrides``, ``tune`` or ``space`` the rest is one dotted key."""
    parts = key.split(".")
    if parts[0] == "tasks" and len(parts) > 2 and isinstance(
            (data.get("tasks") or {}).get(parts[1]), str):  # the shorthand `xy: xy`, expanded
        data["tasks"][parts[1]] = {"overrides": {"data.dataset": data["tasks"][parts[1]]}}
    set_dotted(data, key, value, whole=("overrides", "tune", "space"), error=CompareError)


def load_compare(path: str | Path,
                 overrides: Iterable[str] | Mapping[str, Any] = ()) -> CompareSpec:
    """Read a study YAML and apply ``key=value`` overrides (see the module docstring).

    Raises:
        CompareError: missing file, bad YAML, unknown key, wrong value.
    """
    path = Path(path)
    data = read_yaml(path, CompareError, "compare study") or {}
    if not isinstance(data, dict):
        raise CompareError(f"{path}: expected a mapping with tasks, arms and budgets")
    study_keys, run_keys = split_overrides(overrides)
    for key, value in study_keys.items():
        _set(data, key, value)
    if run_keys:
        data["overrides"] = {**(data.get("overrides") or {}), **run_keys}
    return parse_compare(data, source=path)


def is_compare_file(path: Path, data: Any) -> bool:
    """``kanplatform validate`` hook: a mapping with ``arms`` and ``tasks`` is a compare study."""
    return isinstance(data, Mapping) and "arms" in data and "tasks" in data


def check_compare_file(path: Path, overrides: Iterable[str] = ()) -> str:
    """``kanplatform validate`` hook: parse the study (with ``key=value`` overrides), size
    every arm, resolve every config."""
    from kanplatform.compare.plan import plan_study

    plan = plan_study(load_compare(path, overrides))
    return (f"compare study, {len(plan.tasks)} task(s), {len(plan.cells)} cells, "
            f"{plan.n_trainings()} trainings")
