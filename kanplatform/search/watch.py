"""Watching a search: its live report, its own W&B run, Tune's console, where to look after.

:func:`run_search` wraps the Tuner in :func:`watch_search`: ``EXPERIMENT/report.html`` is
rewritten every few seconds from the run directories (running trials with their latest
metrics) and becomes the static sweep page when the search ends; the experiment's own W&B
run (group = the experiment, beside the trials' runs) logs progress, then the trials table,
the best config and the figures. A search run inside a study that has its own live report
(``scale``, ``compare``) leaves both to the study.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kanplatform.search.spec import SearchSpec
from kanplatform.tracking.live import DEFAULT_EVERY_S, LiveReport, active_for


@dataclass
class SearchWatch:
    """What :func:`watch_search` runs: the live report and the experiment's W&B run (either
    None when not made here)."""

    experiment_dir: Path
    live: LiveReport | None = None
    wandb_run: Any = None  # tracking.experiment_run.ExperimentRun
    wandb_config: dict[str, Any] | None = None
    begun: bool = False

    def begin(self) -> None:
        """Ray is up and the search fits: from here on it is an experiment with records
        (its W&B run starts now; a failure before leaves nothing behind)."""
        self.begun = True
        if self.wandb_config is not None and self.wandb_run is None:
            from kanplatform.tracking.experiment_run import ExperimentRun

            self.wandb_run = ExperimentRun.start(self.experiment_dir, self.wandb_config)

    def progress(self, live: LiveReport) -> None:
        if self.wandb_run is not None:
            from kanplatform.tracking.sweep import read_sweep

            self.wandb_run.progress(read_sweep(live.root, live=True))

    def annotate(self, result: Any, conn: Any) -> Any:
        """Fill the search result's ``report``, ``wandb_dir`` and dashboard fields."""
        result.report = self.live.out if self.live is not None and self.live.out.is_file() \
            else None
        result.wandb_dir = self.wandb_run.dir if self.wandb_run is not None else None
        result.dashboard_url = getattr(conn, "dashboard_url", None)
        result.dashboard_local = bool(getattr(conn, "started_here", False)) and not getattr(
            conn, "address", None)
        return result


def _wandb_config(experiment_dir: Path, spec: SearchSpec, base: dict[str, Any]) -> dict:
    tracking = dict(base.get("tracking") or {})
    tags = [*(tracking.get("tags") or []), "search"]
    tracking.update(group=tracking.get("group") or experiment_dir.name,
                    name=experiment_dir.name, tags=list(dict.fromkeys(tags)))
    return {"name": experiment_dir.name, "tracking": tracking, "search": spec.to_dict(),
            "base": base, "experiment_dir": str(experiment_dir)}


@contextlib.contextmanager
def watch_search(experiment_dir: Path, spec: SearchSpec, base: dict[str, Any], *,
                 every_s: float = DEFAULT_EVERY_S, enabled: bool = True,
                 say: Callable[[str], Any] | None = print) -> Iterator[SearchWatch]:
    """Live report and experiment W&B run around a search (see the module docstring).

    The page is written at once (before Ray starts) and its path announced; call
    :meth:`SearchWatch.begin` once Ray is up. An error before that (a cluster that refuses
    the search) removes the page, and the folders this call made (the experiment's and any
    parent of it).

    Args:
        experiment_dir: the search's experiment directory.
        spec: the search.
        base: the base run config as a plain dict (its ``tracking`` section decides W&B).
        every_s: seconds between the live report's checks.
        enabled: False: neither (the search's caller reports).
        say: where the live report's path is announced.
    """
    experiment_dir = Path(experiment_dir)
    if not enabled or active_for(experiment_dir) is not None:  # a study's: it reports
        yield SearchWatch(experiment_dir)
        return
    # the folders this call makes (the experiment's, and any parent not there yet), deepest
    # first: a refused search removes them again
    made = [d for d in (experiment_dir, *experiment_dir.parents) if not d.exists()]
    watch = SearchWatch(experiment_dir, wandb_config=_wandb_config(experiment_dir, spec, base))
    watch.live = LiveReport(experiment_dir, every_s, on_tick=watch.progress).start()
    if say is not None:
        say(f"live report: {watch.live.out}  (rewritten while the search runs, at most "
            f"every {every_s:g} s; open it in a browser)")
    ok = False
    try:
        yield watch
        ok = True
    finally:
        if not watch.begun:  # refused before it began: nothing half-made stays
            watch.live.stop(final=False)
            watch.live.out.unlink(missing_ok=True)
            for folder in made:
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only if empty
        else:
            watch.live.stop(final=True)
            _finish(watch, ok)


def _finish(watch: SearchWatch, ok: bool) -> None:
    """After the final page: the figures as files, and the W&B run's last records."""
    from kanplatform.tracking.sweep import read_sweep
    from kanplatform.tracking.sweep_page import best_command, write_figures

    sweep = read_sweep(watch.experiment_dir)
    figures: dict[str, Path] = {}
    if sweep is not None and sweep.trials:
        try:
            figures = write_figures(sweep, watch.experiment_dir / "figures")
        except Exception as err:  # noqa: BLE001 - the tables are written already
            import warnings

            warnings.warn(f"sweep figures not written ({type(err).__name__}: {err})",
                          RuntimeWarning, stacklevel=2)
    if watch.wandb_run is not None:
        command = best_command(sweep, sweep.best) if sweep is not None and sweep.best else None
        report = watch.live.out if watch.live is not None else None
        watch.wandb_run.finish(sweep, report=report, figures=figures, command=command,
                               exit_code=0 if ok else 1)


# -- Tune's console ----------------------------------------------------------------------------

def tune_loggers() -> list[Any]:
    """Tune's per-trial CSV and JSON loggers, and not its TensorBoard one: that one makes Tune
    print a TensorBoard command for Ray's temporary session folder (not the experiment), and
    TensorBoard is not part of this stack (the report, W&B and Ray's dashboard are)."""
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    return [CSVLoggerCallback(), JsonLoggerCallback()]


@contextlib.contextmanager
def only_our_loggers() -> Iterator[None]:
    """While Tune builds its callbacks: no default loggers besides :func:`tune_loggers`."""
    key = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"
    before = os.environ.get(key)
    os.environ[key] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


# -- after the search ------------------------------------------------------------------------

def where_to_look(result: Any) -> str:
    """The block the CLI ends with: report, trials, best config, W&B, the Ray dashboard."""
    import shlex

    exp = Path(result.experiment_dir)
    lines = ["", "where to look"]
    report = getattr(result, "report", None)
    if report:
        lines.append(f"  report        {report}   (open in a browser; no network needed)")
    lines.append(f"  trials        {exp / 'trials.csv'}")
    if result.best_config:
        lines.append(f"  best config   {result.best_config}")
        lines.append(f"  rerun best    kanplatform train {shlex.quote(str(result.best_config))}")
    wandb_dir = getattr(result, "wandb_dir", None)
    trial_runs = sorted(p for p in (exp / "runs").glob("*/wandb") if p.is_dir())
    if wandb_dir or trial_runs:
        lines.append(f"  W&B           {wandb_dir or '(no experiment run)'}  (the search's own "
                     f"run) and {len(trial_runs)} trial runs in {exp / 'runs'}/*/wandb")
        lines.append(f"                browse offline: wandb leet {exp / 'wandb'}  (a trial: "
                     f"wandb leet {exp / 'runs'}/<trial>/wandb)")
        lines.append(f"                upload later:   wandb sync --yes {exp}/wandb/offline-run-* "
                     f"{exp}/runs/*/wandb/offline-run-*")
    url = getattr(result, "dashboard_url", None)
    if url:
        when = ("while the search ran; the local Ray has stopped"
                if getattr(result, "dashboard_local", False) else "the cluster's")
        lines.append(f"  Ray dashboard {url}  ({when})")
    return "\n".join(lines)
