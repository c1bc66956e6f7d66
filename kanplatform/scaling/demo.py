"""The demo: the small KAN-vs-MLP scaling study of ``configs/scaling/demo.yaml``, end to end.

Ray Tune on a local Ray bound to 127.0.0.1, W&B offline, power-law fits with bootstrap
confidence intervals, log-log plots and the static HTML report (``kanplatform demo``).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from kanplatform.scaling.spec import load_study
from kanplatform.scaling.study import StudyResult, run_study

DEMO_STUDY = Path(__file__).resolve().parents[2] / "configs" / "scaling" / "demo.yaml"


@dataclass
class DemoResult:
    """What :func:`run_demo` produced.

    Attributes:
        study: the scaling study's result (experiment directory, fits, plots, errors).
        report: the HTML report.
        wandb_runs: the offline W&B run directories under the experiment directory.
    """

    study: StudyResult
    report: Path
    wandb_runs: list[Path] = field(default_factory=list)


def run_demo(study: str | Path = DEMO_STUDY, output_dir: str | Path = "runs/demo",
             resume: bool = False) -> DemoResult:
    """Run the demo study (its report live while it runs, final at the end).

    Args:
        study: the scaling study file.
        output_dir: where the experiment directory goes.
        resume: continue an interrupted demo; otherwise its experiment directory is removed
            first (the demo is disposable: a fresh run each time).

    Raises:
        StudyError: the study file is missing or invalid (before anything is removed).
    """
    spec = load_study(study)
    out = Path(output_dir).resolve()
    exp_dir = out / spec.name
    if exp_dir.exists() and not resume:
        shutil.rmtree(exp_dir)
    result = run_study(spec, resume=resume, output_dir=out, verbose=0)
    if result.report is None:  # the live report could not write it: say why, here
        from kanplatform.tracking import write_report

        result.report = write_report(result.exp_dir)
    runs = sorted(p for p in result.exp_dir.rglob("offline-run-*") if p.is_dir())
    return DemoResult(result, Path(result.report), runs)
