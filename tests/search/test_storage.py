"""Storage a whole cluster can reach: rules for paths and URIs, and a search on a URI.

The slow test runs a real search whose storage is a ``file://`` URI, which goes through
pyarrow exactly as ``s3://`` would (no network): Tune's state and checkpoints in the
"bucket", trials training in node-local scratch and uploading their run directories, the
driver mirroring the tables. A trial's process is killed mid-run and the trial resumes
from the checkpoint it finds in the bucket.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import yaml

from kanplatform.cli import main as cli
from kanplatform.config import load_config
from kanplatform.launch.jobfile import JobFileError, load_job
from kanplatform.search import SearchSpecError, parse_search, run_search
from kanplatform.search.storage import (
    ExperimentStore,
    check_multi_node_path,
    check_shared,
    check_uri,
    join,
    newest_experiment,
)
from tests.search.conftest import QUICK, ROOT, read_table, tiny_overrides

FAKE_NODES = [{"NodeID": "a" * 56, "NodeManagerAddress": "10.0.0.1"},
              {"NodeID": "b" * 56, "NodeManagerAddress": "10.0.0.2"}]


def test_node_local_paths_are_refused_for_several_nodes_only(monkeypatch):
    monkeypatch.delenv("KANPLATFORM_SHARED_TMP", raising=False)
    for path in ("/tmp/results", "/dev/shm/x", "/var/tmp"):
        with pytest.raises(SearchSpecError, match="every node of a 2-node cluster keeps"):
            check_multi_node_path(path, 2)
        check_multi_node_path(path, 1)
    check_multi_node_path("/shared/results", 8)
    check_multi_node_path("s3://bucket/results", 8)
    with pytest.raises(SearchSpecError, match="under /tmp"):  # before any probe task
        check_shared("/tmp/results", FAKE_NODES)
    monkeypatch.setenv("KANPLATFORM_SHARED_TMP", "1")  # a machine whose /tmp is shared
    check_multi_node_path("/tmp/results", 2)


def test_uris_are_the_schemes_ray_tune_reads():
    assert check_uri("s3://bucket/prefix") == "s3://bucket/prefix"
    check_uri("file:///shared/x")
    with pytest.raises(SearchSpecError, match="scheme 'ftp'"):
        check_uri("ftp://host/x")
    with pytest.raises(SearchSpecError, match="file:///ABSOLUTE"):
        check_uri("file://relative/x")
    assert join("s3://b/p?region=eu", "exp", "runs") == "s3://b/p/exp/runs?region=eu"
    store = ExperimentStore(Path("/mirror/exp"), "s3://b/p/exp?region=eu")
    assert store.tune_root == "s3://b/p?region=eu" and store.where == "s3://b/p/exp?region=eu"


def test_resume_finds_the_newest_search_on_a_uri(tmp_path):
    bucket = tmp_path / "bucket"
    for name in ("s-1", "s-2", "other-3"):
        (bucket / name).mkdir(parents=True)
        (bucket / name / "tuner.pkl").write_bytes(b"x")
        time.sleep(0.01)
    (bucket / "s-9").mkdir()  # no tuner.pkl: not a search
    assert newest_experiment(f"file://{bucket}", "s-") == "s-2"
    assert newest_experiment(bucket, "s-") == "s-2"
    assert newest_experiment(f"file://{tmp_path}/none", "s-") is None


def _job(tmp_path: Path, **changes) -> Path:
    data = {"run": {"command": "tune", "config": "configs/experiment/quick.yaml",
                    "search": "configs/search/asha_kan.yaml"},
            "runtime_env": {"working_dir": str(ROOT)},
            "resources": {"nodes": 2}, "storage_path": "/shared/results"}
    data.update(changes)
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("changes, match", [
    ({"storage_path": "/tmp/results"}, "under /tmp, which every node"),
    ({"storage_path": None}, "a job on 2 nodes needs `storage_path` on shared storage"),
    ({"storage_path": "ftp://x/y"}, "scheme 'ftp'"),
    ({"run": {"command": "scale", "config": "configs/scaling/tiny.yaml"},
      "storage_path": "s3://b/p"}, "a URI is storage for `tune`"),
])
def test_job_files_refuse_storage_a_cluster_cannot_share(tmp_path, monkeypatch, changes,
                                                         match):
    monkeypatch.delenv("KANPLATFORM_SHARED_TMP", raising=False)
    with pytest.raises(JobFileError, match=match):
        load_job(_job(tmp_path, **changes))
    load_job(_job(tmp_path, storage_path="s3://bucket/kan"))  # object storage: fine


def test_a_relative_storage_path_never_lands_on_the_submitting_machine(tmp_path, capsys):
    """Relative (or no) storage_path: under the checkout for a head on this machine; refused
    for a remote head, before anything is contacted."""
    path = _job(tmp_path, resources={"nodes": 1}, storage_path="runs")
    assert cli(["submit", str(path), "--dry-run", "--no-check"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert f"--output-dir {ROOT / 'runs'}" in plan["entrypoint"]
    start = time.monotonic()
    assert cli(["submit", str(path), "--address", "http://10.255.255.1:8265",
                "--no-check"]) == 2
    assert time.monotonic() - start < 3
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "storage_path 'runs' is relative" in err
    assert "temporary copy of working_dir" in err


def test_a_scaling_study_refuses_a_uri_for_its_files(tmp_path, capsys):
    assert cli(["scale", str(ROOT / "configs/scaling/tiny.yaml"), "--output-dir",
                "s3://bucket/x"]) == 2
    assert "a scaling study writes files" in capsys.readouterr().err


def _kill_one_trial_mid_run(bucket: Path, killed: list[int], stop: threading.Event) -> None:
    """Kill (once) the process of a trial that reported stage 1 and still runs."""
    while not stop.is_set() and not killed:
        for result in bucket.glob("*/search_trial_*/result.json"):
            rows = [json.loads(x) for x in result.read_text().splitlines() if x.strip()]
            if rows and rows[-1].get("trial/status") == "running":
                os.kill(rows[-1]["pid"], signal.SIGKILL)
                killed.append(rows[-1]["pid"])
                return
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_search_on_a_uri_keeps_everything_there_and_restores_a_killed_trial(tmp_path):
    bucket = tmp_path / "bucket"
    cfg = load_config(QUICK, tiny_overrides(tmp_path, "grid.schedule=[3,5,10]",
                                            "grid.steps_per_stage=25"))
    spec = parse_search({"name": "uri", "space": {"optim.lr": {"grid_search": [1.0, 0.5]}},
                         "max_concurrent_trials": 1, "max_failures": 2,
                         "resources": {"cpu": 1}})
    killed: list[int] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_kill_one_trial_mid_run, args=(bucket, killed, stop))
    watcher.start()
    try:
        result = run_search(cfg, spec, storage_path=f"file://{bucket}", num_cpus=2,
                            verbose=0)
    finally:
        stop.set()
        watcher.join()
    assert killed, "no trial was caught running"
    (exp,) = bucket.glob("uri-*")
    # the tables: mirrored on the driver's disk and uploaded next to Tune's own files
    assert result.experiment_dir == (tmp_path / "runs" / "tune" / exp.name)
    for name in ("trials.csv", "trials.json", "search.json"):
        assert (exp / name).read_bytes() == (result.experiment_dir / name).read_bytes()
    assert (exp / "tuner.pkl").is_file() and list(exp.glob("experiment_state-*.json"))
    assert (result.experiment_dir / "best_config.yaml").is_file()
    rows, _ = read_table(exp)
    assert sorted(r["optim.lr"] for r in rows) == [0.5, 1.0]
    assert all(r["status"] == "completed" and r["grid/stage"] == 3 for r in rows), rows
    assert max(r["restores"] for r in rows) >= 1  # from the checkpoint in the bucket
    for row in rows:  # every run directory was published to the bucket
        assert row["run_dir"] == f"file://{exp}/runs/{row['trial_id']}"
        metrics = json.loads((exp / "runs" / row["trial_id"] / "metrics.json").read_text())
        assert metrics["status"] == "completed"
    assert not (result.experiment_dir / "runs").exists()  # nothing trained into the mirror
