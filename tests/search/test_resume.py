"""A search whose driver is stopped at several moments resumes with every trial exactly once.

The moments: SIGKILL between Tune's ``tuner.pkl`` and its first ``experiment_state-*.json``
(Tune's own restore then ran 1 of the trials), and Ctrl-C mid-trial after another trial had
finished (exit 130, the tables written, the cut-off trial ``interrupted``). Each
``--resume`` reads the sampled list from ``search.json`` and the run directories; the last
one ends with all three trials completed, each in its one directory, the one cut off mid-run
continued from its checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.launch.conftest import ray_env, stop_cluster
from tests.search.conftest import QUICK, read_table
from tests.search.test_cluster import _write_search

pytestmark = pytest.mark.slow

# 3 grid stages of 10 LBFGS steps, a checkpoint at every stage end: a kill after the first
# stage of a trial lands mid-run
TRIAL = ["grid.schedule=[3,5,10]", "grid.steps_per_stage=10", "trainer.num_threads=1"]


def _run_until(cmd: list[str], env: dict, cwd: Path, ray_tmp: Path,
               moment: Callable[[], bool], what: str, sig: int = signal.SIGKILL) -> int:
    """Start the driver, send ``sig`` to it and its local Ray (one process group, as a
    terminal's Ctrl-C reaches them) at ``moment``; return its exit code."""
    log = open(cwd / "driver.log", "a")
    driver = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 400
        while driver.poll() is None and time.monotonic() < deadline and not moment():
            time.sleep(0.02)
        assert driver.poll() is None, f"the search ended before {what}"
        assert moment(), f"timed out waiting for {what}"
        os.killpg(driver.pid, sig)
        return driver.wait(timeout=30 if sig == signal.SIGKILL else 180)
    finally:
        if driver.poll() is None:
            driver.kill()
        stop_cluster(ray_tmp)


def _metrics(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}


def test_driver_killed_at_several_moments_resumes_every_trial_exactly_once(
        tmp_path, tmp_path_factory):
    ray_tmp = tmp_path_factory.mktemp("r")
    env = ray_env(tmp_path)
    env["RAY_TMPDIR"] = str(ray_tmp)  # so that every process of this Ray can be found
    search = _write_search(tmp_path / "ft.yaml", [1.0, 0.5, 0.3], concurrent=1)
    exp, runs = tmp_path / "tune" / "ft", tmp_path / "tune" / "ft" / "runs"
    cmd = [sys.executable, "-m", "kanplatform", "tune", str(QUICK), str(search),
           f"output_dir={tmp_path / 'runs'}", *TRIAL, "--output-dir", str(tmp_path / "tune"),
           "--name", "ft", "--verbose", "0", "--num-cpus", "2"]

    # 1: Tune wrote tuner.pkl, not yet its experiment state
    _run_until(cmd, env, tmp_path, ray_tmp, lambda: (exp / "tuner.pkl").is_file(), "tuner.pkl")
    assert (exp / "search.json").is_file() and not list(exp.glob("experiment_state-*.json"))

    # 2: resumed, Ctrl-C while the second trial trains (the first has finished): Tune stops
    # gracefully, the tables say what ended and what was cut off, the driver exits 130 saying
    # how to go on (a study built on the search stops there too, not carrying on)
    def second_mid_run() -> bool:
        return _metrics(runs / "trial-0000").get("status") == "completed" and \
            (runs / "trial-0001" / "checkpoints" / "last.ckpt").is_file()

    code = _run_until([*cmd, "--resume"], env, tmp_path, ray_tmp, second_mid_run,
                      "trial 1 mid-run", sig=signal.SIGINT)
    log = (tmp_path / "driver.log").read_text()
    assert code == 130, log[-3000:]
    assert "interrupted: 2 of 3 trials did not end" in log and "--resume" in log, log[-3000:]
    cut = {r["trial_id"]: r for r in read_table(exp)[0]}
    assert cut["trial-0000"]["status"] == "completed", cut
    assert {cut[t]["status"] for t in ("trial-0001", "trial-0002")} == {"interrupted"}, cut
    assert _metrics(runs / "trial-0001").get("status") in (None, "interrupted")
    kept = (runs / "trial-0000" / "metrics.json").stat().st_mtime_ns

    # 3: resumed to the end
    done = subprocess.run([*cmd, "--resume"], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=900)
    stop_cluster(ray_tmp)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "resume: 1 of 3 trials have ended; running 2 (resume-2)" in done.stdout
    rows, csv_rows = read_table(exp)
    assert len(rows) == len(csv_rows) == 3
    assert sorted(r["trial_id"] for r in rows) == [f"trial-000{i}" for i in range(3)]
    assert sorted(r["optim.lr"] for r in rows) == [0.3, 0.5, 1.0]
    assert all(r["status"] == "completed" and r["grid/stage"] == 3 for r in rows), rows
    assert [r["status"] for r in csv_rows] == ["completed"] * 3
    # one directory per trial, nowhere else a run
    assert sorted(p.name for p in runs.iterdir()) == [r["trial_id"] for r in
                                                       sorted(rows, key=lambda r: r["trial_id"])]
    assert sorted(p.parent for p in exp.rglob("metrics.json")) == sorted(runs.iterdir())
    by_id = {r["trial_id"]: r for r in rows}
    # finished before the second kill: its record kept, not trained again
    assert (runs / "trial-0000" / "metrics.json").stat().st_mtime_ns == kept
    assert by_id["trial-0001"]["restores"] >= 1  # cut off mid-run, then continued
    resumed = _metrics(runs / "trial-0001")
    assert resumed["resumed_from"] and resumed["resumed_from"]["step"] > 0
    assert (exp / "best_config.yaml").is_file()
