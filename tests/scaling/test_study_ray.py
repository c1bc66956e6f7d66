"""A real scaling study on a local Ray: killed mid-way, then completed with ``--resume``.

Runs the ``kanplatform scale`` command in a subprocess (its own session), kills its whole
process tree once a few sizes have finished, and resumes it. Ray binds 127.0.0.1 only when
the suite runs inside the loopback-only namespace (``make test``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kanplatform.cli import main as cli
from tests.tracking.conftest import leet_summary_at

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "scaling" / "tiny.yaml"
# one KAN grid-extension run (3 sizes) + 3 MLP widths = 4 trainings, 6 sizes: the kill after
# 2 lands mid-study, and the 2 left train side by side on the 2 CPUs in one round (a fifth
# training cost a second round, ~15-20 s)
MLP_WIDTHS = [4, 8, 16]
OVERRIDES = [f"families.mlp.widths=[{','.join(map(str, MLP_WIDTHS))}]",
             "tracking.mode=offline"]  # W&B of every trial
N_TRAININGS = 1 + len(MLP_WIDTHS)


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", WANDB_MODE="offline",
               PYTHONUNBUFFERED="1")
    env.pop("RAY_ADDRESS", None)
    env.pop("WANDB_API_KEY", None)
    for var in ("WANDB_DIR", "WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
        d = tmp_path / "wandb-home" / var.lower()
        d.mkdir(parents=True, exist_ok=True)
        env[var] = str(d)
    return env


def _finished(exp_dir: Path) -> dict[str, tuple[int, str]]:
    """{run_dir: (metrics.json mtime_ns, content)} of the finished runs."""
    out = {}
    for path in exp_dir.glob("trials-*/runs/*/metrics.json"):
        try:
            text = path.read_text()
            if json.loads(text).get("status") == "completed":
                out[str(path.parent)] = (path.stat().st_mtime_ns, text)
        except (OSError, ValueError):
            continue  # being written
    return out


def _proc_table() -> dict[int, tuple[int, int]]:
    """{pid: (ppid, session id)} of every process, from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry.name)] = (int(fields[1]), int(fields[3]))
    return table


def _kill_tree(root: int) -> None:
    """SIGKILL ``root``, its descendants and its session: the driver and the Ray it started."""
    table = _proc_table()
    victims = {root} | {p for p, (_, sid) in table.items() if sid == root}
    grew = True
    while grew:
        kids = {p for p, (pp, _) in table.items() if pp in victims} - victims
        grew = bool(kids)
        victims |= kids
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_study_killed_midway_resumes_without_retraining(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    exp_dir = out / "tiny"
    cmd = [sys.executable, "-m", "kanplatform", "scale", str(TINY), *OVERRIDES,
           "--output-dir", str(out), "--no-report"]
    env = _env(tmp_path)
    log = open(tmp_path / "first.log", "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while len(_finished(exp_dir)) < 2:
            assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no 2 trainings finished in 300 s"
            time.sleep(0.2)
    finally:
        _kill_tree(proc.pid)
        proc.wait(timeout=30)
        log.close()
    time.sleep(1.0)  # let killed writers go
    before = _finished(exp_dir)
    assert 2 <= len(before) < N_TRAININGS, "the kill should land mid-study"

    second = subprocess.run([*cmd, "--resume"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert f"{len(before)} of {N_TRAININGS} trainings already finished" in second.stdout

    after = _finished(exp_dir)
    # every training finished exactly once, and none that had finished ran again
    doc = json.loads((exp_dir / "scaling.json").read_text())
    assert doc["trials_run"] == N_TRAININGS - len(before)
    for run_dir, stamp in before.items():
        assert after[run_dir] == stamp, f"{run_dir} was trained again"
    used = {r["run_dir"] for r in doc["rows"]}
    assert len(used) == N_TRAININGS and used <= set(after)
    # one directory per training: one the kill cut off was continued in place
    assert sorted(str(p) for p in exp_dir.glob("trials-*/runs/*")) == sorted(used)
    # and its W&B run (the last process's, for a continued one) finished
    # offline-run-<YYYYMMDD_HHMMSS>-<id>: the newest is the resumed process's; an older one
    # of the SIGKILLed process may be a bare 7-byte header (nothing could flush it)
    wandb_runs = {d: sorted((Path(d) / "wandb").glob("offline-run-*")) for d in used}
    assert all(wandb_runs.values()), wandb_runs
    # one `wandb leet inspect` (~1.5 s, mostly its start) per run, side by side on the cores
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        summaries = dict(zip(wandb_runs, pool.map(leet_summary_at,
                                                  [r[-1] for r in wandb_runs.values()])))
    for run_dir, runs in wandb_runs.items():
        summary = summaries[run_dir]
        assert summary["state"] == "finished" and summary["exit_code"] == 0, run_dir
        starts = json.loads((Path(run_dir) / "trial.json").read_text())["starts"]
        assert len(runs) <= starts, run_dir  # at most one W&B run per process that trained it

    # the study's outputs: table, fits against both axes, plots
    rows = doc["rows"]
    assert len([r for r in rows if r["family"] == "kan"]) == 3  # the 3 grid stages
    assert len([r for r in rows if r["family"] == "mlp"]) == len(MLP_WIDTHS)
    assert all(r["status"] == "completed" and r["test/rmse"] > 0 for r in rows)
    for fam in ("kan", "mlp"):
        fits = doc["families"][fam]["fits"]
        assert set(fits) == {"model/params", "model/flops"}
        assert fits["model/params"]["alpha_ci"][0] <= fits["model/params"]["alpha"]
    assert doc["families"]["kan"]["theory_alpha"] == 4.0
    assert (exp_dir / "scaling.png").stat().st_size > 10_000
    assert (exp_dir / "scaling.csv").read_text().count("\n") == len(rows) + 1

    # a third call finds nothing to do (in this process: it starts no Ray, and a fresh
    # interpreter's imports were ~5 of its 7 s)
    for var in ("RAY_AUTH_MODE", "RAY_USAGE_STATS_ENABLED", "WANDB_MODE", "WANDB_DIR",
                "WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
        monkeypatch.setenv(var, env[var])
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    capsys.readouterr()
    assert cli([*cmd[3:], "--resume"]) == 0
    assert "0 to run" in capsys.readouterr().out
    assert json.loads((exp_dir / "scaling.json").read_text())["trials_run"] == 0
