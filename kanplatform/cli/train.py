"""``kanplatform train CONFIG [key=value ...]``: one run from a config; prints the run dir.

``kanplatform train RUN_DIR --resume [key=value ...]`` (``train --resume RUN_DIR`` reads the
same: ``--resume`` is a flag, as in every command) continues the run in ``RUN_DIR`` from its
``checkpoints/last.ckpt`` with its ``config.yaml`` (or the CONFIG files given), e.g. after
``kill PID`` (SIGTERM stops after the step in progress), after ``kill -9`` or a crash (from the
checkpoint written every ``trainer.checkpoint_every_n_steps`` steps and at stage ends) or with a
larger budget (``trainer.max_steps=...``, ``grid.schedule=[...]``). The run's W&B run goes on.

``--interpret`` then prunes the trained KAN and fits a formula (``kanplatform interpret``'s
defaults; its files go to ``RUN_DIR/interpret/``).

A ``--run-dir`` that holds a run is refused unless ``--resume`` is given, and one another
process is writing is refused at once (runs are never overwritten).

Exit status: 0 completed, 1 diverged, failed or ``--interpret`` failed (one line with the
reason and the run directory; a failure's traceback is in ``RUN_DIR/error.log``, and on the
console with ``--debug``), 2 invalid config, checkpoint or run directory, found before
anything is written (or ``--interpret`` with a model that is not a KAN), 143 stopped by
SIGTERM / 130 by Ctrl-C (``metrics.json`` says ``interrupted`` and where; ``--resume`` goes on).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kanplatform.cli import error_lines

# shown at the end of `kanplatform train --help`
EXAMPLES = (
    "kanplatform train configs/experiment/quick.yaml",
    "kanplatform train configs/experiment/grid_extension.yaml model=mlp   # parameter-matched MLP",
    "kanplatform train configs/experiment/interpret.yaml --interpret     # prune, print a formula",
    "kanplatform train runs/<run> --resume trainer.max_steps=400         # larger budget",
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``train`` arguments."""
    parser.add_argument("config", nargs="*", metavar="CONFIG_OR_OVERRIDE",
                        help="config file(s) (YAML, merged left to right), then key=value "
                             "overrides, e.g. model=mlp model.grid_size=10")
    parser.add_argument("--output-dir", default=None,
                        help="where the run directory is created (default: the config's "
                             "output_dir, runs); the same as output_dir=DIR")
    parser.add_argument("--run-dir", default=None, help="the run directory itself (default: "
                        "a new one under --output-dir; RUN_DIR with --resume)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run whose RUN_DIR is given (train RUN_DIR --resume) "
                             "from its checkpoints/last.ckpt, with its config.yaml unless "
                             "config files are given")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--debug", action="store_true",
                        help="print a failed run's traceback too (it is always written to "
                             "RUN_DIR/error.log)")
    parser.add_argument("--interpret", action="store_true",
                        help="then prune the trained KAN and fit a symbolic formula, as "
                             "`kanplatform interpret RUN_DIR` with its defaults does")
    parser.set_defaults(_rest="config")  # words after the options are configs/overrides too


def split_args(items: list[str]) -> tuple[list[str], list[str]]:
    """Split CLI words into config files and ``key=value`` overrides."""
    files = [i for i in items if "=" not in i]
    overrides = [i for i in items if "=" in i]
    return files, overrides


def main(args: argparse.Namespace) -> int:
    """Load, validate, train; print the run directory and the final metrics."""
    from kanplatform.config import ConfigError
    from kanplatform.train.resolve import load_run_config

    files, overrides = split_args(args.config)
    if args.output_dir:
        overrides.insert(0, f"output_dir={args.output_dir}")  # a later output_dir= wins
    run_dir, ckpt = args.run_dir, None
    if args.resume:
        dirs = [f for f in files if Path(f).is_dir() or not f.endswith((".yaml", ".yml"))]
        if not dirs:
            print("train --resume needs the RUN_DIR to continue (train RUN_DIR --resume)",
                  file=sys.stderr)
            return 2
        resume = Path(dirs[0])
        files = [f for f in files if f != dirs[0]]
        ckpt = resume / "checkpoints" / "last.ckpt"
        if not ckpt.is_file():  # before reading its config: name what is missing
            print(f"cannot resume: checkpoint file not found: {ckpt}", file=sys.stderr)
            return 2
        files = files or [str(resume / "config.yaml")]
        run_dir = run_dir or str(resume)
    elif not files:
        print("train needs a CONFIG file (or RUN_DIR --resume)", file=sys.stderr)
        return 2
    if args.quiet:
        overrides.append("trainer.enable_progress_bar=false")
    try:
        cfg = load_run_config(files, overrides)
    except ConfigError as err:
        print(f"invalid config: {error_lines(err)}", file=sys.stderr)
        return 2
    if args.interpret:  # before any training
        from kanplatform.interpret import interpretable

        if not interpretable(cfg.model.kind):
            print(f"--interpret needs a KAN; model.kind is {cfg.model.kind!r}", file=sys.stderr)
            return 2
    problem = _kernel_problem(cfg.trainer.accelerator)
    if problem:  # e.g. KANPLATFORM_KERNEL=triton on a CPU machine: before any run dir exists
        print(f"error: {problem}", file=sys.stderr)
        return 2
    from kanplatform.train import ResumeError, fit
    from kanplatform.train.fitting import ERROR_LOG
    from kanplatform.train.rundir import RunDirError, fresh_run_dir

    # named now (the handlers below print it), created by fit once the data has loaded
    run_dir = Path(run_dir) if run_dir else fresh_run_dir(cfg.output_dir, cfg.name)
    from kanplatform.data import DataError

    try:
        result = fit(cfg, run_dir=run_dir, ckpt_path=ckpt)
    except ResumeError as err:  # fit checks the checkpoint before anything is written
        print(f"cannot resume: {err}", file=sys.stderr)
        return 2
    except RunDirError as err:  # before anything was written
        print(f"cannot train: {err}", file=sys.stderr)
        return 2
    except DataError as err:  # fit builds the data before anything is written
        print(f"invalid data: {err}", file=sys.stderr)
        return 2
    except SystemExit as err:  # how Lightning leaves on SIGTERM (after the step) and Ctrl-C
        from pytorch_lightning.utilities.exceptions import SIGTERMException

        print(f"run stopped: {_reason(run_dir) or err}", file=sys.stderr)
        print(run_dir.resolve())
        return 143 if isinstance(err, SIGTERMException) else 130
    except Exception as err:  # noqa: BLE001 - after the start: one line, the rest in a log
        log = run_dir.resolve() / ERROR_LOG
        if args.debug:
            import traceback

            traceback.print_exc()
        print(f"run failed: {_reason(run_dir) or f'{type(err).__name__}: {err}'} "
              f"(run dir {run_dir.resolve()}; traceback in {log})", file=sys.stderr)
        print(run_dir.resolve())
        return 1
    metrics = result.metrics
    key = "accuracy" if metrics.get("task") == "classification" else "rmse"
    fmt = ".4f" if key == "accuracy" else ".3e"
    for row in metrics.get("stages", []):
        grid = f"G={row['grid_size']:<4}" if row.get("grid_size") is not None else "      "
        print(f"stage {row['stage']} {grid} step {row['step']:>6}  "
              f"train {row[f'train/{key}']:{fmt}}  val {row[f'val/{key}']:{fmt}}  "
              f"test {row[f'test/{key}']:{fmt}}  params {row['model/params']}", file=sys.stderr)
    final = metrics.get("final") or {}
    if result.status not in ("completed", "stopped"):
        print(f"run {result.status}: {metrics.get('reason')}", file=sys.stderr)
    else:
        if result.status == "stopped":
            print(f"run stopped: {metrics.get('reason')}", file=sys.stderr)
        extra = f"  test/loss {final['test/loss']:.4f}" if "test/loss" in final else ""
        print(f"test/{key} {final[f'test/{key}']:{fmt}}{extra}  "
              f"wall time {metrics['wall_time_s']:.1f} s", file=sys.stderr)
    interpreted = 0
    if args.interpret and result.status == "completed":
        from kanplatform.cli.interpret import interpret_and_print

        interpreted = interpret_and_print(result.run_dir)  # `kanplatform interpret`'s defaults
    print(result.run_dir)  # the last line: scripts take the run dir from it
    ok = result.status in ("completed", "stopped")  # stopped: by early stopping, as asked
    return 0 if ok and interpreted == 0 else 1


def _kernel_problem(accelerator: str) -> str | None:
    """Why ``KANPLATFORM_KERNEL`` cannot run the layers where this run trains, or ``None``."""
    import torch

    from kanplatform.kernels import kernel_env_problem

    cuda = accelerator in ("gpu", "cuda") or (accelerator == "auto"
                                             and torch.cuda.is_available())
    return kernel_env_problem("cuda" if cuda else "cpu" if accelerator != "mps" else "mps")


def _reason(run_dir: Path) -> str | None:
    import json

    try:
        return json.loads((run_dir / "metrics.json").read_text()).get("reason")
    except (OSError, ValueError):
        return None
