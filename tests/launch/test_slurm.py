"""SLURM: the sbatch template renders from a job file and is valid bash."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from kanplatform.cli import main as cli
from kanplatform.launch import slurm
from kanplatform.launch.jobfile import JobFileError, load_job

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def job(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump({
        "name": "kan-study",
        "run": {"command": "train", "config": "configs/experiment/quick.yaml",
                "overrides": {"seed": 2}},
        "runtime_env": {"working_dir": str(ROOT), "env_vars": {"WANDB_MODE": "offline"}},
        "resources": {"cpus": 8, "gpus": 2, "nodes": 3},
        "storage_path": "/scratch/kan results",
        "slurm": {"partition": "gpu", "time": "04:00:00", "setup": "module load cuda"},
    }))
    return load_job(path)


def _bash_n(script: str, tmp_path: Path) -> None:
    path = tmp_path / "job.sbatch"
    path.write_text(script)
    done = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_render_fills_every_placeholder_and_passes_bash_n(job, tmp_path):
    script = slurm.render(job)
    assert "{{" not in script
    for line in ("#SBATCH --job-name=kan-study", "#SBATCH --nodes=3", "#SBATCH --cpus-per-task=8",
                 "#SBATCH --gpus-per-node=2", "#SBATCH --partition=gpu",
                 "#SBATCH --time=04:00:00", "module load cuda", "export WANDB_MODE=offline",
                 f"cd {ROOT}"):
        assert line in script
    assert "ray start --head" in script and 'ray start --address="$RAY_ADDRESS"' in script
    assert script.rstrip().endswith(
        "python -m kanplatform train configs/experiment/quick.yaml seed=2 "
        "'output_dir=/scratch/kan results'")
    _bash_n(script, tmp_path)


def test_submit_slurm_prints_the_script(job, capsys):
    assert cli(["submit", str(job.path), "--slurm"]) == 0
    assert capsys.readouterr().out.startswith("#!/bin/bash")


def test_unknown_placeholder_is_an_error(job, tmp_path):
    template = tmp_path / "t.sbatch"
    template.write_text("#!/bin/bash\n{{ job_name }} {{ nodez }}\n")
    with pytest.raises(JobFileError, match="nodez"):
        slurm.render(job, template)


@pytest.mark.skipif(shutil.which("sbatch") is not None, reason="a real sbatch is on PATH")
def test_sbatch_without_slurm_says_what_to_do(job, capsys):
    assert cli(["submit", str(job.path), "--slurm", "--sbatch"]) == 2
    assert "sbatch is not on PATH" in capsys.readouterr().err
