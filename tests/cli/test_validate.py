"""``kanplatform validate FILE...`` through the CLI entry point."""

from pathlib import Path

from kanplatform.cli import main
from kanplatform.config import register_validator
from kanplatform.config.validate import VALIDATORS

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_validate_ok(capsys):
    files = [CONFIGS / "experiment" / "grid_extension.yaml", CONFIGS / "model" / "mlp.yaml"]
    assert main(["validate", *map(str, files)]) == 0
    out = capsys.readouterr().out
    assert out.count("OK") == 2


def test_validate_reports_each_file_and_fails(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  grid_size: 0\n")
    good = CONFIGS / "default.yaml"
    assert main(["validate", str(good), str(bad), str(tmp_path / "missing.yaml")]) == 1
    out = capsys.readouterr().out
    assert f"OK   {good}" in out
    assert "FAIL" in out and "model.grid_size: must be >= 1" in out
    assert "file not found" in out


def test_registered_validators_take_precedence(tmp_path, capsys):
    special = tmp_path / "thing.yaml"
    special.write_text("thing: 1\n")
    saved = list(VALIDATORS)
    try:
        register_validator("thing", lambda p, d: isinstance(d, dict) and "thing" in d,
                           lambda p: "a thing")
        assert main(["validate", str(special)]) == 0
        assert "(a thing)" in capsys.readouterr().out
    finally:
        VALIDATORS[:] = saved
