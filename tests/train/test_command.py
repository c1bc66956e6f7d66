"""``kanplatform train`` through the CLI entry point."""

import json
from pathlib import Path

from kanplatform.cli import main

QUICK = Path(__file__).resolve().parents[2] / "configs" / "experiment" / "quick.yaml"


def test_train_prints_the_run_dir(tmp_path, capsys):
    code = main(["train", str(QUICK), f"output_dir={tmp_path}", "model.grid_size=4", "--quiet"])
    assert code == 0
    run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert run_dir.parent == tmp_path.resolve()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed"


def test_train_rejects_a_bad_override(tmp_path, capsys):
    assert main(["train", str(QUICK), f"output_dir={tmp_path}", "model.grid_size=0"]) == 2
    assert "model.grid_size: must be >= 1" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
