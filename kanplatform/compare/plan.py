"""From a study to its trainings: resolved task configs, sized cells, tuning samples, trials.

Everything that can be wrong with a study is found here, before Ray starts: task configs
that do not load, arms that cannot be sized to a budget, tuning keys the config lacks, and
any training whose config does not validate -- each as one :class:`CompareError` line.

A *cell* is (task, matched_by, budget, arm) with the arm's model sized to the budget. Cells
whose models are identical (an arm sized to the same width by parameters and by FLOPs)
share their trainings. A *training* is a :class:`kanplatform.scaling.spec.Trial`: the
overrides that turn the study's base config into it (the task's keys, the arm's, the size,
the tuned values, the seed), so the scaling study's run-directory resume finds it on disk.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kanplatform.compare.matching import Sized, size_arm
from kanplatform.compare.spec import AXES, CompareError, CompareSpec


@dataclass
class TaskPlan:
    """A task resolved: its run config, the keys that make it from the base, its sizes."""

    name: str
    cfg: Any
    diff: dict[str, Any]
    io: tuple[int, int]
    metric: str
    mode: str
    ood: bool
    budgets: dict[str, list[float]]


@dataclass(frozen=True)
class Cell:
    """One (task, matched_by, budget, arm) of the study, its arm sized."""

    task: str
    axis: str
    budget: float
    arm: str
    sized: Sized

    @property
    def size_key(self) -> tuple[str, str, str]:
        """``(task, arm, model label)``: cells with equal keys share their trainings."""
        return (self.task, self.arm, self.sized.label)


@dataclass
class Plan:
    """A study ready to run (see :func:`plan_study`)."""

    spec: CompareSpec
    base: Any
    tasks: dict[str, TaskPlan]
    cells: list[Cell]
    arm_keys: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    defaults: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    steps: dict[tuple[str, str], int] = field(default_factory=dict)  # optimiser steps per run

    def sizes(self) -> dict[tuple[str, str, str], Sized]:
        """Every distinct model of the study, by :attr:`Cell.size_key`, in study order."""
        out: dict[tuple[str, str, str], Sized] = {}
        for cell in self.cells:
            out.setdefault(cell.size_key, cell.sized)
        return out

    def trial(self, key: tuple[str, str, str], seed: int, values: Mapping[str, Any],
              label_suffix: str = "") -> Any:
        """The training of model ``key`` at ``seed`` with tuned ``values``."""
        from kanplatform.scaling.spec import Trial

        task, arm, label = key
        sized = self.sizes()[key]
        spec = self.spec
        size_keys: dict[str, Any] = {"model.width": list(sized.model["width"])}
        if spec.arms[arm].size == "grid_size":
            g = int(sized.model["grid_size"])
            size_keys["model.grid_size"] = g
            coarser = [c for c in spec.arms[arm].grid_schedule if c < g]
            if coarser:  # grid extension up to g in the same number of steps as every arm
                size_keys["grid.schedule"] = [*coarser, g]
                size_keys["grid.steps_per_stage"] = max(1, self.steps[(task, arm)]
                                                        // (len(coarser) + 1))
        seeds = {"seed": int(seed), **({"data.seed": int(seed)} if spec.vary_data else {})}
        overrides = {**self.tasks[task].diff, **self.arm_keys[(task, arm)], **size_keys,
                     **dict(values), **seeds}
        return Trial(f"{task}/{arm}", spec.arms[arm].kind, label + label_suffix, int(seed),
                     "runs", overrides)

    def tuning_samples(self, key: tuple[str, str, str]) -> list[dict[str, Any]]:
        """The ``tuning.trials`` sampled values of model ``key``: reproducible, and all
        different (a repeated draw is drawn again: a duplicate would train the same run twice).

        Raises:
            CompareError: the space has fewer distinct values than ``tuning.trials``.
        """
        task, arm, label = key
        salt = zlib.crc32(f"{task}/{arm}/{label}".encode())
        rng = np.random.default_rng([int(self.spec.tuning.sampler_seed), salt])
        space, n = self.spec.space(arm), self.spec.tuning.trials
        out: list[dict[str, Any]] = []
        if n == 0:
            return out
        for _ in range(100 * n):
            draw = sample(space, rng)
            if draw not in out:
                out.append(draw)
            if len(out) == n:
                return out
        where = "tuning.space" if self.spec.arms[arm].tune is None else f"arms.{arm}.tune"
        raise CompareError(f"{where}: found only {len(out)} distinct values for "
                           f"tuning.trials={n}; widen the space or lower tuning.trials")

    def tuning_trials(self) -> list[Any]:
        """Every tuning training: ``tuning.trials`` per arm and size, all at ``tuning.seed``."""
        if not self.spec.tuning.trials:
            return []
        return [self.trial(key, self.spec.tuning.seed, values, f"-t{i}")
                for key in self.sizes()
                for i, values in enumerate(self.tuning_samples(key))]

    def seed_trials(self, best: Mapping[tuple[str, str, str], Mapping[str, Any]] | None = None
                    ) -> list[Any]:
        """Every compared training: each model at each seed, with its tuned values."""
        best = best or {}
        return [self.trial(key, seed, best.get(key) or self.defaults[(key[0], key[1])])
                for key in self.sizes() for seed in self.spec.seeds]

    def n_trainings(self) -> int:
        """How many trainings the study runs in all."""
        return len(self.sizes()) * (len(self.spec.seeds) + self.spec.tuning.trials)


def sample(space: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """One draw from a search space (``choice``, ``uniform``, ``loguniform``, ``randint``;
    anything else is a constant). Floats are kept to 6 significant digits."""
    out: dict[str, Any] = {}
    for key, dom in space.items():
        if not (isinstance(dom, Mapping) and len(dom) == 1):
            out[key] = dom
            continue
        kind, arg = next(iter(dom.items()))
        if kind == "choice":
            out[key] = arg[int(rng.integers(len(arg)))]
        elif kind == "uniform":
            out[key] = float(f"{rng.uniform(*arg):.6g}")
        elif kind == "loguniform":
            out[key] = float(f"{math.exp(rng.uniform(math.log(arg[0]), math.log(arg[1]))):.6g}")
        elif kind == "randint":
            out[key] = int(rng.integers(arg[0], arg[1]))
        else:
            out[key] = dom
    return out


def _flat_diff(cfg: Any, base: Any) -> dict[str, Any]:
    from kanplatform.config import flatten, to_dict

    a, b = flatten(to_dict(cfg)), flatten(to_dict(base))
    return {k: v for k, v in a.items() if k not in b or b[k] != v}


def _resolve_task(spec: CompareSpec, name: str, base: Any) -> TaskPlan:
    from kanplatform.config import ConfigError
    from kanplatform.data import TARGETS, dataset_dims
    from kanplatform.train.resolve import load_run_config

    task = spec.tasks[name]
    try:
        cfg = load_run_config(spec.base_files(name), {**spec.overrides, **task.overrides},
                              check=False)
        io = tuple(int(v) for v in dataset_dims(cfg.data))
    except (ConfigError, KeyError, ValueError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        raise CompareError(f"tasks.{name}: {msg}") from None
    synthetic = cfg.data.dataset in TARGETS
    ood = (spec.ood.n > 0 and synthetic) if task.ood is None else bool(task.ood)
    if ood and not synthetic:
        raise CompareError(f"tasks.{name}.ood: the out-of-domain split needs a registered "
                           f"target (its training box); {cfg.data.dataset!r} has none")
    metric, mode = spec.task_metric(name)
    if metric.startswith("ood/") and not ood:
        raise CompareError(f"tasks.{name}: metric {metric} needs the out-of-domain split "
                           "(ood.n > 0 and a registered target)")
    return TaskPlan(name, cfg, _flat_diff(cfg, base), io, metric, mode, ood,
                    spec.task_budgets(name))


def _arm_keys(spec: CompareSpec, task: TaskPlan, arm: str) -> dict[str, Any]:
    a = spec.arms[arm]
    keys: dict[str, Any] = {"model.kind": a.kind, "model.match": "none"}
    keys.update({f"model.{k}": v for k, v in a.model.items()})
    if "grid.schedule" not in a.overrides:
        keys["grid.schedule"] = []  # one stage: every arm trains trainer.max_steps steps
    keys.update(a.overrides)
    keys["data.n_ood"] = spec.ood.n if task.ood else 0
    if task.ood:
        keys["data.ood_shell"] = [float(r) for r in spec.ood.shell]
    keys["name"] = f"{spec.name}.{task.name}.{arm}"
    keys.setdefault("tracking.group", task.cfg.tracking.group or spec.name)
    return keys


def _check_arm_kinds(spec: CompareSpec) -> None:
    from kanplatform.nn import MODEL_REGISTRY

    for name, arm in spec.arms.items():
        if arm.kind not in MODEL_REGISTRY:
            raise CompareError(f"arms.{name}.kind={arm.kind!r}: not a registered model kind; "
                               f"valid: {', '.join(sorted(MODEL_REGISTRY))}")
        if arm.size == "grid_size" and "grid_size" not in _accepted(arm.kind):
            raise CompareError(f"arms.{name}.size: grid_size needs a model with a grid; "
                               f"{arm.kind!r} has none (use size: width)")
        for key in spec.space(name) if spec.tuning.trials else ():
            if key.startswith("model.") or key in ("grid.schedule", "seed", "data.seed"):
                raise CompareError(f"arms.{name}.tune: {key} changes the model's size or the "
                                   "seeds; tune training keys (optim.*, trainer.*, reg.*)")


def _accepted(kind: str) -> list[str]:
    import inspect

    from kanplatform.nn import MODEL_REGISTRY

    return list(inspect.signature(MODEL_REGISTRY[kind].__init__).parameters)


def plan_study(spec: CompareSpec) -> Plan:
    """Resolve and check everything the study will train, without training anything.

    Returns:
        The :class:`Plan`.

    Raises:
        CompareError: the first problem, naming its key: a task that does not load, an
            unknown arm kind, a budget below the smallest (or above the largest) model an
            arm can be, a tuning key the config lacks, a training that does not validate.
    """
    from kanplatform.config import ConfigError
    from kanplatform.train.fitting import step_budget
    from kanplatform.train.models import model_spec
    from kanplatform.train.resolve import apply_run_overrides, load_run_config

    _check_arm_kinds(spec)
    try:
        base = load_run_config(spec.base_files(), spec.overrides, check=False)
    except (ConfigError, ValueError) as err:
        raise CompareError(f"base/overrides: {err}") from None
    tasks = {name: _resolve_task(spec, name, base) for name in spec.tasks}
    plan = Plan(spec, base, tasks, [])
    for tname, task in tasks.items():
        for arm in spec.arms:
            keys = _arm_keys(spec, task, arm)
            where = f"tasks.{tname} / arms.{arm}"
            try:
                cfg = apply_run_overrides(task.cfg, keys)
            except (ConfigError, ValueError) as err:
                raise CompareError(f"{where}: {err}") from None
            plan.arm_keys[(tname, arm)] = keys
            # the untuned values of the tuned keys, so every training has the same key set
            plan.defaults[(tname, arm)] = _defaults(spec, arm, cfg) if spec.tuning.trials else {}
            # a grid schedule in the arm's own keys ends on the grid its counts are taken at
            schedule = list(cfg.grid.schedule)
            grid = schedule[-1] if schedule and "grid_size" in _accepted(cfg.model.kind) else None
            model = {k: v for k, v in model_spec(cfg.model, grid).items() if k != "seed"}
            plan.steps[(tname, arm)] = step_budget(cfg)
            for axis in AXES:
                budgets = task.budgets.get(axis, [])
                for i, budget in enumerate(budgets):
                    src = (f"tasks.{tname}.budgets" if spec.tasks[tname].budgets
                           else "budgets") + f".{axis}[{i}]"
                    sized = size_arm(arm, spec.arms[arm], model, task.io, axis, budget, src)
                    plan.cells.append(Cell(tname, axis, budget, arm, sized))
    _validate_trainings(plan)
    return plan


def _defaults(spec: CompareSpec, arm: str, cfg: Any) -> dict[str, Any]:
    """The config's values of the keys ``arm`` tunes (refusing keys the config lacks)."""
    from omegaconf import OmegaConf

    from kanplatform.config import ConfigError
    from kanplatform.search.spec import representative
    from kanplatform.train.resolve import apply_run_overrides

    where = "tuning.space" if spec.arms[arm].tune is None else f"arms.{arm}.tune"
    out = {}
    for key, dom in spec.space(arm).items():
        try:
            apply_run_overrides(cfg, {key: representative(dom)})
        except (ConfigError, ValueError) as err:
            raise CompareError(f"{where}.{key}: {err}") from None
        value = OmegaConf.select(cfg, key)
        out[key] = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
    return out


def _validate_trainings(plan: Plan) -> None:
    """Every distinct model validates at its first seed; for the first model of each task
    and arm, so does every end of every tuned key's range."""
    from kanplatform.config import ConfigError
    from kanplatform.search.spec import domain_values
    from kanplatform.train.resolve import apply_run_overrides

    seen: set[tuple[str, str]] = set()
    for key in plan.sizes():
        plan.tuning_samples(key)  # enough distinct values for every model
        task, arm = key[0], key[1]
        defaults = plan.defaults[(task, arm)]
        trials = [(f"tasks.{task} / arms.{arm} ({key[2]})",
                   plan.trial(key, plan.spec.seeds[0], defaults))]
        if plan.spec.tuning.trials and (task, arm) not in seen:
            space = "tuning.space" if plan.spec.arms[arm].tune is None else f"arms.{arm}.tune"
            trials += [(f"{space}.{k}={v!r} (tasks.{task} / arms.{arm})",
                        plan.trial(key, plan.spec.tuning.seed, {**defaults, k: v}, "-t0"))
                       for k, dom in plan.spec.space(arm).items() for v in domain_values(dom)]
        seen.add((task, arm))
        for where, trial in trials:
            try:
                apply_run_overrides(plan.base, trial.overrides, check=True)
            except (ConfigError, ValueError) as err:
                raise CompareError(f"{where}: {err}") from None
