"""``kanplatform train`` through the CLI entry point."""

import csv
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kanplatform.cli import main
from kanplatform.config import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
QUICK = CONFIGS / "experiment" / "quick.yaml"


def test_train_prints_the_run_dir(tmp_path, capsys, recwarn):
    code = main(["train", str(QUICK), "--output-dir", str(tmp_path), "model.grid_size=4",
                 "--quiet"])
    assert code == 0
    # a shipped config trains without a warning from Lightning (or anything else)
    assert not [str(w.message) for w in recwarn if issubclass(w.category, UserWarning)]
    run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert run_dir.parent == tmp_path.resolve()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed"


def test_train_rejects_a_bad_override(tmp_path, capsys):
    assert main(["train", str(QUICK), f"output_dir={tmp_path}", "model.grid_size=0"]) == 2
    assert "model.grid_size: must be >= 1" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def _history_steps(run_dir: Path) -> list[int]:
    with open(run_dir / "history.csv") as f:
        return [int(row["step"]) for row in csv.DictReader(f)]


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def test_resume_with_a_larger_budget_continues_where_the_run_stopped(tmp_path, capsys):
    """A one-grid run (10 steps) resumed with the second grid: as if both ran in one go."""
    common = [f"output_dir={tmp_path}", "trainer.num_threads=1", "--quiet"]
    assert main(["train", str(QUICK), *common, "--run-dir", str(tmp_path / "whole")]) == 0
    run = tmp_path / "run"
    assert main(["train", str(QUICK), *common, "grid.schedule=[3]", "--run-dir", str(run)]) == 0
    assert _metrics(run)["step"] == 10 and _history_steps(run)[-1] == 10

    capsys.readouterr()
    assert main(["train", "--resume", str(run), "grid.schedule=[3,5]", "--quiet"]) == 0
    out = capsys.readouterr()
    assert out.out.strip().splitlines()[-1] == str(run.resolve())
    assert f"resuming from step 10 of {run.resolve() / 'checkpoints' / 'last.ckpt'}" in out.err
    metrics, whole = _metrics(run), _metrics(tmp_path / "whole")
    assert metrics["status"] == "completed" and metrics["step"] == 20
    assert metrics["resumed_from"]["step"] == 10
    assert list(load_config(run / "config.yaml").grid.schedule) == [3, 5]
    steps = _history_steps(run)
    assert steps == sorted(set(steps)) and steps[-1] == 20 and steps[0] == 1
    assert steps == _history_steps(tmp_path / "whole")
    assert [(s["stage"], s["step"], s["grid_size"]) for s in metrics["stages"]] == \
        [(1, 10, 3), (2, 20, 5)]  # stages counted from 1, as grid/stage everywhere
    # same seed, full batch, restored LBFGS state: the same arithmetic (see test_fit)
    for key, value in whole["final"].items():
        assert metrics["final"][key] == pytest.approx(value, rel=1e-9), key


@pytest.mark.parametrize(("mode", "says"), [
    ("triton", "KANPLATFORM_KERNEL=triton but the layers run on the cpu"),
    ("bogus", "KANPLATFORM_KERNEL='bogus' is not one of auto, c, triton, torch"),
])
def test_a_kernel_setting_that_cannot_run_fails_before_the_run(tmp_path, capsys, monkeypatch,
                                                               mode, says):
    """KANPLATFORM_KERNEL=triton for a CPU run (no interpreter) or an unknown value: one line,
    exit 2, no run directory - not a traceback from inside the first training step."""
    monkeypatch.setenv("KANPLATFORM_KERNEL", mode)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    run = tmp_path / "run"
    assert main(["train", str(QUICK), "--run-dir", str(run), "trainer.accelerator=cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {says}"), err
    assert not run.exists()


def test_resume_without_a_checkpoint_fails_naming_it(tmp_path, capsys):
    run = tmp_path / "never-ran"
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    ckpt = run / "checkpoints" / "last.ckpt"
    assert capsys.readouterr().err.strip() == \
        f"cannot resume: checkpoint file not found: {ckpt}"
    assert not run.exists()
    assert main(["train", "--quiet"]) == 2
    assert "needs a CONFIG file (or RUN_DIR --resume)" in capsys.readouterr().err
    assert main(["train", "--resume", "--quiet"]) == 2
    assert "train --resume needs the RUN_DIR to continue" in capsys.readouterr().err


def _train_until_stage0_ends(run: Path, args: list[str], sig: int) -> tuple[str, str, int]:
    """Run `kanplatform train QUICK ARGS --run-dir RUN` in a subprocess, send it ``sig`` once
    stage 0's spline snapshot exists; return (stdout, stderr, exit status)."""
    proc = subprocess.Popen([sys.executable, "-m", "kanplatform", "train", str(QUICK), *args,
                             "--run-dir", str(run)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (run / "figures" / "splines_stage0_G3.npz").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.01)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return out, err, proc.returncode


@pytest.mark.slow  # a subprocess (~4 s of imports) and 3 x 200 steps
def test_a_run_stopped_by_sigterm_resumes_to_the_uninterrupted_result(tmp_path, capsys):
    """`kill PID` stops after the step in progress; `--resume` finishes the same run."""
    args = [f"output_dir={tmp_path}", "trainer.num_threads=1", "grid.steps_per_stage=100",
            "--quiet"]
    run = tmp_path / "killed"
    # the first grid's spline snapshot is written when stage 0 ends (step 100 of 200)
    out, err, returncode = _train_until_stage0_ends(run, args, signal.SIGTERM)
    assert returncode == 143, err
    assert out.strip() == str(run.resolve()) and "run stopped: interrupted (SIGTERM)" in err
    stopped = _metrics(run)
    step = int(re.search(r"interrupted \(SIGTERM\) at step (\d+)", stopped["reason"])[1])
    assert stopped["status"] == "interrupted" and 100 <= step < 200, stopped["reason"]
    assert f"kanplatform train --resume {run.resolve()}" in stopped["reason"]
    assert (run / "checkpoints" / "last.ckpt").is_file()

    assert main(["train", str(run), "--resume", "--quiet"]) == 0  # the flag after the dir
    assert main(["train", str(QUICK), *args, "--run-dir", str(tmp_path / "whole")]) == 0
    capsys.readouterr()
    metrics, whole = _metrics(run), _metrics(tmp_path / "whole")
    assert metrics["status"] == "completed" and metrics["step"] == 200
    assert metrics["resumed_from"]["step"] == step
    assert _history_steps(run) == _history_steps(tmp_path / "whole")  # 1, 10, 15, ..., 200
    assert [s["step"] for s in metrics["stages"]] == [100, 200]
    # SIGTERM lets the step in progress finish, so the checkpoint sits on a step boundary and
    # the resumed run repeats the uninterrupted arithmetic (tolerance: see test_fit)
    for key, value in whole["final"].items():
        assert metrics["final"][key] == pytest.approx(value, rel=1e-9), key


@pytest.mark.slow  # a subprocess (~4 s of imports) and 3 x 80 steps
def test_a_run_killed_by_sigkill_resumes_from_its_periodic_checkpoint(tmp_path, capsys):
    """SIGKILL leaves no chance to write anything: `--resume` continues from the last periodic
    checkpoint (every 15 steps and at the stage end, step 40) to the uninterrupted result."""
    import torch

    args = [f"output_dir={tmp_path}", "trainer.num_threads=1", "grid.steps_per_stage=40",
            "trainer.checkpoint_every_n_steps=15", "--quiet"]
    run = tmp_path / "killed"
    # killed once stage 0 has ended: its snapshot is written at step 40 just before the
    # stage-end checkpoint, so last.ckpt holds step 30 (usually: the resume crosses the grid
    # extension), 40 or, polled late, a later one
    _, _, returncode = _train_until_stage0_ends(run, args, signal.SIGKILL)
    assert returncode == -signal.SIGKILL, "the run finished before it was killed"
    assert not (run / "metrics.json").exists()  # nothing was written at the end
    ckpt = run / "checkpoints" / "last.ckpt"
    step = torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"]
    assert step in (30, 40, 45, 60, 75), step

    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert main(["train", str(QUICK), *args, "--run-dir", str(tmp_path / "whole")]) == 0
    capsys.readouterr()
    metrics, whole = _metrics(run), _metrics(tmp_path / "whole")
    assert metrics["status"] == "completed" and metrics["step"] == 80
    assert metrics["resumed_from"] == {"checkpoint": str(ckpt.resolve()), "step": step}
    assert _history_steps(run) == _history_steps(tmp_path / "whole")
    assert metrics["stages"] == whole["stages"]
    assert sorted(p.name for p in (run / "figures").glob("splines_stage*.npz")) == \
        ["splines_stage0_G3.npz", "splines_stage1_G5.npz"]
    # the periodic checkpoint is the one a run's end writes, on a step boundary: the resumed
    # run repeats the uninterrupted arithmetic (tolerance: see test_fit)
    for key, value in whole["final"].items():
        assert metrics["final"][key] == pytest.approx(value, rel=1e-9), key


@pytest.mark.slow
def test_train_interpret_yaml_then_interpret_recovers_the_formula(tmp_path, capsys):
    """configs/experiment/interpret.yaml: the regularised [2,5,1] KAN prunes to [2,1,1] and
    `--interpret` (interpret's defaults, the whole library) prints a formula that sympy
    simplifies to exp(sin(pi x) + y^2); progress on stderr; the run dir stays the last line
    of stdout."""
    import sympy

    code = main(["train", str(CONFIGS / "experiment" / "interpret.yaml"),
                 f"output_dir={tmp_path}", "--quiet", "--interpret"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = captured.out.strip().splitlines()
    run_dir = Path(out[-1])
    assert "width [2, 5, 1] -> pruned [2, 1, 1]" in out
    assert "interpret: pruning [2, 5, 1]" in captured.err  # progress, as each step starts
    formula = next(line for line in out if line.startswith("y1 = "))
    x, y = sympy.symbols("x y")
    got = sympy.sympify(formula.split(" = ", 1)[1], locals={"x": x, "y": y})

    def exact(c: float) -> sympy.Expr:  # the printed constants are rounded to 4 decimals
        for unit in (sympy.Integer(1), sympy.pi):
            k = round(c / float(unit))
            if abs(c - k * float(unit)) < 2e-3:
                return k * unit
        return sympy.Float(c)

    got = got.xreplace({f: exact(float(f)) for f in got.atoms(sympy.Float)})
    assert sympy.simplify(got - sympy.exp(sympy.sin(sympy.pi * x) + y**2)) == 0, formula
    rmse = next(line for line in out if line.startswith("test RMSE: "))
    assert re.fullmatch(r"test RMSE: model \d\.\d{3}e[-+]\d\d, pruned \d\.\d{3}e[-+]\d\d, "
                        r"formula \d\.\d{3}e[-+]\d\d", rmse), rmse
    summary = json.loads((run_dir / "interpret" / "interpret.json").read_text())
    assert summary["width_before"] == [2, 5, 1] and summary["width_after"] == [2, 1, 1]
    assert (run_dir / "interpret" / "formula.txt").read_text().startswith("y1 = ")


def test_interpret_with_an_mlp_fails_before_training(tmp_path, capsys):
    assert main(["train", str(QUICK), f"output_dir={tmp_path}", "model=mlp", "--interpret"]) == 2
    assert "--interpret needs a KAN; model.kind is 'mlp'" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_a_run_dir_holding_a_run_is_refused_unless_resumed(tmp_path, capsys):
    run = tmp_path / "run"
    common = [str(QUICK), f"output_dir={tmp_path}", "grid.schedule=[3]", "trainer.num_threads=1",
              "--run-dir", str(run), "--quiet"]
    assert main(["train", *common]) == 0
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    capsys.readouterr()
    assert main(["train", *common, "optim.lr=0.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"cannot train: run directory {run.resolve()} already holds a run; continue "
                   f"it with `kanplatform train --resume {run.resolve()}` or choose another "
                   "--run-dir (runs are never overwritten)")
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == before
    assert load_config(run / "config.yaml").optim.lr == 1.0


def test_a_run_dir_in_use_by_another_process_is_refused_at_once(tmp_path, capsys):
    """The lock is an flock on RUN_DIR/.lock: held here as another process would hold it."""
    from kanplatform.train.rundir import claim_run_dir

    run = tmp_path / "busy"
    held = claim_run_dir(run)
    try:
        code = main(["train", str(QUICK), f"output_dir={tmp_path}", "--run-dir", str(run),
                     "--quiet"])
        err = capsys.readouterr().err.strip()
    finally:
        held.release()
    assert code == 2
    assert err == (f"cannot train: run directory {run.resolve()} is in use by another run (pid "
                   f"{__import__('os').getpid()}); wait for it to end or choose another "
                   "--run-dir")
    assert sorted(p.name for p in run.iterdir()) == [".lock"]  # nothing of a run was written
    claim_run_dir(run).release()  # released: the next one gets it


@pytest.mark.slow  # two subprocesses (~5 s of imports each, in parallel)
def test_two_processes_racing_for_one_run_dir_one_wins(tmp_path):
    # the winner holds the lock from its start-up (seconds) to its end, 2 x 50 steps later;
    # a loser that comes after the end finds the run instead: either way one line
    run = tmp_path / "raced"
    cmd = [sys.executable, "-m", "kanplatform", "train", str(QUICK), f"output_dir={tmp_path}",
           "trainer.num_threads=1", "grid.steps_per_stage=50", "--run-dir", str(run), "--quiet"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, _, err in results if code == 2).strip().splitlines()
    assert len(loser) == 1 and loser[0].startswith(f"cannot train: run directory {run}"), loser
    assert ("is in use by another run" in loser[0]) or ("already holds a run" in loser[0])
    metrics = _metrics(run)
    assert metrics["status"] == "completed" and metrics["step"] == 100


def test_a_failure_after_the_start_is_one_line_with_the_run_dir_and_a_log(tmp_path, capsys):
    """No GPU here: Lightning fails once the run directory and its W&B run exist."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("needs a machine without a GPU")
    run = tmp_path / "gpu"
    args = [str(QUICK), f"output_dir={tmp_path}", "trainer.accelerator=gpu", "--run-dir",
            str(run), "--quiet"]
    assert main(["train", *args]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"run failed: MisconfigurationException: No supported gpu backend found! "
                       f"(run dir {run.resolve()}; traceback in {run.resolve()}/error.log)")
    assert not any("Traceback" in line for line in err)
    metrics = _metrics(run)
    assert metrics["status"] == "failed" and "No supported gpu backend" in metrics["reason"]
    log = (run / "error.log").read_text()
    assert log.startswith("Traceback") and "MisconfigurationException" in log

    again = tmp_path / "gpu-debug"
    assert main(["train", *args[:-3], "--run-dir", str(again), "--quiet", "--debug"]) == 1
    assert "Traceback (most recent call last)" in capsys.readouterr().err
