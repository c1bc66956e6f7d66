"""Data files are checked before any work: readable, numeric, finite, enough rows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from kanplatform.cli import main
from kanplatform.data import DataError, DataWarning, file_table, load_file

QUICK = str(Path(__file__).resolve().parents[2] / "configs" / "experiment" / "quick.yaml")


def _rows(n: int, bad: dict[int, str] | None = None) -> str:
    x = np.random.default_rng(0).uniform(-1, 1, (n, 2))
    rows = [f"{a:.6f},{b:.6f},{a * b:.6f}" for a, b in x]
    for i, row in (bad or {}).items():
        rows[i] = row
    return "x1,x2,y\n" + "\n".join(rows) + "\n"


BAD_FILES = {
    "empty": ("", r"empty\.csv is empty; expected a header row"),
    "header_only": ("x1,x2,y\n", r"has 0 data rows \(only a header\), fewer than .* = 30"),
    "non_numeric": (_rows(40, {3: "0.1,abc,0.2"}),
                    r"column 'x2' is not numeric: 'abc' at line 5"),
    "ragged": (_rows(40, {0: "0.1,0.2"}), r"line 2 has 2 values, but the header names 3"),
    "too_few": (_rows(12), r"has 12 data rows, fewer than data.n_train \+ n_val \+ n_test = 30"),
    "nan_inf": (_rows(40, {6: "0.1,nan,0.2", 9: "inf,0.1,0.2"}),
                r"has 2 row\(s\) with NaN or inf values, the first at line 8 \(column x2\); "
                r".*data\.drop_nonfinite: true"),
}


def _args(path: Path, tmp_path: Path, *extra: str) -> list[str]:
    return [QUICK, "data.dataset=file", f"data.path={path}", "data.inputs=[x1,x2]",
            "data.targets=[y]", "data.n_train=20", "data.n_val=5", "data.n_test=5",
            "trainer.num_threads=1", f"output_dir={tmp_path / 'runs'}", *extra]


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_validate_and_train_refuse_a_bad_file_with_one_line_before_creating_anything(
        tmp_path, capsys, name):
    text, message = BAD_FILES[name]
    path = tmp_path / f"{name.replace('_only', '')}.csv"
    path.write_text(text)
    config = tmp_path / "run.yaml"
    config.write_text(f"defaults:\n  - {QUICK}\ndata:\n  dataset: file\n  path: {path}\n"
                      "  inputs: [x1, x2]\n  targets: [y]\n  n_train: 20\n  n_val: 5\n"
                      "  n_test: 5\n")
    assert main(["validate", str(config)]) == 1
    out = capsys.readouterr().out
    assert re.search(message, out), out
    assert main(["train", *_args(path, tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert re.search(message, err), err
    assert not (tmp_path / "runs").exists()


def test_drop_nonfinite_trains_without_those_rows_and_warns(tmp_path, capsys):
    path = tmp_path / "nan.csv"
    path.write_text(_rows(40, {6: "0.1,nan,0.2", 9: "inf,0.1,0.2", 39: "0.1,0.2,-inf"}))
    with pytest.warns(DataWarning, match=r"3 row\(s\) with NaN/inf values dropped "
                                         r"\(the first at line 8\)"):
        splits = load_file(path, ["x1", "x2"], ["y"], 30, 4, 3, drop_nonfinite=True)
    assert all(np.isfinite(t.numpy()).all() for pair in (splits.train, splits.val, splits.test)
               for t in pair)
    with pytest.raises(DataError, match=r"37 data rows after dropping 3 with NaN/inf"):
        file_table(path, ["x1", "x2"], ["y"], drop_nonfinite=True, need=38)

    with pytest.warns(DataWarning):
        code = main(["train", *_args(path, tmp_path, "data.drop_nonfinite=true"), "--quiet"])
    assert code == 0
    run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert np.isfinite(metrics["final"]["test/rmse"])


def test_npz_arrays_are_checked_too(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, a=np.array([1.0, np.nan, 3.0]), b=np.array(["x", "y", "z"]))
    with pytest.raises(DataError, match="array 'b' is not numeric"):
        file_table(path, ["a"], ["b"])
    np.savez(path, a=np.array([1.0, np.nan, 3.0]), b=np.arange(3.0))
    with pytest.raises(DataError, match=r"1 row\(s\) with NaN or inf values, the first at row 1"):
        file_table(path, ["a"], ["b"])
