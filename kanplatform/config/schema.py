"""The typed schema of a run: one dataclass per config section.

OmegaConf merges YAML files onto these dataclasses in struct mode, so an unknown key or a
value of the wrong type fails at load time with the key named. Semantic checks (ranges,
dataset dimensions, registry names) live in :mod:`kanplatform.config.validate`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

OPTIMIZERS = ("lbfgs", "adam", "adamw")
PRECISIONS = (32, 64, "bf16-mixed")
TASKS = ("regression", "classification")
NORMALIZE = ("auto", "standard", "minmax", "none")
SCHEDULERS = ("none", "cosine", "step")
EARLY_STOP_MODES = ("min", "max")
TRACKING_MODES = ("auto", "offline", "online", "disabled")
REG_VARIANTS = ("paper", "pykan")
MATCH_MODES = ("none", "params")


@dataclass
class ModelKeys:
    """The keys every model kind reads: ``width`` lists layer widths, input first and output
    last (both must agree with the dataset).

    Attributes:
        kind: the model, by its name in the kanplatform.nn registry (kan, mlp).
        width: layer widths, input first and output last (both must fit the dataset).
        bias: biases (KAN: one per output node; MLP: in the linear layers).
    """

    kind: str = "kan"
    width: list[int] = field(default_factory=lambda: [2, 1, 1])
    bias: bool = True


@dataclass
class KANConfig(ModelKeys):
    """``kind: kan`` (:class:`kanplatform.nn.KAN`): a spline grid of ``grid_size`` intervals
    of order ``spline_order`` over ``grid_range``, plus a ``base_activation`` on every edge.

    Attributes:
        grid_size: KAN: intervals of each spline grid (a schedule's first entry replaces it).
        spline_order: KAN: the B-splines' order (3 = cubic).
        grid_range: KAN: the grid's initial [low, high] (updated from the inputs).
        base_activation: KAN: the residual activation on every edge.
    """

    kind: str = "kan"
    grid_size: int = 5
    spline_order: int = 3
    grid_range: list[float] = field(default_factory=lambda: [-1.0, 1.0])
    base_activation: str = "silu"


@dataclass
class MLPConfig(ModelKeys):
    """``kind: mlp`` (:class:`kanplatform.nn.MLP`): ``activation`` on the hidden nodes.

    ``match: params`` resizes the hidden layers (all to one width, keeping their number) so
    the parameter count is the closest to ``match_params``. Selecting ``model=mlp`` on top of
    another kind's config fills ``match_params`` with that model's count at its final grid
    size, which is how ``kanplatform train EXP.yaml model=mlp`` trains a parameter-matched MLP.
    The resolved config records the widths that trained.

    Attributes:
        activation: MLP: the hidden nodes' activation.
        match: MLP: none, or params (hidden widths resized to match_params parameters).
        match_params: MLP: the parameter count to match (model=mlp over a KAN fills it).
    """

    kind: str = "mlp"
    activation: str = "silu"
    match: str = field(default="none", metadata={"build": False})
    match_params: int | None = field(default=None, metadata={"build": False})


# Per-kind model configs: a new model kind is one constructor registered in kanplatform.nn
# (`register_model`) plus its dataclass here, registered under the same name and added to the
# bases of ModelConfig (the keys a `model:` section may hold). Fields with
# metadata {"build": False} are read by the run's resolution, not passed to the constructor.
MODEL_CONFIGS: dict[str, type[ModelKeys]] = {"kan": KANConfig, "mlp": MLPConfig}


def model_keys(kind: str) -> list[str]:
    """The ``model`` keys a kind reads (its dataclass's fields), ``[]`` for an unknown kind."""
    cls = MODEL_CONFIGS.get(kind)
    return [f.name for f in dataclasses.fields(cls)] if cls else []


def has_grid(kind: str) -> bool:
    """Whether models of ``kind`` live on a spline grid (their config has a ``grid_size``):
    grid schedules and a study's grid sizes apply to them (the config side of
    :class:`kanplatform.nn.GridModel`)."""
    return "grid_size" in model_keys(kind)


@dataclass
class ModelConfig(MLPConfig, KANConfig):
    """What to train: the ``model`` section. ``kind`` picks the model from the
    ``kanplatform.nn`` registry and its keys from :data:`MODEL_CONFIGS` (the keys of the
    other kinds are accepted and ignored, so ``model=mlp`` over a KAN config, and a resolved
    ``config.yaml``, keep one format).
    """

    kind: str = "kan"


@dataclass
class DataConfig:
    """Where the samples come from: a registered dataset (``dataset``) or a file.

    ``dataset`` names a synthetic target (``exp_sin_sq``, Feynman equations...), a real
    dataset (scikit-learn's bundled ``digits``, ``wine``, ``breast_cancer``, ``iris``,
    ``diabetes``; torchvision's ``mnist``, ``fashion_mnist``, ``cifar10`` read from ``root``),
    or ``file``: ``path`` (.csv with a header row, .npz with one array per column, .parquet)
    and the columns ``inputs`` -> ``targets`` (classification: one label column, integers or
    strings).

    Sizes: ``n_train``/``n_val``/``n_test`` null (or ``all``) means every row, split by the
    fractions ``split`` (seeded shuffle, stratified by class for classification); a number
    fixes that split's size (the others still take their fraction of the rows). Synthetic
    targets have no rows to use up: null samples 1000 each. Datasets with an official test
    set (torchvision) test on it and split ``split[0]:split[1]`` of their training set.

    ``normalize``: ``auto`` keeps a synthetic target's declared domain and, for file and real
    data, maps the inputs onto the model's ``grid_range`` (min/max of the training split) and
    standardises regression targets; ``minmax`` and ``standard`` do that (``standard``
    z-scores the inputs) for every dataset; ``none`` leaves the values alone. Fitted on the
    training split only, saved with the model, applied by ``kanplatform.load`` and
    ``predict``; metrics are in the original units.

    ``batch_size: null`` trains on the full batch (what LBFGS needs); an integer gives
    mini-batches, reshuffled every epoch from ``seed``. ``noise`` is the std of Gaussian
    noise added to train and validation targets of synthetic and file regression data (test
    targets stay clean). ``seed`` fixes the samples and the split independently of
    ``RunConfig.seed`` (which seeds the model's initialisation), so seeds compare models on
    the same data. A file's rows holding NaN or inf are refused (their count and the first
    one named) unless ``drop_nonfinite: true``, which trains without them (with a warning).

    Image datasets: ``root`` holds torchvision's layout (``ROOT/MNIST/raw/*-ubyte``,
    ``ROOT/FashionMNIST/raw/``, ``ROOT/cifar-10-batches-py/``); ``download: true`` lets
    torchvision fetch it (when installed); ``pool: k`` averages k x k pixel blocks before the
    image is flattened (MNIST: 784 inputs, 196 with ``pool: 2``).

    ``n_ood > 0`` (registered synthetic targets only) adds an out-of-domain test split of
    that many points in the shell ``ood_shell`` (in half-widths of the training box, default
    1.0-1.5: just outside it; see :mod:`kanplatform.data.ood`), and the run records
    ``ood/rmse``.

    Attributes:
        dataset: a synthetic target (exp_sin_sq, ...), a real dataset (digits, ...) or file.
        n_train: training rows (null or all: a fraction of every row, data.split).
        n_val: validation samples.
        n_test: test samples (targets without noise).
        noise: std of Gaussian noise added to train and validation targets.
        seed: seed of the samples (apart from the model's ``seed``).
        batch_size: mini-batch size; null trains on the full batch (LBFGS needs it).
        path: the .csv or .npz file of ``dataset: file``.
        inputs: the file's input columns.
        targets: the file's target columns.
        n_ood: points of an out-of-domain test split (0: none; registered targets only).
        ood_shell: that split's shell [r_lo, r_hi], in half-widths of the training box.
        split: fractions [train, val, test] of the rows when a size is null.
        normalize: auto, standard, minmax or none (fitted on the training split).
        drop_nonfinite: train without a file's rows holding NaN/inf (else refused).
        root: the folder holding torchvision's files (mnist, fashion_mnist, cifar10).
        download: let torchvision fetch them (needs torchvision).
        pool: average k x k pixel blocks before flattening an image.
    """

    dataset: str = "exp_sin_sq"
    n_train: Any = None
    n_val: Any = None
    n_test: Any = None
    split: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    normalize: str = "auto"
    noise: float = 0.0
    seed: int = 0
    batch_size: int | None = None
    path: str | None = None
    inputs: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    drop_nonfinite: bool = False
    root: str | None = None
    download: bool = False
    pool: int = 1
    n_ood: int = 0
    ood_shell: list[float] = field(default_factory=lambda: [1.0, 1.5])


@dataclass
class OptimConfig:
    """The optimiser. LBFGS uses the full batch with a strong-Wolfe line search by default.

    The LBFGS tolerances default to pykan's (practically never stop early), which is what
    lets the grid-extension experiment reach RMSE ~1e-5.

    ``scheduler`` sets the learning rate per step (Adam/AdamW): ``none``; ``cosine`` (linear
    warm-up over ``warmup_steps``, then a cosine from ``lr`` down to ``min_lr`` at the end of
    the budget); ``step`` (multiply by ``gamma`` every ``step_size`` steps, after the
    warm-up). Grid stages rebuild the optimiser, not the schedule: it follows the global step.

    Attributes:
        name: lbfgs, adam or adamw.
        lr: learning rate (LBFGS: the step scale, 1.0 with the line search).
        weight_decay: L2 weight decay (adam, adamw).
        history_size: LBFGS history length.
        max_iter: LBFGS inner iterations per training step.
        line_search: strong_wolfe or null (LBFGS).
        tolerance_grad: LBFGS gradient tolerance (pykan's: practically never stops early).
        tolerance_change: LBFGS change tolerance (pykan's).
        scheduler: none, cosine or step (Adam/AdamW learning-rate schedule).
        warmup_steps: linear warm-up steps of the schedule.
        step_size: steps between multiplications by gamma (step).
        gamma: the step schedule's factor.
        min_lr: the cosine schedule's final learning rate.
    """

    name: str = "lbfgs"
    lr: float = 1.0
    weight_decay: float = 0.0
    history_size: int = 10
    max_iter: int = 20
    line_search: str | None = "strong_wolfe"
    tolerance_grad: float = 1e-32
    tolerance_change: float = 1e-32
    scheduler: str = "none"
    warmup_steps: int = 0
    step_size: int = 1000
    gamma: float = 0.1
    min_lr: float = 0.0


@dataclass
class EarlyStoppingConfig:
    """Stop when ``metric`` (a logged validation metric; null: ``val/loss`` for
    classification, ``val/rmse`` for regression) has not improved by more than ``min_delta``
    for ``patience`` validations in a row; ``mode: max`` for accuracies."""

    metric: str | None = None
    patience: int = 5
    mode: str = "min"
    min_delta: float = 0.0


@dataclass
class TrainerConfig:
    """How Lightning runs: step budget, device, numeric precision, validation cadence.

    ``max_steps`` is the budget when there is no grid schedule; with one, the budget is
    ``len(grid.schedule) * grid.steps_per_stage``. ``num_threads`` sets torch's CPU threads
    for this run; null (default): torch's current count, capped by the CPUs the process may
    use (its affinity mask and cgroup CPU quota), recorded as ``trainer/num_threads`` in
    ``metrics.json``.

    ``checkpoint_every_n_steps``: N > 0 (default 100) writes ``RUN_DIR/checkpoints/last.ckpt``
    every N steps and at the end of every grid stage while the run trains, atomically (a temp
    file in the same folder, then a rename), with the content of the checkpoint written when
    a run ends, so ``kanplatform train --resume RUN_DIR`` continues a run killed without
    warning (SIGKILL, out of memory, a lost node) from there, exactly. 0 writes it only when
    the run ends (completed, failed, SIGTERM or Ctrl-C). Default 100: a checkpoint of a small
    KAN costs well under 1% of 100 LBFGS steps (benchmarks/README.md; a bit more for 100 Adam
    steps), and a kill loses at most 100 steps.

    ``divergence_factor`` (default 1e4): a run whose training loss becomes NaN/inf, or rises
    above this many times its best (lowest) loss so far, stops at once with ``status:
    diverged`` and a reason naming the step and the loss, in every precision (float64 can
    climb to 1e48 without overflowing); a search scores it with the worst value. 0 or null:
    only non-finite losses count.
    ``max_epochs``: passes over the training split (mini-batch runs); with ``max_steps`` as
    well, whichever comes first ends the run (``max_steps: null`` for epochs alone).
    ``precision``: 32, 64, or ``bf16-mixed`` (autocast to bfloat16 where the device supports
    it; float32 weights). ``gradient_clip_val`` clips the gradient norm (Adam/AdamW).
    ``early_stopping: {metric, patience, mode}`` stops the run (``status: stopped``, with why)
    when ``metric`` has not improved for ``patience`` validations. ``enable_progress_bar``:
    the bar shows only on a terminal; elsewhere (cluster logs, pipes) one line is printed per
    validation.

    Attributes:
        max_steps: the step budget without a grid schedule.
        accelerator: auto (GPU when present), cpu, gpu, cuda or mps.
        devices: Lightning's devices (auto, a count or a list).
        precision: 32 or 64 (bits of the floats), or bf16-mixed.
        val_every_n_steps: validate every N steps.
        log_every_n_steps: log train/loss every N steps.
        num_threads: torch CPU threads for this run (null: torch's, capped by the CPUs the
            process may use).
        deterministic: deterministic algorithms (same seed, same result).
        enable_progress_bar: show Lightning's progress bar.
        checkpoint_every_n_steps: write checkpoints/last.ckpt every N steps (0: at the end).
        divergence_factor: a training loss above this many times its best so far is divergence
            (0 or null: only NaN/inf losses).
        max_epochs: passes over the training split (null: max_steps alone).
        gradient_clip_val: clip the gradient norm (Adam/AdamW; null: no clipping).
        early_stopping: {metric, patience, mode, min_delta}, or null.
    """

    max_steps: int | None = 1000
    max_epochs: int | None = None
    accelerator: str = "auto"
    devices: Any = "auto"
    precision: Any = 32
    val_every_n_steps: int = 50
    log_every_n_steps: int = 10
    num_threads: int | None = None
    deterministic: bool = True
    enable_progress_bar: bool = True
    checkpoint_every_n_steps: int = 100
    divergence_factor: float | None = 1.0e4
    gradient_clip_val: float | None = None
    early_stopping: EarlyStoppingConfig | None = None


@dataclass
class GridConfig:
    """KAN grid schedule (ignored for MLPs, except that stages still split the budget).

    ``schedule: [3, 5, 10, 20, 50]`` trains ``steps_per_stage`` steps per grid size,
    extending the grid (and rebuilding the optimiser) between stages; the first entry
    replaces ``model.grid_size``. Within every stage the grid is updated from the training
    inputs every ``update_every`` steps while the stage's step is below ``update_until``
    (``update_every: 0`` turns that off), as pykan's ``fit`` does, except that the untrained
    model's grid is not updated before the first step.

    Attributes:
        schedule: grid sizes, one per stage, increasing ([] trains one stage on grid_size).
        steps_per_stage: training steps of each stage.
        update_every: update the grid from the inputs every N steps of a stage (0: never).
        update_until: no grid updates from this step of a stage on.
        grid_eps: 0 = grid at input quantiles, 1 = uniform grid (pykan's grid_eps).
    """

    schedule: list[int] = field(default_factory=list)
    steps_per_stage: int = 200
    update_every: int = 5
    update_until: int = 50
    grid_eps: float = 0.02


@dataclass
class RegConfig:
    """KAN sparsity regularisation: ``lamb * (lamb_l1 * L1 + lamb_entropy * entropy)``.

    ``lamb: 0`` (default) turns it off. ``variant`` is ``paper`` or ``pykan`` (0.2.8).

    Attributes:
        lamb: overall strength (0: off); > 0 makes a KAN sparse enough to prune.
        lamb_l1: weight of the L1 norm of the edges' activations.
        lamb_entropy: weight of the entropy of each node's edges.
        variant: paper (the KAN paper's formula) or pykan (pykan 0.2.8's).
    """

    lamb: float = 0.0
    lamb_l1: float = 1.0
    lamb_entropy: float = 2.0
    variant: str = "paper"


@dataclass
class TrackingConfig:
    """Weights & Biases and figures, read by :mod:`kanplatform.tracking`.

    ``mode: auto`` (the default) is ``offline`` unless ``WANDB_MODE`` says otherwise or the
    user is logged in to W&B (then ``online``); ``offline`` writes the W&B run under the run
    directory and needs no network; ``online`` falls back to offline with one warning when
    the server cannot be reached; ``disabled`` logs nothing to W&B (figures are still
    written to the run directory). ``name`` names the W&B run (default: the run
    directory's name). ``snapshot_every`` (steps, 0 = stage ends only) and
    ``snapshot_points`` (points per edge curve) control spline snapshots.

    Attributes:
        mode: auto, offline, online or disabled.
        project: the W&B project.
        entity: the W&B entity (user or team; null: the default).
        group: the W&B run group.
        tags: W&B tags.
        name: the W&B run name (null: the run directory's name).
        snapshot_every: spline snapshots every N steps (0: at stage ends only).
        snapshot_points: points per edge curve in a snapshot.
        log_checkpoints: upload the final checkpoint as a W&B artifact.
        init_timeout: seconds W&B may take to start before the run goes on without it.
    """

    mode: str = "auto"
    project: str = "kanplatform"
    entity: str | None = None
    group: str | None = None
    tags: list[str] = field(default_factory=list)
    name: str | None = None
    snapshot_every: int = 0
    snapshot_points: int = 101
    log_checkpoints: bool = False
    init_timeout: float = 30.0


@dataclass
class RunConfig:
    """One training run. ``seed`` seeds the model's initialisation and the optimiser.

    ``task``: ``regression`` (MSE; metrics ``*/rmse``) or ``classification`` (one label
    column, classes counted from the training split, ``model.width[-1]`` logits, cross-entropy;
    metrics ``*/loss``, ``*/accuracy``, ``*/f1`` (macro)).

    Attributes:
        name: the run's name (its directory is <output_dir>/<name>-<time>-<id>).
        task: regression or classification.
        seed: seed of the model's initialisation and the optimiser.
        output_dir: where run directories go.
        model: what to train.
        data: where the samples come from.
        optim: the optimiser.
        trainer: how Lightning runs.
        grid: the KAN grid schedule.
        reg: KAN sparsity regularisation.
        tracking: W&B and figures.
    """

    name: str = "run"
    task: str = "regression"
    seed: int = 0
    output_dir: str = "runs"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    grid: GridConfig = field(default_factory=GridConfig)
    reg: RegConfig = field(default_factory=RegConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


# config groups: a CLI override `GROUP=NAME` merges configs/GROUP/NAME.yaml into this section
GROUPS = ("model", "data", "optim", "trainer", "grid", "reg", "tracking")
