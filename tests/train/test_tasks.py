"""Real tasks end to end: classification, whole files with normalisation, predict, bad inputs.

Every run trains a real model through ``kanplatform train`` (the CLI's ``main``) or ``fit``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import kanplatform
from kanplatform.cli import main
from kanplatform.data import load_file

DEFAULT = str(Path(__file__).resolve().parents[2] / "configs" / "default.yaml")
FAST = ["trainer.num_threads=1", "tracking.mode=disabled", "trainer.checkpoint_every_n_steps=0",
        "grid.update_every=0", "optim.name=adam", "optim.lr=0.02"]


def _blobs(path: Path, n: int = 600, seed: int = 0) -> Path:
    """Three Gaussian blobs in 2-D with string labels (60/30/10 % of the rows)."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(["cat", "dog", "eel"], size=n, p=[0.6, 0.3, 0.1])
    centre = {"cat": (-0.5, -0.5), "dog": (0.5, 0.5), "eel": (-0.5, 0.6)}
    x = np.array([centre[c] for c in labels]) + 0.12 * rng.standard_normal((n, 2))
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["u", "v", "kind"])
        w.writerows([[f"{a:.6f}", f"{b:.6f}", c] for (a, b), c in zip(x, labels)])
    return path


def _train(capsys, *args) -> tuple[int, Path | None, str]:
    code = main(["train", DEFAULT, *args, "--quiet"])
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    return code, Path(lines[-1]) if code in (0, 1) and lines else None, err


def test_classification_end_to_end(tmp_path, capsys):
    path = _blobs(tmp_path / "blobs.csv")
    args = [*FAST, "task=classification", "data.dataset=file", f"data.path={path}",
            "data.inputs=[u,v]", "data.targets=[kind]", "data.batch_size=64",
            "model.width=[2,4,3]", "trainer.max_steps=150", "trainer.val_every_n_steps=50",
            f"output_dir={tmp_path / 'runs'}"]
    code, run_dir, err = _train(capsys, *args)
    assert code == 0, err
    metrics = json.loads((run_dir / "metrics.json").read_text())
    final = metrics["final"]
    assert metrics["task"] == "classification" and metrics["status"] == "completed"
    assert {"train/loss", "train/accuracy", "val/loss", "val/accuracy", "val/f1", "test/loss",
            "test/accuracy", "test/f1"} <= set(final)
    assert final["test/accuracy"] > 0.9 and final["test/loss"] < 0.5
    assert (metrics["data/n_train"], metrics["data/n_val"], metrics["data/n_test"]) == \
        (480, 60, 60)  # every row, 80/10/10
    history = (run_dir / "history.csv").read_text().splitlines()[0].split(",")
    assert {"train/accuracy", "val/accuracy", "val/loss"} <= set(history)
    # the split is stratified: each class holds its share of the file in every split
    splits = load_file(path, ["u", "v"], ["kind"], task="classification")
    assert splits.classes == ("cat", "dog", "eel")
    share = np.bincount(np.concatenate([splits.split(s)[1].numpy() for s in
                                        ("train", "val", "test")])) / 600
    for split in ("val", "test"):
        counts = np.bincount(splits.split(split)[1].numpy(), minlength=3)
        assert np.all(np.abs(counts - 60 * share) <= 1), (counts, 60 * share)
    # the trained model predicts labels in the file's own terms, from raw inputs
    model = kanplatform.load(run_dir)
    x_test = splits.test[0].numpy()
    labels = model.predict(x_test)
    truth = np.asarray(splits.classes)[splits.test[1].numpy()]
    assert labels.dtype.kind == "U" and np.mean(labels == truth) == pytest.approx(
        final["test/accuracy"])
    proba = model.predict_proba(x_test)
    assert proba.shape == (60, 3) and np.allclose(proba.sum(axis=1), 1.0)
    # kanplatform predict: label and one probability per class
    new = tmp_path / "new.csv"
    np.savetxt(new, x_test[:, ::-1], delimiter=",", header="v,u", comments="")  # other order
    out = tmp_path / "pred.csv"
    assert main(["predict", str(run_dir), str(new), "--output", str(out)]) == 0
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["label", "p_cat", "p_dog", "p_eel"] and len(rows) == 61
    assert [r[0] for r in rows[1:]] == labels.tolist()
    assert np.allclose(np.array([r[1:] for r in rows[1:]], dtype=float), proba, rtol=0, atol=0)


def test_classification_width_is_checked_against_the_classes(tmp_path, capsys):
    path = _blobs(tmp_path / "blobs.csv", n=60)
    code, _, err = _train(capsys, "task=classification", "data.dataset=file",
                          f"data.path={path}", "data.inputs=[u,v]", "data.targets=[kind]",
                          "model.width=[2,4,1]", f"output_dir={tmp_path / 'runs'}")
    assert code == 2 and "model.width: last entry 1 != 3 classes" in err and "(use 3)" in err
    assert not (tmp_path / "runs").exists()


def _scales(path: Path, n: int, seed: int) -> Path:
    """Inputs on scales 1e-2 .. 1e3; a target that needs all of them."""
    rng = np.random.default_rng(seed)
    x = np.c_[rng.uniform(0, 1000, n), rng.uniform(0, 0.01, n), rng.uniform(-5, 5, n)]
    y = np.sin(x[:, 0] / 200) + 100 * x[:, 1] + 0.1 * x[:, 2] ** 2 + 10.0
    np.savetxt(path, np.c_[x, y], delimiter=",", header="big,small,mid,y", comments="")
    return path


def test_regression_on_raw_scales_normalised_and_predicted_in_original_units(tmp_path, capsys):
    path = _scales(tmp_path / "train.csv", 2000, 0)
    args = [*FAST, "data.dataset=file", f"data.path={path}", "data.inputs=[big,small,mid]",
            "data.targets=[y]", "data.batch_size=128", "model.width=[3,4,1]",
            "trainer.max_steps=300", "trainer.val_every_n_steps=100", "trainer.precision=64",
            f"output_dir={tmp_path / 'runs'}"]
    code, run_dir, err = _train(capsys, *args)
    assert code == 0, err
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert (metrics["data/n_train"], metrics["data/n_val"], metrics["data/n_test"]) == \
        (1600, 200, 200)
    info = json.loads((run_dir / "data.json").read_text())
    assert info["normalizer"]["method"] == "minmax" and info["input_names"] == ["big", "small",
                                                                               "mid"]
    # metrics are in the target's own units: recomputed from raw rows through load().predict
    raw = load_file(path, ["big", "small", "mid"], ["y"], dtype=torch.float64)
    model = kanplatform.load(run_dir)
    pred = model.predict(raw.test[0].numpy())
    rmse = float(np.sqrt(np.mean((pred - raw.test[1].numpy()) ** 2)))
    assert rmse == pytest.approx(metrics["final"]["test/rmse"], rel=1e-9)
    assert rmse < 0.3 * float(raw.test[1].std())  # it learned, in spite of the raw scales
    # load(run)(x): a float32 tensor into a float64 run, a NumPy array, a DataFrame
    x32 = raw.test[0][:5].float()
    assert model(x32).dtype == torch.float64
    assert np.allclose(model(x32.numpy()).detach().numpy(), model.predict(x32.numpy()))
    import pandas as pd

    frame = pd.DataFrame(raw.test[0][:5].numpy(), columns=["big", "small", "mid"])
    assert np.array_equal(model.predict(frame[["mid", "big", "small"]]), pred[:5])
    with pytest.raises(ValueError, match=r"input columns missing: \['small'\]"):
        model.predict(frame[["mid", "big"]])
    # kanplatform predict on 500 new rows == load(run).predict on them
    new = _scales(tmp_path / "new.csv", 500, 1)
    out = tmp_path / "pred.csv"
    assert main(["predict", str(run_dir), str(new), "--output", str(out)]) == 0
    written = np.loadtxt(out, delimiter=",", skiprows=1)
    rows = np.loadtxt(new, delimiter=",", skiprows=1)[:, :3]
    assert written.shape == (500,) and np.array_equal(written, model.predict(rows)[:, 0])
    capsys.readouterr()
    # a file without the input columns: one line, nothing written
    bad = tmp_path / "bad.csv"
    bad.write_text("big,mid\n1,2\n")
    assert main(["predict", str(run_dir), str(bad), "--output", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cannot predict:") and "small" in err and "\n" not in err
    assert not (tmp_path / "x.csv").exists()


def test_multi_output_regression_keeps_each_target_in_its_own_units(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (400, 2))
    y = np.c_[1000 * x[:, 0] + 500, 0.01 * x[:, 1] ** 2]  # two targets, scales 1e3 and 1e-2
    path = tmp_path / "two.npz"
    np.savez(path, a=x[:, 0], b=x[:, 1], big=y[:, 0], tiny=y[:, 1])
    code, run_dir, err = _train(capsys, *FAST, "data.dataset=file", f"data.path={path}",
                                "data.inputs=[a,b]", "data.targets=[big,tiny]",
                                "data.batch_size=64", "model.width=[2,3,2]",
                                "trainer.max_steps=60", "trainer.val_every_n_steps=30",
                                "trainer.precision=64", f"output_dir={tmp_path / 'runs'}")
    assert code == 0, err
    metrics = json.loads((run_dir / "metrics.json").read_text())
    info = json.loads((run_dir / "data.json").read_text())
    assert info["target_names"] == ["big", "tiny"] and len(info["normalizer"]["y_scale"]) == 2
    raw = load_file(path, ["a", "b"], ["big", "tiny"], dtype=torch.float64)
    pred = kanplatform.load(run_dir).predict(raw.test[0].numpy())
    assert pred.shape == (len(raw.test[0]), 2)
    rmse = float(np.sqrt(np.mean((pred - raw.test[1].numpy()) ** 2)))  # over both outputs
    assert rmse == pytest.approx(metrics["final"]["test/rmse"], rel=1e-9)
    assert abs(pred[:, 0].mean() - 500) < 100 and abs(pred[:, 1]).max() < 1.0  # own units


def test_validate_refuses_more_rows_than_there_are_and_parquet_reads_as_csv(tmp_path, capsys):
    import pandas as pd

    experiment = Path(DEFAULT).parent / "experiment"
    path = _blobs(tmp_path / "blobs.csv", n=100)
    parquet = tmp_path / "blobs.parquet"
    pd.read_csv(path).to_parquet(parquet)
    configs = {
        "real.yaml": f"defaults:\n  - {experiment / 'digits.yaml'}\ndata:\n  n_train: 5000\n",
        "file.yaml": f"defaults:\n  - {DEFAULT}\ntask: classification\ndata:\n"
                     f"  dataset: file\n  path: {parquet}\n  inputs: [u, v]\n"
                     f"  targets: [kind]\n  n_train: 90\n  n_val: 10\n  n_test: 10\n"
                     f"model:\n  width: [2, 3, 3]\n",
    }
    for name, text in configs.items():
        (tmp_path / name).write_text(text)
    assert main(["validate", *(str(tmp_path / n) for n in configs)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("FAIL") and "digits has 1797 data rows, fewer than n_train 5000" \
        in out[0]
    assert out[1].startswith("FAIL") and "has 100 data rows, fewer than" in out[1]
    # the parquet file gives the CSV's splits, labels and column names
    a = load_file(path, ["u", "v"], ["kind"], task="classification")
    b = load_file(parquet, ["u", "v"], ["kind"], task="classification")
    assert a.classes == b.classes and a.input_names == b.input_names
    for split in ("train", "val", "test"):
        assert all(torch.equal(p, q) for p, q in zip(a.split(split), b.split(split)))


def _bad_case(tmp_path: Path, name: str) -> tuple[list[str], str]:
    blobs = ["task=classification", "data.dataset=file", "data.inputs=[u,v]",
             "data.targets=[kind]", "model.width=[2,3,3]"]
    if name == "missing_label":
        path = _blobs(tmp_path / "b.csv", 60)
        return [*blobs[:-2], f"data.path={path}", "data.targets=[label]",
                "model.width=[2,3,3]"], r"data\.targets: no column \['label'\].*columns: u, v, kind"
    if name == "single_class":
        path = tmp_path / "one.csv"
        path.write_text("u,v,kind\n" + "".join(f"{i},{i},a\n" for i in range(30)))
        return [*blobs, f"data.path={path}"], r"holds a single class \('a'\)"
    if name == "nan":
        path = _blobs(tmp_path / "b.csv", 60)
        text = path.read_text().splitlines()
        text[5] = "nan,0.1,cat"
        path.write_text("\n".join(text) + "\n")
        return [*blobs, f"data.path={path}"], r"1 row\(s\) with NaN/inf values or missing " \
            r"labels, the first at line 6 \(column u\)"
    if name == "non_numeric":
        path = _blobs(tmp_path / "b.csv", 60)
        text = path.read_text().splitlines()
        text[3] = "0.1,abc,cat"
        path.write_text("\n".join(text) + "\n")
        return [*blobs, f"data.path={path}"], r"column 'v' is not numeric: 'abc' at line 4"
    if name == "too_few_rows":
        path = _blobs(tmp_path / "b.csv", 2)
        return [*blobs, f"data.path={path}"], r"has 2 data rows: too few to split"
    if name == "string_regression_target":
        path = _blobs(tmp_path / "b.csv", 60)
        return ["data.dataset=file", f"data.path={path}", "data.inputs=[u,v]",
                "data.targets=[kind]", "model.width=[2,3,1]"], \
            r"column 'kind' is not numeric: .*set task: classification"
    if name == "torchvision_root":
        return ["task=classification", "data.dataset=mnist", f"data.root={tmp_path}",
                "model.width=[784,10]"], r"data\.root: no mnist files in .*MNIST/raw"
    assert name == "task_mismatch"
    return ["data.dataset=digits", "model.width=[64,10]"], \
        r"task: 'digits' is a classification dataset; set task: classification"


BAD = ["missing_label", "single_class", "nan", "non_numeric", "too_few_rows",
       "string_regression_target", "torchvision_root", "task_mismatch"]


@pytest.mark.parametrize("name", BAD)
def test_bad_inputs_fail_with_one_line_before_any_run_dir(tmp_path, capsys, name):
    import re

    args, message = _bad_case(tmp_path, name)
    code, _, err = _train(capsys, *args, f"output_dir={tmp_path / 'runs'}")
    err = err.strip()
    assert code == 2 and "\n" not in err and "Traceback" not in err, err
    assert re.search(message, err), err
    assert not (tmp_path / "runs").exists()


def test_early_stopping_stops_with_why_and_bf16_mixed_trains(tmp_path, capsys):
    args = [*FAST, "task=classification", "data=iris", "model=mlp", "model.match=none",
            "model.width=[4,8,3]", "data.batch_size=16", "optim.lr=1e-6",
            "trainer.max_steps=400", "trainer.val_every_n_steps=5",
            "trainer.early_stopping={metric: val/loss, patience: 2, min_delta: 0.01}",
            "trainer.precision=bf16-mixed", "trainer.gradient_clip_val=1.0",
            "optim.scheduler=cosine", "optim.warmup_steps=5", f"output_dir={tmp_path / 'runs'}"]
    code, run_dir, err = _train(capsys, *args)
    assert code == 0, err
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "stopped" and metrics["step"] == 15
    assert metrics["reason"].startswith("early stopping at step 15: val/loss did not improve")
    assert "run stopped: early stopping" in err


@pytest.mark.slow
def test_a_long_run_logs_compactly_off_a_terminal(tmp_path, capsys):
    code = main(["train", DEFAULT, *FAST, "model=mlp", "model.match=none",
                 "model.width=[2,8,1]", "data.n_train=64", "data.n_val=32", "data.n_test=32",
                 "data.batch_size=32", "trainer.max_steps=2000", "trainer.val_every_n_steps=50",
                 f"output_dir={tmp_path / 'runs'}"])
    out, err = capsys.readouterr()  # not a TTY, as in a cluster log
    assert code == 0, err
    log = out + err
    assert len(log.encode()) < 20_000, len(log.encode())
    assert "\r" not in log and "GPU available" not in log and "TPU available" not in log
    lines = [line for line in err.splitlines() if line.startswith("step ")]
    assert len(lines) == 40 and lines[-1].startswith("step 2000/2000  epoch 999")
    assert "val/rmse" in lines[-1] and "samples/s" in lines[-1]


def test_learning_rate_schedules_follow_the_global_step():
    from types import SimpleNamespace

    from kanplatform.train.module import lr_schedule

    optim = SimpleNamespace(name="adam", lr=1.0, scheduler="cosine", warmup_steps=10,
                            min_lr=0.1, gamma=0.5, step_size=20)
    rate = lr_schedule(optim, total_steps=110)
    assert rate(0) == pytest.approx(0.1) and rate(9) == pytest.approx(1.0)
    assert rate(10) == pytest.approx(1.0) and rate(60) == pytest.approx(0.55)
    assert rate(110) == pytest.approx(0.1) and rate(500) == pytest.approx(0.1)
    optim.scheduler = "step"
    rate = lr_schedule(optim, total_steps=110)
    assert [rate(s) for s in (10, 29, 30, 50)] == pytest.approx([1.0, 1.0, 0.5, 0.25])
    optim.scheduler, optim.name = "none", "adam"
    assert lr_schedule(optim, 100) is None
