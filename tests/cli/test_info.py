"""``kanplatform info``: reports the environment and whether the compiled KAN kernels run."""

import os
import subprocess
import sys

from kanplatform.cli import main


def test_info_reports_the_compiled_kernels(capsys) -> None:
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "wandb" in out
    line = next(row for row in out.splitlines() if row.startswith("KAN kernels"))
    assert "compiled (" in line and ".so" in line and "KANPLATFORM_KERNEL=auto" in line
    from kanplatform._util.cpus import available_cpus
    from kanplatform.train.fitting import run_threads

    line = next(row for row in out.splitlines() if row.startswith("threads"))
    assert f"a run's default {run_threads(None)} " in line
    assert f"may use: {available_cpus()}," in line


def test_info_build_fails_without_a_compiler(tmp_path) -> None:
    env = {**os.environ, "PATH": str(tmp_path), "CC": "", "KANPLATFORM_CACHE": str(tmp_path)}
    env.pop("KANPLATFORM_KERNEL", None)
    res = subprocess.run([sys.executable, "-m", "kanplatform", "info", "--build"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 1
    assert "PyTorch path (RuntimeError: no C compiler found" in res.stdout
    assert "the KAN kernels cannot be built here" in res.stderr


def test_info_names_a_bad_kernel_setting(monkeypatch, capsys) -> None:
    monkeypatch.setenv("KANPLATFORM_KERNEL", "fast")
    assert main(["info"]) == 2
    err = capsys.readouterr().err
    assert "KANPLATFORM_KERNEL='fast' is not one of auto, c, triton, torch" in err
