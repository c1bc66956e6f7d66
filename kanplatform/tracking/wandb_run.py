"""Weights & Biases runs that never break training: mode resolution, safe init, run metadata.

W&B is offline by default: runs are written under ``RUN_DIR/wandb/offline-run-*`` and nothing
touches the network. To upload them later, from a machine with network access::

    export WANDB_API_KEY=...                     # or `wandb login` once
    wandb sync --dry-run RUN_DIR/wandb/offline-run-*      # what would be uploaded
    wandb sync --yes RUN_DIR/wandb/offline-run-*
    wandb sync --yes EXPERIMENT_DIR/*/wandb/offline-run-*  # every run of a study
    wandb sync --yes -p PROJECT -e ENTITY RUN_DIR/wandb/offline-run-*   # another project

Run without paths inside a ``wandb`` folder, ``wandb sync --yes`` uploads every run there that
is not synced yet. A run continued with ``kanplatform train --resume`` has one
``offline-run-*`` directory per process, all with the same run id: ``wandb sync`` uploads
them in order of start time into one W&B run. Checkpoint artifacts
(``tracking.log_checkpoints``) are staged under ``WANDB_DATA_DIR`` until then. Use
``tracking.mode=online`` to stream live; if the W&B server cannot be reached
(``tracking.init_timeout`` seconds) the run falls back to offline with one warning.
``wandb leet RUN_DIR/wandb/offline-run-*`` browses an offline run in the terminal.

W&B itself is imported lazily, inside the functions that need it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import platform
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kanplatform.config.schema import TRACKING_MODES, TrackingConfig

MODES = TRACKING_MODES

# A config without a tracking section (or lacking a key) gets the schema's defaults: one source
# (mode `auto`: offline unless WANDB_MODE says otherwise or the user is logged in).
DEFAULTS: dict[str, Any] = dataclasses.asdict(TrackingConfig())


_OPEN_RUNS: list[Any] = []  # runs started here and not finished yet

RUN_ID_FILE = "run-id"  # in RUN_DIR/wandb: the id of the run's W&B run, for resuming it


class TrackingWarning(UserWarning):
    """A W&B problem that was turned into a warning so that training goes on."""


def tracking_option(cfg: Any, key: str) -> Any:
    """Return ``cfg.tracking.<key>``, or the documented default when the config lacks it.

    Args:
        cfg: a RunConfig (OmegaConf or dataclass), a plain mapping, or ``None``.
        key: a field of the tracking section, e.g. ``"mode"``.
    """
    tracking = _get(cfg, "tracking")
    value = _get(tracking, key)
    return DEFAULTS.get(key) if value is None else value


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(key)
    try:
        return getattr(obj, key, None)
    except Exception:  # OmegaConf struct configs raise on unknown keys
        return None


def is_logged_in() -> bool:
    """Whether an API key is available (``WANDB_API_KEY`` or a ``wandb login`` netrc entry)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


def resolve_mode(cfg: Any = None) -> str:
    """Return the W&B mode a run uses: ``"offline"``, ``"online"`` or ``"disabled"``.

    ``tracking.mode`` decides when it is ``offline``, ``online`` or ``disabled``. With ``auto``
    the ``WANDB_MODE`` environment variable decides if set, else ``online`` when the user is
    logged in and ``offline`` otherwise.

    Raises:
        ValueError: for a mode outside ``auto|offline|online|disabled``.
    """
    mode = str(tracking_option(cfg, "mode")).lower()
    if mode not in MODES:
        raise ValueError(f"tracking.mode={mode!r}: expected one of {', '.join(MODES)}")
    if mode != "auto":
        return mode
    env = os.environ.get("WANDB_MODE", "").lower()
    if env in ("offline", "dryrun"):
        return "offline"
    if env in ("online", "run", "disabled"):
        return "online" if env == "run" else env
    return "online" if is_logged_in() else "offline"


@functools.lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    """Versions of Python and the packages a result depends on (as in ``metrics.json``)."""
    from kanplatform._util.runinfo import versions

    return {"python": platform.python_version(), **versions()}


def git_sha(path: str | Path | None = None) -> str | None:
    """The commit of the kanplatform checkout (``-dirty`` if it has changes); None if unknown."""
    from kanplatform._util.runinfo import git_sha as checkout_sha

    return checkout_sha(path)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """The resolved config as plain containers (what W&B and Ray accept)."""
    if cfg is None:
        return {}
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
        if hasattr(cfg, "__dataclass_fields__"):
            return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)  # type: ignore
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    if isinstance(cfg, Mapping):
        return dict(cfg)
    raise TypeError(f"cannot turn {type(cfg).__name__} into a config dict")


def run_config(cfg: Any) -> dict[str, Any]:
    """The W&B run config: the resolved config's keys, plus ``seed``, ``git_sha``, ``versions``.

    The config's own keys are kept unchanged (so they match ``config.yaml``); the three
    metadata keys are added only where the config does not already define them.
    """
    out = config_to_dict(cfg)
    if _get(cfg, "seed") is not None:
        out.setdefault("seed", _get(cfg, "seed"))
    out.setdefault("git_sha", git_sha())
    out.setdefault("versions", package_versions())
    return out


def warn_once(message: str, *, key: str | None = None, _seen: set[str] = set()) -> None:  # noqa: B006
    """Issue a ``TrackingWarning`` once per process for ``key`` (default: the message)."""
    key = key or message
    if key in _seen:
        return
    _seen.add(key)
    warnings.warn(message, TrackingWarning, stacklevel=3)


def _why(err: BaseException) -> str:
    """First line of an error, short enough for a warning."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text[:200]}"


def recorded_run_id(run_dir: str | Path) -> str | None:
    """The W&B run id :func:`init_run` recorded in ``run_dir/wandb/run-id``, None if none."""
    try:
        run_id = (Path(run_dir) / "wandb" / RUN_ID_FILE).read_text().strip()
    except OSError:
        return None
    return run_id or None


def init_run(cfg: Any, run_dir: str | Path, mode: str | None = None,
             resume: bool = False, step_metric: str = "trainer/global_step",
             job_type: str | None = None) -> Any | None:
    """Start the W&B run of a training run; a failure becomes one warning, never an error.

    An ``online`` run that cannot reach the server (no network, bad key) falls back to an
    ``offline`` run in the same place, so nothing is lost: ``wandb sync`` uploads it later.
    The run's id is recorded in ``run_dir/wandb/run-id``.

    With ``resume`` (``kanplatform train --resume``) the run recorded there is continued
    (``wandb.init(id=..., resume="allow")``): online, W&B appends to it; offline, W&B cannot
    append to the earlier ``offline-run-*`` directory, so it writes a new one with the same
    run id, marked as resumed, and ``wandb sync`` uploads the directories of one id in order
    of start time into that one run. Without a recorded id a new run starts.

    Args:
        cfg: the resolved RunConfig (its ``tracking`` section names project, group, tags...).
        run_dir: the run directory; W&B writes ``run_dir/wandb/``.
        mode: overrides :func:`resolve_mode`.
        resume: continue the W&B run recorded in ``run_dir``.
        step_metric: the x axis of every logged value (an experiment's own run uses another
            than the trainer's step).
        job_type: W&B's job type (``search`` for an experiment's own run).

    Returns:
        The ``wandb`` Run, or ``None`` when tracking is disabled or W&B could not start.
    """
    mode = mode or resolve_mode(cfg)
    if mode == "disabled":
        return None
    run_dir = Path(run_dir)
    run_id = recorded_run_id(run_dir) if resume else None
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        return _init(cfg, run_dir, mode, run_id, step_metric, job_type)
    except Exception as err:  # noqa: BLE001 - any W&B failure must not stop training
        if mode != "online":
            warn_once(f"W&B could not start ({_why(err)}); training goes on "
                      "without W&B. Metrics and figures are still written to the run directory.",
                      key=f"init:{run_dir}")
            return None
        first = err
    try:
        run = _init(cfg, run_dir, "offline", run_id, step_metric, job_type)
    except Exception as err:  # noqa: BLE001
        warn_once(f"W&B online run failed ({_why(first)}) and the offline "
                  f"fallback too ({_why(err)}); training goes on without W&B.",
                  key=f"init:{run_dir}")
        return None
    warn_once(f"W&B online run failed ({_why(first)}); logging offline to "
              f"{run.dir}. Upload later with: wandb sync --yes {Path(run.dir).parent}",
              key=f"init:{run_dir}")
    return run


def _init(cfg: Any, run_dir: Path, mode: str, run_id: str | None = None,
          step_metric: str = "trainer/global_step", job_type: str | None = None) -> Any:
    import wandb

    tags = tracking_option(cfg, "tags")
    timeout = float(tracking_option(cfg, "init_timeout"))
    settings = wandb.Settings(init_timeout=timeout, login_timeout=timeout, silent=True,
                              x_disable_stats=True)
    run = wandb.init(
        dir=str(run_dir),
        mode=mode,
        project=tracking_option(cfg, "project"),
        entity=tracking_option(cfg, "entity"),
        group=tracking_option(cfg, "group"),
        tags=list(tags) if tags else None,
        name=tracking_option(cfg, "name") or run_dir.name,
        job_type=job_type,
        config=run_config(cfg),
        settings=settings,
        # never finish or take over a run the user (or another trial) has open
        reinit="create_new",
        id=run_id,
        resume="allow" if run_id else None,
    )
    _OPEN_RUNS.append(run)
    (run_dir / "wandb" / RUN_ID_FILE).write_text(f"{run.id}\n")  # what a resume continues
    # One x axis for everything: the trainer's (monotone) global step.
    run.define_metric(step_metric)
    run.define_metric("*", step_metric=step_metric, step_sync=True)
    return run


def finish_run(run: Any, exit_code: int = 0) -> None:
    """Finish one run :func:`init_run` started (and no other); failures become a warning."""
    if run in _OPEN_RUNS:
        _OPEN_RUNS.remove(run)
    try:
        run.finish(exit_code=exit_code)
    except Exception as err:  # noqa: BLE001
        warn_once(f"W&B run did not finish cleanly ({_why(err)})", key=f"finish:{id(run)}")


def finish(loggers: Any = None, exit_code: int = 0, status: str | None = None) -> None:
    """Finish the W&B run(s) so the offline files are complete; failures become a warning.

    ``kanplatform.train.fit`` calls this once after its last trainer and after writing
    ``metrics.json``; the run's final metrics (``test/rmse``, ``val/rmse``, ``model/params``,
    ``status``...) from that file go into the W&B run summary, under the same names. With
    ``tracking.log_checkpoints``, ``model.pt`` and ``checkpoints/*.ckpt`` of the run
    directory are logged as one W&B artifact of type ``model`` (``model-<run id>``).

    Args:
        loggers: loggers from :func:`kanplatform.tracking.make_loggers`; ``None`` finishes
            every run :func:`init_run` started in this process and nobody finished.
        exit_code: 0 for a completed (or stopped) run, non-zero for a failed, diverged or
            interrupted one.
        status: the run's status; one other than ``completed`` becomes a tag of the W&B run
            (``stopped``, ``diverged``, ``failed``, ``interrupted``), besides ``status`` in
            its summary.
    """
    runs = []
    for logger in loggers or ():
        run = getattr(logger, "_experiment", None)
        if run is not None:
            runs.append((run, getattr(logger, "run_dir", None),
                         getattr(logger, "log_checkpoints", False)))
    if loggers is None:
        runs = [(run, None, False) for run in _OPEN_RUNS]
    for run, run_dir, log_checkpoints in runs:
        if run in _OPEN_RUNS:
            _OPEN_RUNS.remove(run)
        try:
            if status and status != "completed":
                run.tags = (*(run.tags or ()), status)
            if run_dir is not None:
                run.summary.update(final_summary(run_dir))
                if log_checkpoints:
                    log_model_artifact(run, run_dir, "completed" if exit_code == 0 else "failed")
            run.finish(exit_code=exit_code)
        except Exception as err:  # noqa: BLE001
            warn_once(f"W&B run did not finish cleanly ({_why(err)})", key=f"finish:{id(run)}")


def log_model_artifact(run: Any, run_dir: str | Path, alias: str = "completed") -> Any | None:
    """Log ``model.pt`` and ``checkpoints/*.ckpt`` of a run directory as a ``model`` artifact.

    Offline, the files are staged under ``WANDB_DATA_DIR`` (default: in the home folder) until
    ``wandb sync`` uploads them. Returns the artifact, or None when there is no file.
    """
    import wandb

    run_dir = Path(run_dir)
    files = [p for p in [run_dir / "model.pt", *sorted((run_dir / "checkpoints").glob("*.ckpt"))]
             if p.is_file()]
    if not files:
        return None
    artifact = wandb.Artifact(f"model-{run.id}", type="model",
                              metadata=final_summary(run_dir) or None)
    for path in files:
        artifact.add_file(str(path), name=str(path.relative_to(run_dir)))
    run.log_artifact(artifact, aliases=["latest", alias])
    return artifact


def final_summary(run_dir: str | Path) -> dict[str, Any]:
    """The scalar results of ``run_dir/metrics.json`` (final metrics first), {} if absent."""
    try:
        raw = json.loads((Path(run_dir) / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}
    out = {k: v for k, v in (raw.get("final") or {}).items() if _scalar(v)}
    for key in ("model/params", "model/flops", "wall_time_s", "status", "reason",
                "trainer/workers", "trainer/backend", "trainer/num_threads",
                "trainer/steps_per_batch"):
        if _scalar(raw.get(key)):
            out.setdefault(key, raw[key])
    return out


def _scalar(v: Any) -> bool:
    return isinstance(v, (int, float, str, bool)) and v is not None
