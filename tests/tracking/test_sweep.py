"""The sweep page of a search experiment: what it shows is what the search's files say.

The experiment here is made of copies of a real run directory (the shared ``fitted_run``)
plus the files a search writes (``search.json``, ``trials.json``/``trials.csv``); the real
Ray search with its live page is ``tests/search/test_watch.py``.
"""

from __future__ import annotations

import csv
import json
import re
import shutil

import pytest
import yaml

from kanplatform.tracking.report import write_report
from kanplatform.tracking.sweep import importance, read_sweep

from .cdp import Browser, find_chromium

LRS = [0.5, 0.2, 0.1, 0.05, 0.02, 0.01]
SPACE = {"optim.lr": {"loguniform": [0.01, 1.0]},
         "model.width": {"choice": [[2, 1, 1], [2, 2, 1]]},
         "grid.update_every": {"choice": [0, 5]}}


def _search_json(mode="min", **extra):
    return {"search": {"space": SPACE, "metric": "val/rmse", "mode": mode, "name": "asha",
                       "num_samples": 6, "search_alg": "random", "report_on": "stage",
                       "scheduler": {"kind": "asha", "time_attr": None, "max_t": None,
                                     "grace_period": 1, "reduction_factor": 2,
                                     "brackets": 1},
                       "max_concurrent_trials": 2, "resources": {"cpu": 1, "gpu": 0},
                       "max_failures": 2, "seed": 0},
            "configs": None, **extra}


def make_sweep(fitted_run, root, mode="min"):
    """Six trials: val/rmse falls as optim.lr rises; the last two stopped at rung 1."""
    run_dir, _ = fitted_run
    rows = []
    for i, lr in enumerate(LRS):
        key = f"t{i}"
        dst = root / "runs" / key
        shutil.copytree(run_dir, dst, ignore=shutil.ignore_patterns("wandb", "checkpoints"))
        cfg = yaml.safe_load((dst / "config.yaml").read_text())
        width = [2, 1, 1] if i % 2 else [2, 2, 1]
        cfg["optim"]["lr"], cfg["model"]["width"], cfg["grid"]["update_every"] = lr, width, 5
        (dst / "config.yaml").write_text(yaml.safe_dump(cfg))
        metrics = json.loads((dst / "metrics.json").read_text())
        val = 0.01 * (i + 1)
        stopped = i >= 4
        metrics["status"] = "stopped" if stopped else "completed"
        metrics["reason"] = (f"stopped by ASHA at rung grid/stage=1: val/rmse {val:.4g} was "
                             "not in the top 1/2") if stopped else None
        metrics["stages"] = metrics["stages"][:1] if stopped else metrics["stages"]
        metrics["stages"][-1]["val/rmse"] = val
        metrics["stages"][0]["val/rmse"] = val * 2 if not stopped else val
        metrics["final"]["val/rmse"] = val
        (dst / "metrics.json").write_text(json.dumps(metrics))
        rows.append({"trial_id": key, "optim.lr": lr, "model.width": width,
                     "grid.update_every": 5, "status": metrics["status"],
                     "reason": metrics["reason"], "val/rmse": val,
                     "grid/stage": len(metrics["stages"]), "restores": 0,
                     "run_dir": str(dst)})
    sign = 1 if mode == "min" else -1
    rows.sort(key=lambda r: (r["status"] != "completed", sign * r["val/rmse"]))
    (root / "search.json").write_text(json.dumps(_search_json(mode)))
    (root / "trials.json").write_text(json.dumps(rows))
    with open(root / "trials.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        for r in rows:
            writer.writerow({k: json.dumps(v) if isinstance(v, list) else v
                             for k, v in r.items()})
    best = next(r for r in rows if r["status"] == "completed")
    shutil.copyfile(root / "runs" / best["trial_id"] / "config.yaml", root / "best_config.yaml")
    return rows


def _data(text):
    return json.loads(re.search(r"id=sweep-data>(.*?)</script>", text).group(1))


def test_sweep_page_shows_what_the_trials_table_says(fitted_run, tmp_path):
    root = tmp_path / "asha"
    rows = make_sweep(fitted_run, root)
    text = write_report(root).read_text()

    # the banner: the best completed trial, its values and the command that reruns it
    banner = text[text.index("id=best"):text.index("</div>", text.index("id=best"))]
    assert "data-trial='t0'" in banner and "0.01" in banner and "0.5" in banner  # its lr
    assert f"kanplatform train {root / 'best_config.yaml'}" in banner
    # the table is sorted by the search's metric and mode, with status and stop reason
    table = text[text.index("id=trials-table"):text.index("</table>",
                                                          text.index("id=trials-table"))]
    order = re.findall(r"<tr(?: class=best)? data-trial='(t\d)'>", table)
    assert order == ["t0", "t1", "t2", "t3", "t4", "t5"]  # val/rmse ascending
    assert table.count("stopped by ASHA at rung grid/stage=1") == 2
    # parallel coordinates and scatter plots: one line / point per trial, the table's values
    data = _data(text)
    by_id = {r["trial_id"]: r for r in rows}
    assert {t["trial_id"] for t in data["trials"]} == set(by_id)
    for t in data["trials"]:
        row = by_id[t["trial_id"]]
        assert t["metric"] == row["val/rmse"] and t["status"] == row["status"]
        assert t["params"] == {k: row[k] for k in SPACE}
    lines = re.findall(r"<polyline class=trial data-trial='(t\d)' data-values='([^']+)'", text)
    assert len(lines) == 6
    for tid, values in lines:
        values = json.loads(values.replace("&quot;", '"'))
        assert values["metric"] == by_id[tid]["val/rmse"]
        assert values["params"]["optim.lr"] == by_id[tid]["optim.lr"]
    points = re.findall(r"<circle class=point data-trial='(t\d)' data-x='([^']+)' "
                        r"data-y='([^']+)'", text)
    assert len(points) == 6 * len(SPACE)
    assert all(float(y) == by_id[tid]["val/rmse"] for tid, _, y in points)
    # sections with data only: no scaling section for a search; the ASHA rungs are there
    assert "<h2>Scaling</h2>" not in text and "id=rungs" in text
    rungs = text[text.index("id=rungs-table"):]
    assert rungs.count("stopped here") == 2 and rungs.count("continued") == 4
    assert "Parameter importance" in text and "Spearman" in text
    assert "http://" not in text and "https://" not in text


def test_mode_max_sorts_the_other_way(fitted_run, tmp_path):
    root = tmp_path / "asha"
    make_sweep(fitted_run, root, mode="max")
    sweep = read_sweep(root)
    assert [t.trial_id for t in sweep.trials] == ["t5", "t4", "t3", "t2", "t1", "t0"]
    assert sweep.best.trial_id == "t3"  # the best *completed* one


def test_importance_is_the_rank_correlation(fitted_run, tmp_path):
    root = tmp_path / "asha"
    make_sweep(fitted_run, root)
    ranked = {r["key"]: r for r in importance(read_sweep(root))}
    # val/rmse falls strictly as optim.lr rises: |rho| = 1, sign -
    assert ranked["optim.lr"]["importance"] == pytest.approx(1.0)
    assert ranked["optim.lr"]["sign"] == pytest.approx(-1.0)
    assert ranked["optim.lr"]["method"] == "spearman"
    assert ranked["grid.update_every"]["importance"] == 0.0  # the same in every trial
    assert ranked["model.width"]["method"] == "eta"  # lists: a categorical key
    assert 0 < ranked["model.width"]["importance"] < 1


def test_live_view_reads_run_directories_and_planned_trials(fitted_run, tmp_path):
    """While the search runs: rows from run dirs (a running one from live.json), pending
    trials from the recorded plan; a trials table left by an earlier run is not used."""
    root = tmp_path / "asha"
    make_sweep(fitted_run, root)
    running = root / "runs" / "t5"
    (running / "metrics.json").unlink()
    (running / "history.csv").unlink()
    live = {"status": "running", "step": 7, "updated": 0, "latest": {"val/rmse": 0.123},
            "history": {"step": [1, 5], "val/rmse": [None, 0.123], "train/loss": [1.0, 0.5]},
            "stages": []}
    (running / "live.json").write_text(json.dumps(live))
    record = _search_json(configs=[{"optim.lr": lr} for lr in [*LRS, 0.7]],
                          run_dirs=[str(root / "runs" / f"t{i}") for i in range(6)] + [None])
    (root / "search.json").write_text(json.dumps(record))
    sweep = read_sweep(root, live=True)
    status = {t.trial_id: t.status for t in sweep.trials}
    assert status["t5"] == "running" and status["trial-0006"] == "pending"
    t5 = next(t for t in sweep.trials if t.trial_id == "t5")
    assert t5.metric == 0.123 and t5.run.history["train/loss"] == [1.0, 0.5]
    assert sweep.planned == 7 and not sweep.final
    assert read_sweep(root).final  # the static page reads the table
    page = write_report(root, tmp_path / "live.html", live_every=2).read_text()
    assert "location.reload()" in page and "id=live" in page
    assert "location.reload()" not in write_report(root, tmp_path / "final.html").read_text()


@pytest.mark.slow
def test_sweep_page_in_headless_chromium(fitted_run, tmp_path):
    binary = find_chromium()
    if binary is None:
        pytest.skip("chromium is not installed (make browser installs it)")
    root = tmp_path / "asha"
    make_sweep(fitted_run, root)
    page = write_report(root)
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    browser = Browser(binary, profile)
    try:
        browser.navigate(page.resolve().as_uri())
        got = browser.evaluate("""(() => ({
            lines: document.querySelectorAll('svg.parcoords polyline.trial').length,
            points: document.querySelectorAll('svg.scatter circle.point').length,
            data: JSON.parse(document.getElementById('sweep-data').textContent),
            best: document.getElementById('best-command').textContent,
            svgWidth: document.querySelector('svg.parcoords').getBoundingClientRect().width,
        }))()""")
        assert got["lines"] == 6 and got["points"] == 18
        assert got["data"]["best"] == "t0" and got["best"].startswith("kanplatform train ")
        assert got["svgWidth"] > 500  # drawn, not collapsed
        # the trials table sorts by a clicked column (val/rmse, twice: descending)
        order = browser.evaluate("""(() => {
            const th = Array.from(document.querySelectorAll('#trials-table th'))
                .find(h => h.textContent === 'val/rmse');
            th.click(); th.click();
            return Array.from(document.querySelectorAll('#trials-table tbody tr'))
                .map(r => r.getAttribute('data-trial'));
        })()""")
        assert order == ["t5", "t4", "t3", "t2", "t1", "t0"]
        shot = browser.screenshot(tmp_path / "sweep.png")
        assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 50_000
        assert browser.errors() == [], browser.errors()
    finally:
        browser.close()
