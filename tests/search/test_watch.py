"""Watching a real ASHA search on a local Ray (2 CPUs, 4 trials, some stopped at rung 1).

While it runs: the live page exists within seconds of the start and lists running trials;
Ray's dashboard answers on 127.0.0.1. After: the sweep page's plotted data is trials.csv,
its best-trial command reproduces the best metric, the experiment's own W&B run (read back
with wandb's reader) holds the trials table, and the page renders in headless Chromium.
It is also the suite's ASHA search test: the tables, the best config and the trials' W&B runs.
"""

from __future__ import annotations

import json
import re
import shlex
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from kanplatform.cli import main as cli_main
from kanplatform.config import load_config
from kanplatform.search import parse_search, run_search
from tests.search.conftest import QUICK, check_records, most_at_once, read_table, tiny_overrides
from tests.tracking.cdp import Browser, find_chromium
from tests.tracking.conftest import leet_summary_at

pytestmark = pytest.mark.slow

# two good learning rates first, so ASHA has a bar at rung 1 when the poor ones reach it
# (Tune reuses the two trial actors: each trial past the first two costs < 1 s, so 4 trials
# show what 6 did)
SEARCH = {
    "name": "watch",
    "metric": "val/rmse",
    "mode": "min",
    "space": {"optim.lr": {"grid_search": [1.0, 0.5, 1e-4, 1e-6]},
              "grid.update_every": {"choice": [0, 5]}},
    "scheduler": {"kind": "asha", "grace_period": 1, "reduction_factor": 2},
    "max_concurrent_trials": 2,
    "resources": {"cpu": 1},
    "seed": 0,
}
N_TRIALS = len(SEARCH["space"]["optim.lr"]["grid_search"])


def _page_data(text: str) -> dict | None:
    """The sweep page's embedded data, or None (a page written before the search began)."""
    found = re.search(r"id=sweep-data>(.*?)</script>", text)
    return json.loads(found.group(1)) if found else None


class _Observer(threading.Thread):
    """Looks at the experiment as a user would while the search runs: the page, the
    dashboard."""

    def __init__(self, exp: Path) -> None:
        super().__init__(daemon=True)
        self.exp, self.t0 = exp, time.monotonic()
        self.done = threading.Event()
        self.page_at: float | None = None
        self.running: set[str] = set()
        self.live_pages = 0
        self.dashboard: list[dict] = []

    def run(self) -> None:
        while not self.done.is_set():
            page = self.exp / "report.html"
            if page.is_file():
                self.page_at = self.page_at or time.monotonic() - self.t0
                text = page.read_text()
                data = _page_data(text) if "id=live" in text else None
                if data is not None:
                    self.live_pages += 1
                    self.running |= {t["trial_id"] for t in data["trials"]
                                     if t["status"] == "running"}
            try:
                with urllib.request.urlopen("http://127.0.0.1:8265/api/version",
                                            timeout=2) as r:
                    self.dashboard.append(json.loads(r.read()))
            except (OSError, ValueError):
                pass
            time.sleep(0.5)


@pytest.mark.timeout(900)
def test_a_watched_asha_search(tmp_path, capfd):
    cfg = load_config(QUICK, tiny_overrides(tmp_path, "tracking.mode=offline"))
    spec = parse_search(SEARCH)
    exp = tmp_path / "tune" / "watch"
    observer = _Observer(exp)
    observer.start()
    try:
        result = run_search(cfg, spec, storage_path=tmp_path / "tune", num_cpus=2,
                            name="watch", dashboard=True)
    finally:
        observer.done.set()
        observer.join()
    out, err = capfd.readouterr()

    # while it ran
    assert observer.page_at is not None and observer.page_at < 15, observer.page_at
    assert observer.live_pages and observer.running, "no live page listed a running trial"
    assert observer.dashboard and "ray_version" in observer.dashboard[0]
    assert result.dashboard_url == "http://127.0.0.1:8265" and result.dashboard_local
    assert f"live report: {exp / 'report.html'}" in out
    assert "Ray dashboard: http://127.0.0.1:8265" in out
    # the search draws no warning from Ray (its concurrency limit is given once)
    assert "will be ignored" not in err
    # Tune's console: the search metric in its trial table, no TensorBoard hint
    assert re.search(r"Trial name .* val/rmse", out) and "TensorBoard" not in out

    # the records: every trial, ASHA stopped some; trials.json, trials.csv and the result agree
    assert result.experiment_dir == exp
    json_rows, rows = read_table(exp)
    assert len(rows) == len(json_rows) == N_TRIALS
    assert [r["trial_id"] for r in json_rows] == [r["trial_id"] for r in rows] == [
        r["trial_id"] for r in result.trials]
    statuses = {r["status"] for r in rows}
    assert statuses == {"stopped", "completed"}, statuses
    for row in json_rows:
        assert {"optim.lr", "grid.update_every", "val/rmse", "grid/stage", "reason"} <= set(row)
    assert result.best == json_rows[0] and result.best["val/rmse"] == min(
        r["val/rmse"] for r in json_rows if r["status"] == "completed")
    for row in json_rows:  # stopped at the first rung, with why; the others walked both stages
        if row["status"] == "stopped":
            assert re.fullmatch(r"stopped by ASHA at rung grid/stage=1 \(step 10\): val/rmse "
                                r"\S+ was not in the top 1/2 of the trials that reached this "
                                r"rung", row["reason"]), row["reason"]
        assert row["grid/stage"] == (1 if row["status"] == "stopped" else 2), row
    # metrics.json, trials.json, trials.csv and every trial's W&B run agree; at most 2 at once
    check_records(json_rows, rows)
    assert most_at_once(json_rows) <= SEARCH["max_concurrent_trials"]
    assert result.best_config == exp / "best_config.yaml"
    # each trial's run directory says what the table says, and is an offline W&B run
    # grouped by the experiment
    for row in json_rows:
        run_dir = Path(row["run_dir"])
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert (metrics["status"], metrics["reason"]) == (row["status"], row["reason"]), row
        assert list((run_dir / "wandb").glob("offline-run-*")), run_dir
        assert load_config(run_dir / "config.yaml").tracking.group == "watch"

    # the final page plots exactly trials.csv
    text = result.report.read_text()
    assert "id=live" not in text and "location.reload()" not in text
    data = _page_data(text)
    assert data["final"] and len(data["trials"]) == N_TRIALS
    by_id = {r["trial_id"]: r for r in rows}
    for t in data["trials"]:
        row = by_id[t["trial_id"]]
        assert t["status"] == row["status"]
        assert t["metric"] == (float(row["val/rmse"]) if row["val/rmse"] else None)
        for key in SEARCH["space"]:
            assert t["params"][key] == json.loads(row[key])
    lines = re.findall(r"<polyline class=trial data-trial='([^']+)' data-values='([^']+)'",
                       text)
    assert sorted(tid for tid, _ in lines) == sorted(by_id)
    for tid, values in lines:
        values = json.loads(values.replace("&quot;", '"'))
        assert values["params"]["optim.lr"] == float(by_id[tid]["optim.lr"])
    points = re.findall(r"<circle class=point data-trial='([^']+)' data-x='[^']+' "
                        r"data-y='([^']+)'", text)
    assert {(tid, float(y)) for tid, y in points} == {
        (r["trial_id"], float(r["val/rmse"])) for r in rows if r["val/rmse"]}
    assert "stopped here" in text  # ASHA's rung decisions

    # the best trial's command reproduces its metric
    best = re.search(r"id=best data-trial='([^']+)' data-metric='([^']+)'", text)
    assert best.group(1) == rows[0]["trial_id"] and rows[0]["status"] == "completed"
    command = re.search(r"<code id=best-command>([^<]+)</code>", text).group(1)
    argv = shlex.split(command.replace("&#x27;", "'"))
    assert argv == ["kanplatform", "train", str(result.best_config)]
    assert cli_main([*argv[1:], f"output_dir={tmp_path / 'again'}"]) == 0
    again = capfd.readouterr().out.strip().splitlines()[-1]
    metrics = json.loads((Path(again) / "metrics.json").read_text())
    assert metrics["final"]["val/rmse"] == pytest.approx(float(best.group(2)), rel=1e-6)

    # the experiment's own W&B run, read with wandb's reader: the trials table
    assert result.wandb_dir is not None and result.wandb_dir.parent == exp / "wandb"
    summary = leet_summary_at(result.wandb_dir)
    assert summary["state"] == "finished" and summary["exit_code"] == 0
    assert summary["summary"]["best/trial_id"] == rows[0]["trial_id"]
    assert summary["config"]["tracking"]["group"] == "watch"
    table = json.loads((result.wandb_dir / "files" / summary["summary"]["trials"]["path"])
                       .read_text())
    cols = table["columns"]
    assert {"trial_id", "status", "optim.lr", "grid.update_every", "val/rmse"} <= set(cols)
    got = {r[cols.index("trial_id")]: r for r in table["data"]}
    assert set(got) == set(by_id)
    for tid, r in got.items():
        want = by_id[tid]["val/rmse"]
        assert r[cols.index("val/rmse")] == (float(want) if want else None)
    assert (result.wandb_dir / "files" / "best_config.yaml").is_file()

    # the page in a real browser
    binary = find_chromium()
    if binary is None:
        pytest.skip("chromium is not installed (make browser installs it)")
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    browser = Browser(binary, profile)
    try:
        browser.navigate(result.report.resolve().as_uri())
        assert browser.evaluate(
            "document.querySelectorAll('svg.parcoords polyline.trial').length") == N_TRIALS
        shot = browser.screenshot(tmp_path / "sweep.png")
        assert len(shot) > 50_000 and browser.errors() == [], browser.errors()
    finally:
        browser.close()
