"""Live records and pages: ``live.json`` while a real run trains, the live report's rewrites,
``kanplatform report --watch`` on an experiment that ends while it watches."""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl

from kanplatform.cli import main as cli_main
from kanplatform.tracking.live import (
    MAX_CPU_SHARE,
    LiveReport,
    experiment_done,
    live_report,
    watch,
)
from kanplatform.tracking.livefile import read_live
from kanplatform.tracking.rundata import read_run

from .test_sweep import make_sweep

QUICK = Path(__file__).parents[2] / "configs" / "experiment" / "quick.yaml"


class _Probe(pl.Callback):
    """Reads live.json as another process would, at each validation (after LiveProgress)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir, self.seen = run_dir, []

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.seen.append((trainer.global_step, read_live(self.run_dir)))


def test_live_json_follows_a_real_run(tmp_path):
    from kanplatform.config import load_config
    from kanplatform.train import fit

    cfg = load_config(QUICK, {"trainer.num_threads": 1, "output_dir": str(tmp_path / "runs")})
    run_dir = tmp_path / "run"
    probe = _Probe(run_dir)
    result = fit(cfg, run_dir=run_dir, callbacks=[probe], verbose=False)
    assert result.status == "completed" and len(probe.seen) >= 2
    for step, live in probe.seen:  # while training: running, this step, its curve so far
        assert live["status"] == "running" and live["step"] == step
        assert live["history"]["step"][-1] == step and live["latest"]["val/rmse"] > 0
        assert len(live["history"]["val/rmse"]) == len(live["history"]["step"])
    assert probe.seen[-1][1]["stages"]  # the first grid stage was done by then
    final = read_live(run_dir)
    assert final["status"] == "ended" and final["step"] == 20
    # readers prefer what the run recorded at its end
    run = read_run(run_dir)
    assert run.metrics["status"] == "completed" and run.live is None
    # a copy without metrics.json/history.csv reads as a run in progress
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copyfile(run_dir / "config.yaml", partial / "config.yaml")
    (partial / "live.json").write_text(json.dumps(probe.seen[-1][1]))
    running = read_run(partial)
    assert running.metrics["status"] == "running"
    assert running.metrics["val/rmse"] == probe.seen[-1][1]["latest"]["val/rmse"]
    assert running.history["step"] == probe.seen[-1][1]["history"]["step"]


def test_live_report_rewrites_and_ends_with_a_static_page(fitted_run, tmp_path):
    root = tmp_path / "asha"
    make_sweep(fitted_run, root)
    (root / "trials.json").unlink()  # the search has not ended
    lines = []
    with live_report(root, every_s=0.2, say=lines.append) as live:
        first = live.out.read_text()
        assert "location.reload()" in first and "id=live" in first
        assert str(live.out) in lines[0]
        with live_report(root / "runs") as nested:  # inside: the outer page reports
            assert nested is None
        writes = live.writes
        time.sleep(1.0)
        assert live.writes == writes  # nothing changed: no rewrite
        metrics = json.loads((root / "runs" / "t2" / "metrics.json").read_text())
        metrics["final"]["val/rmse"] = 0.001
        (root / "runs" / "t2" / "metrics.json").write_text(json.dumps(metrics))
        deadline = time.monotonic() + 30
        while live.writes == writes and time.monotonic() < deadline:
            time.sleep(0.1)
        assert live.writes > writes  # a record changed: a new page
    final = live.out.read_text()
    assert "location.reload()" not in final and "id=live" not in final
    assert not list(root.glob(".report.html.*.tmp"))  # written whole, no leftovers


def test_a_costly_rewrite_spaces_out_the_next_checks(fitted_run, tmp_path):
    """The page takes at most MAX_CPU_SHARE of one core: after a rewrite that cost c seconds
    of CPU the next check waits c (1/share - 1); a check that rewrites nothing is cheap."""
    root = tmp_path / "asha"
    make_sweep(fitted_run, root)
    live = LiveReport(root, every_s=1e-4)
    start = time.thread_time()
    wait = live.paced_tick()
    cost = time.thread_time() - start
    assert live.writes == 1 and live.out.is_file()
    assert 1e-4 < wait <= cost * (1 / MAX_CPU_SHARE - 1)
    again = live.paced_tick()  # nothing changed: no page drawn
    assert live.writes == 1 and 1e-4 <= again < wait


def test_watch_follows_an_experiment_until_it_ends(fitted_run, tmp_path, capsys):
    root = tmp_path / "asha"
    make_sweep(fitted_run, root)
    table = (root / "trials.json").read_text()
    (root / "trials.json").unlink()
    running = root / "runs" / "t4"
    saved = (running / "metrics.json").read_text()
    (running / "metrics.json").unlink()
    (running / "live.json").write_text(json.dumps(
        {"status": "running", "step": 3, "updated": time.time(), "latest": {"val/rmse": 0.2},
         "history": {"step": [3], "val/rmse": [0.2]}, "stages": []}))
    assert not experiment_done(root)

    seen = []

    def finish_later():  # once the watcher showed it live, the search ends elsewhere
        page, deadline = root / "report.html", time.monotonic() + 90
        while time.monotonic() < deadline:
            text = page.read_text() if page.is_file() else ""
            if "id=live" in text:
                seen.append(text)
                break
            time.sleep(0.1)
        (running / "metrics.json").write_text(saved)  # the run's records, then the table
        time.sleep(0.2)
        (root / "trials.json").write_text(table)

    ender = threading.Thread(target=finish_later)
    ender.start()
    t0 = time.monotonic()
    try:
        assert cli_main(["report", "--watch", "--every", "0.3", str(root)]) == 0
    finally:
        ender.join()
    assert time.monotonic() - t0 < 120 and experiment_done(root)
    printed = capsys.readouterr().out
    assert "watching" in printed and printed.strip().endswith(str(root / "report.html"))
    live_pages = [p for p in seen if "id=live" in p]
    assert live_pages, "no live page while the experiment ran"
    statuses = re.findall(r"data-trial='t4'><td[^>]*>\d+</td><td[^>]*>t4</td><td[^>]*>"
                          r"([^<]+)</td>", live_pages[0])
    assert statuses == ["running"]
    final = (root / "report.html").read_text()
    assert "id=live" not in final and "from trials.csv" in final
    out = watch(root, every_s=0.1, say=None, timeout_s=5)  # already ended: returns at once
    assert out == root / "report.html"


def test_watch_refuses_what_is_not_a_directory(tmp_path, capsys):
    assert cli_main(["report", "--watch", str(tmp_path / "nope")]) == 1
    assert "not a directory" in capsys.readouterr().err
    assert cli_main(["report", "--watch", "--every", "0", str(tmp_path)]) == 2


@pytest.mark.parametrize("name", ["trials.json", "scaling.json"])
def test_an_experiment_is_done_when_its_final_table_is_newer_than_its_runs(
        fitted_run, tmp_path, name):
    root = tmp_path / "exp"
    shutil.copytree(fitted_run[0], root / "runs" / "a",
                    ignore=shutil.ignore_patterns("wandb", "checkpoints"))
    assert not experiment_done(root)  # runs, but no final table yet
    (root / name).write_text("[]")
    assert experiment_done(root)
    time.sleep(0.01)
    (root / "runs" / "a" / "metrics.json").write_text((root / "runs" / "a" / "metrics.json")
                                                      .read_text())
    assert not experiment_done(root)  # a run ended after the table: a resume is going on
