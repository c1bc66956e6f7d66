"""A real compare study on a local Ray (inside the loopback-only namespace under ``make
test``): tuning and seeds as Tune trials, every output written and read back (the W&B run
with wandb's own reader), then ``--resume`` trains nothing and starts no Ray."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from kanplatform.compare import CompareError, load_compare, run_compare
from tests.tracking.conftest import leet_records_at, leet_summary_at

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "compare" / "tiny.yaml"


@pytest.fixture
def compare_env(tmp_path, monkeypatch):
    """Ray without auth or telemetry; W&B offline under tmp_path, no user key."""
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    for var in ("WANDB_DIR", "WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
        d = tmp_path / "wandb-home" / var.lower()
        d.mkdir(parents=True)
        monkeypatch.setenv(var, str(d))
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()


def _stamps(exp: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in exp.glob("trials-*/runs/*/metrics.json")}


@pytest.mark.slow
@pytest.mark.timeout(480)
def test_tiny_study_end_to_end_then_resume_trains_nothing(tmp_path, compare_env, capsys,
                                                          monkeypatch):
    out = tmp_path / "out"
    result = run_compare(load_compare(TINY), output_dir=out, verbose=0)
    exp = result.exp_dir
    printed = capsys.readouterr().out
    doc = json.loads((exp / "compare.json").read_text())

    # 4 models (kan and mlp, by params and by FLOPs) x (3 seeds + 2 tuning trials)
    assert doc["trainings_run"] == result.trainings_run == 20
    assert doc["tuning_trials_per_arm"] == {"xy": {"kan": 4, "mlp": 4}}
    assert len(doc["runs"]) == 12 and all(r["status"] == "completed" for r in doc["runs"])

    # the keys the issue names, in every table
    assert {"task", "arm", "budget", "matched_by", "params", "flops", "seeds", "metric",
            "mean", "ci_low", "ci_high"} <= set(doc["rows"][0])
    assert {"task", "budget", "matched_by", "winner", "p_value"} <= set(doc["verdicts"][0])
    assert {"task", "arm", "eps", "n_measured", "n_fit", "n_fit_ci"} <= set(doc["n_eps"][0])
    assert {"task", "arm", "budget", "ood_metric", "ood_mean"} <= set(doc["extrapolation"][0])
    assert len(doc["rows"]) == 4 and len(doc["verdicts"]) == 2
    for v in doc["verdicts"]:
        assert v["winner"] in ("kan", "mlp", "tie") and 0 <= v["p_value"] <= 1
    assert doc["summary"]["xy"][0].startswith("kan vs mlp: kan better at ")

    # records agree: each cell's counts and seeds are those its runs recorded
    runs = {(r["arm"], r["label"], r["seed"]): r for r in doc["runs"]}
    for row in doc["rows"]:
        assert row["seeds"] == [0, 1, 2] and row["ci_low"] <= row["mean"] <= row["ci_high"]
        for seed in (0, 1, 2):
            run = runs[(row["arm"], row["label"], seed)]
            metrics = json.loads((Path(run["run_dir"]) / "metrics.json").read_text())
            assert metrics["model/params"] == row["params"]
            assert metrics["model/flops"] == row["flops"]
            assert metrics["final"]["test/rmse"] == pytest.approx(row["values"][str(seed)])
            assert metrics["final"]["ood/rmse"] == run["ood/rmse"] > 0
            assert metrics["seed"] == seed
        assert abs(row[row["matched_by"]] - row["budget"]) <= row["step"]
    # the seeds reran each model's best tuning values
    for entry in doc["tuning"]:
        assert len(entry["trials"]) == 2 and entry["best_value"] is not None
        for seed in (0, 1, 2):
            assert runs[(entry["arm"], entry["label"], seed)]["tuned"] == entry["best"]

    # the files: csv tables, figures, report with the compare section
    with open(exp / "compare.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 4
    for name in ("xy_params", "xy_flops", "xy_n_eps", "xy_ood"):
        assert (exp / "figures" / f"{name}.png").stat().st_size > 5000
    html = (exp / "report.html").read_text()
    assert "id=compare" in html and doc["summary"]["xy"][0].split(";")[0] in html
    assert "tuning trials per arm: kan 4, mlp 4" in html
    assert f"compare.json: {exp / 'compare.json'}" in printed
    assert f"report:       {exp / 'report.html'}" in printed
    # the report was live while the study trained (path printed first), final now
    assert printed.index(f"live report: {exp / 'report.html'}") < printed.index("compare.json:")
    assert "id=live" not in html and "location.reload()" not in html

    # the study's W&B run, read back with wandb's own reader
    (wandb_dir,) = (exp / "wandb").glob("offline-run-*")
    summary = leet_summary_at(wandb_dir)
    text = json.dumps(summary)
    assert doc["summary"]["xy"][0] in text and "compare/trainings_run" in text
    records = json.dumps(leet_records_at(wandb_dir))
    for key in ("compare/rows", "compare/verdicts", "compare/n_eps", "figures/xy_params"):
        assert key in records

    # the README tables of benchmarks/compare_summary.py, read from compare.json
    import subprocess
    import sys

    md = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "compare_summary.py"),
                         str(exp / "compare.json")], capture_output=True, text=True, check=True)
    assert "| matched by | budget | kan (count) | mlp (count) |" in md.stdout
    assert doc["summary"]["xy"][0] in md.stdout and "**Out of domain**" in md.stdout

    # --resume: nothing to train, so no Ray at all
    stamps = _stamps(exp)

    def no_ray(*args, **kwargs):
        raise AssertionError("resume started Ray")

    monkeypatch.setattr("kanplatform.search.ray_cluster.connect", no_ray)
    again = run_compare(load_compare(TINY), output_dir=out, resume=True, log_wandb=False)
    assert again.trainings_run == 0 and _stamps(exp) == stamps
    assert [r["mean"] for r in again.rows] == [r["mean"] for r in doc["rows"]]
    assert "tuning: 8 trainings (8 already finished)" in capsys.readouterr().out
    # and without --resume the finished study is refused, not overwritten
    with pytest.raises(CompareError, match="pass --resume"):
        run_compare(load_compare(TINY), output_dir=out, log_wandb=False)
    assert _stamps(exp) == stamps
