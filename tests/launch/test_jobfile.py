"""Job files: schema, clear errors before anything is contacted, the command they run."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from kanplatform.cli import main as cli
from kanplatform.launch.check import check_runnable
from kanplatform.launch.jobfile import (
    JobFileError,
    load_job,
    parse_job,
    runtime_env,
)

ROOT = Path(__file__).resolve().parents[2]
CONFIG = "configs/experiment/quick.yaml"


def _job(**extra):
    job = {
        "run": {"command": "train", "config": CONFIG, "overrides": {"seed": 3}},
        "runtime_env": {"working_dir": str(ROOT), "env_vars": {"WANDB_MODE": "disabled"}},
        "resources": {"cpus": 2, "entrypoint_cpus": 1},
        "storage_path": "/data/results",
    }
    for key, value in extra.items():
        job[key] = {**job.get(key, {}), **value} if isinstance(value, dict) else value
    return job


def _write(tmp_path: Path, data) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_job_file_builds_the_command_and_runtime_env(tmp_path):
    job = load_job(_write(tmp_path, _job()))
    assert job.working_dir == ROOT
    assert job.argv() == ["train", CONFIG, "seed=3", "output_dir=/data/results"]
    assert job.entrypoint().startswith("python -m kanplatform train ")
    env = runtime_env(job)
    assert env["working_dir"] == str(ROOT)
    assert ".venv" in env["excludes"] and ".git" in env["excludes"]
    assert env["env_vars"] == {"WANDB_MODE": "disabled", "RAY_OVERRIDE_JOB_RUNTIME_ENV": "1"}


def test_override_values_are_written_as_a_user_types_them(tmp_path):
    data = _job(run={"overrides": {"model.width": [2, 3, 1], "data.batch_size": None,
                                   "trainer.deterministic": True}})
    argv = load_job(_write(tmp_path, data)).argv()
    assert "model.width=[2, 3, 1]" in argv
    assert "data.batch_size=null" in argv and "trainer.deterministic=true" in argv


def test_tune_joins_the_cluster_it_runs_on(tmp_path):
    search = tmp_path / "s.yaml"
    search.write_text("space: {}\n")
    data = _job(run={"command": "tune", "search": str(search), "overrides": {}})
    argv = load_job(_write(tmp_path, data)).argv()
    assert argv[:3] == ["tune", CONFIG, str(search)] and argv[-2:] == ["--address", "auto"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"adress": "http://x:8265"}, "unknown key 'adress' (did you mean 'address'?)"),
        ({"resources": {"gpu": 1}}, "'resources.gpu' (did you mean 'resources.gpus'?)"),
        ({"runtime_env": {"workdir": "."}}, "'runtime_env.workdir'"),
        ({"run": {"command": "fit"}}, "run.command"),
        ({"run": {"config": "configs/nope.yaml"}}, "configs/nope.yaml"),
        ({"runtime_env": {"working_dir": "no/such/dir"}}, "working_dir"),
        ({"run": {"command": "tune"}}, "run.search"),
        ({"runtime_env": {"image": "img:1", "pip": ["x"]}}, "runtime_env.image"),
        ({"resources": {"nodes": 0}}, "nodes"),
        ({"resources": {"cpus": "two"}}, "resources.cpus"),
    ],
)
def test_bad_job_files_fail_with_the_key_named(tmp_path, change, named):
    with pytest.raises(JobFileError, match="job.yaml") as err:
        load_job(_write(tmp_path, _job(**change)))
    assert named in str(err.value)


def test_missing_run_section_and_missing_file(tmp_path):
    with pytest.raises(JobFileError, match="missing `run:`"):
        parse_job({"address": "http://x"}, tmp_path / "j.yaml")
    with pytest.raises(JobFileError, match="job file not found"):
        load_job(tmp_path / "absent.yaml")


def test_submit_refuses_a_bad_job_file_before_contacting_anything(tmp_path, capsys):
    # The address is a black hole: had submit tried it, this would take the connect timeout.
    path = _write(tmp_path, _job(run={"config": "configs/nope.yaml"},
                                 address="http://10.255.255.1:8265"))
    start = time.monotonic()
    assert cli(["submit", str(path)]) == 2
    assert time.monotonic() - start < 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "configs/nope.yaml" in err and "10.255" not in err


def test_dry_run_prints_the_submission(tmp_path, capsys):
    assert cli(["submit", str(_write(tmp_path, _job())), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert '"entrypoint": "python -m kanplatform train' in out and "http://127.0.0.1:8265" in out


def test_deep_check_catches_an_unknown_override_key(tmp_path):
    job = load_job(_write(tmp_path, _job(run={"overrides": {"model.grid_sise": 4}})))
    with pytest.raises(JobFileError, match="grid_sise"):
        check_runnable(job)


def test_validate_knows_job_files(tmp_path, capsys):
    bad = _write(tmp_path, _job(resources={"gpu": 1}))
    assert cli(["validate", str(bad)]) == 1
    assert "resources.gpu" in capsys.readouterr().out
