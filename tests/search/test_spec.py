"""Search files and the checks that run before Ray starts (no Ray instance needed)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kanplatform.cli import main as cli_main
from kanplatform.config import load_config
from kanplatform.search import SearchSpecError, load_search, parse_search, run_search
from kanplatform.search.spec import check_against_config, check_resources, to_tune_space

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "configs" / "experiment" / "quick.yaml"
SEARCHES = sorted((ROOT / "configs" / "search").glob("*.yaml"))


@pytest.fixture
def cfg(tmp_path):
    return load_config(QUICK, [f"output_dir={tmp_path / 'runs'}"])


def _spec(**kw):
    data = {"space": {"optim.lr": {"loguniform": [0.01, 1.0]}}, **kw}
    return parse_search(data)


def test_nested_and_dotted_keys_flatten():
    spec = parse_search({"space": {"model": {"grid_size": {"choice": [3, 5]}},
                                   "optim.lr": {"uniform": [0.1, 1.0]},
                                   "grid": {"schedule": [3, 5, 10]}}})
    assert spec.space == {"model.grid_size": {"choice": [3, 5]},
                          "optim.lr": {"uniform": [0.1, 1.0]},
                          "grid.schedule": [3, 5, 10]}


def test_every_domain_becomes_a_tune_domain():
    from ray import tune

    spec = parse_search({"space": {
        "a": {"grid_search": [1, 2]}, "b": {"choice": [1, 2]}, "c": {"uniform": [0, 1]},
        "d": {"loguniform": [1e-3, 1]}, "e": {"randint": [1, 4]}, "f": 7}})
    space = to_tune_space(spec)
    assert space["a"] == {"grid_search": [1, 2]}
    assert isinstance(space["b"], tune.search.sample.Categorical)
    assert isinstance(space["c"], tune.search.sample.Float)
    assert isinstance(space["d"].sampler, tune.search.sample.LogUniform)
    assert isinstance(space["e"], tune.search.sample.Integer)
    assert space["f"] == 7


@pytest.mark.parametrize("data, match", [
    ({"space": {}}, "non-empty `space:`"),
    ({"space": {"a": 1}, "metrik": "val/rmse"}, r"unknown key 'metrik' \(did you mean 'metric'"),
    ({"space": {"a": {"uniform": [1, 0]}}}, "low < high"),
    ({"space": {"a": {"loguniform": [0, 1]}}}, "low > 0"),
    ({"space": {"a": {"choice": []}}}, "non-empty list"),
    ({"space": {"a": 1}, "scheduler": {"kind": "pbt"}}, "scheduler.kind"),
    ({"space": {"a": 1}, "scheduler": {"grace": 1}}, "unknown key 'scheduler.grace'"),
    ({"space": {"a": 1}, "resources": {"gpus": 1}}, r"'resources.gpus' \(did you mean"),
    ({"space": {"a": {"uniform": [0, 1]}}, "search_alg": "grid"}, "grid_search or choice"),
    ({"space": {"a": 1}, "mode": "minimum"}, "mode"),
    ({"space": {"a": {"grid_search": [1, 2]}, "b": {"choice": [1]}}, "search_alg": "optuna"},
     r"optuna cannot sample grid_search \(space.a\); use choice"),
    ({"space": {"a": 1, "b": [3, 5]}, "search_alg": "optuna"}, "optuna needs at least one sampled"),
])
def test_malformed_search_files_fail_with_the_key_named(data, match):
    with pytest.raises(SearchSpecError, match=match):
        parse_search(data)


@pytest.mark.parametrize("path", SEARCHES, ids=[p.name for p in SEARCHES])
def test_shipped_searches_fit_the_shipped_configs(path, cfg):
    check_against_config(load_search(path), cfg)


def test_unknown_key_in_space_fails_before_ray(cfg, tmp_path):
    import ray

    spec = parse_search({"space": {"model.grid_sise": {"choice": [3, 5]}}})
    with pytest.raises(SearchSpecError, match="model.grid_sise"):
        run_search(cfg, spec, storage_path=tmp_path)
    assert not ray.is_initialized()


def test_wrong_type_in_space_fails_before_ray(cfg, tmp_path):
    spec = parse_search({"space": {"model.grid_size": {"choice": [3, "fine"]}}})
    with pytest.raises(SearchSpecError, match="model.grid_size = 'fine'"):
        run_search(cfg, spec, storage_path=tmp_path)


def test_metric_not_logged_fails_before_ray(cfg, tmp_path):
    import ray

    with pytest.raises(SearchSpecError, match="not logged by the training module"):
        run_search(cfg, _spec(metric="val/nope"), storage_path=tmp_path)
    with pytest.raises(SearchSpecError, match="not logged by a regression run"):
        run_search(cfg, _spec(metric="val/accuracy", mode="max"), storage_path=tmp_path)
    assert not ray.is_initialized()


def test_classification_metrics_are_searchable_with_mode_max():
    digits = load_config(ROOT / "configs" / "experiment" / "digits.yaml")
    space = {"space": {"optim.lr": {"loguniform": [1e-3, 1e-1]}}}
    check_against_config(parse_search({**space, "metric": "val/accuracy", "mode": "max"}),
                         digits)
    check_against_config(parse_search({**space, "metric": "val/loss", "mode": "min"}), digits)
    with pytest.raises(SearchSpecError, match="grows as models improve: use mode: max"):
        check_against_config(parse_search({**space, "metric": "val/accuracy"}), digits)
    with pytest.raises(SearchSpecError, match="not logged by a classification run"):
        check_against_config(parse_search({**space, "metric": "val/rmse"}), digits)


def test_resources_larger_than_the_machine_fail_before_ray(cfg, tmp_path):
    import ray

    spec = _spec(resources={"cpu": 64})
    with pytest.raises(SearchSpecError, match="needs 64 CPU .* the cluster has 2"):
        run_search(cfg, spec, storage_path=tmp_path, num_cpus=2)
    with pytest.raises(SearchSpecError, match="GPU"):
        run_search(cfg, _spec(resources={"gpu": 0.5}), storage_path=tmp_path, num_gpus=0)
    assert not ray.is_initialized()


def test_resources_checked_per_node_and_per_trial():
    spec = _spec(resources={"cpu": 2, "workers": 2})
    check_resources(spec, {"CPU": 4}, [{"CPU": 2}, {"CPU": 2}])
    with pytest.raises(SearchSpecError, match="largest node"):
        check_resources(_spec(resources={"cpu": 3}), {"CPU": 4}, [{"CPU": 2}, {"CPU": 2}])
    with pytest.raises(SearchSpecError, match="needs 4 CPU"):
        check_resources(spec, {"CPU": 3}, [{"CPU": 3}])


def test_unreachable_address_fails_fast(cfg, tmp_path):
    import ray

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.perf_counter()
    with pytest.raises(SearchSpecError, match=f"cannot reach a Ray cluster at 127.0.0.1:{port}"):
        run_search(cfg, _spec(), address=f"127.0.0.1:{port}", storage_path=tmp_path)
    assert time.perf_counter() - start < 10
    assert not ray.is_initialized()
    with pytest.raises(SearchSpecError, match="HOST:PORT"):
        run_search(cfg, _spec(), address="nohostport", storage_path=tmp_path)


def test_cli_reports_a_bad_search_and_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("metric: val/rmse\nspace:\n  model.no_such_key: {choice: [1, 2]}\n")
    code = cli_main(["tune", str(QUICK), str(bad), f"output_dir={tmp_path}"])
    assert code == 2
    assert "model.no_such_key" in capsys.readouterr().err


def test_resume_without_a_search_to_resume_is_an_error(cfg, tmp_path):
    with pytest.raises(SearchSpecError, match="--resume"):
        run_search(cfg, _spec(), storage_path=tmp_path, resume=True)


def test_optuna_search_alg_is_built_with_a_concurrency_limit():
    pytest.importorskip("optuna")
    from ray.tune.search import ConcurrencyLimiter

    from kanplatform.search.run import _search_alg

    spec = _spec(search_alg="optuna", seed=0)
    alg = _search_alg(spec, concurrency=2)
    assert isinstance(alg, ConcurrencyLimiter) and alg.max_concurrent == 2
    with pytest.raises(SearchSpecError, match="optuna cannot sample grid_search"):
        parse_search({"space": {"a": {"grid_search": [1, 2]}}, "search_alg": "optuna"})


def test_shipped_search_files_pass_the_validate_hook():
    from kanplatform.search.spec import check_search_file, is_search_file

    for path in SEARCHES:
        assert is_search_file(path, {"space": {}})
        assert check_search_file(path).startswith("search:")


def test_kanplatform_validate_checks_search_files(tmp_path, capsys):
    assert cli_main(["validate", *map(str, SEARCHES)]) == 0
    assert capsys.readouterr().out.count("search:") == len(SEARCHES)
    bad = tmp_path / "bad.yaml"
    bad.write_text("space:\n  model.foo: {choice: [1, 2]}\n")
    assert cli_main(["validate", str(bad)]) == 1
    assert "model.foo" in capsys.readouterr().out


def test_an_optuna_search_it_cannot_run_fails_before_ray(cfg, tmp_path, capsys, monkeypatch):
    """Each of these would only fail inside Ray's OptunaSearch, after Ray had started."""
    import sys

    import ray

    bad = tmp_path / "optuna_grid.yaml"
    bad.write_text("search_alg: optuna\nspace:\n  optim.lr: {grid_search: [0.1, 1.0]}\n"
                   "  model.grid_size: {choice: [3, 5]}\n")
    assert cli_main(["tune", str(QUICK), str(bad), f"output_dir={tmp_path / 'runs'}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "optuna cannot sample grid_search (space.optim.lr)" in err
    assert str(bad) in err

    optuna = _spec(search_alg="optuna")
    with pytest.raises(SearchSpecError, match="cannot run a fixed list of configs"):
        run_search(cfg, optuna, configs=[{"optim.lr": 0.1}], storage_path=tmp_path / "tune")
    monkeypatch.setitem(sys.modules, "optuna", None)  # how Python marks a package as absent
    with pytest.raises(SearchSpecError, match=r"pip install 'kanplatform\[optuna\]'"):
        run_search(cfg, optuna, storage_path=tmp_path / "tune")
    assert not ray.is_initialized()
    assert not (tmp_path / "runs").exists() and not (tmp_path / "tune").exists()


@pytest.mark.parametrize("data, match", [
    ({"scheduler": {"kind": "asha", "grace_period": "abc"}},
     r"scheduler.grace_period: must be an integer >= 1, got 'abc'"),
    ({"scheduler": {"kind": "asha", "grace_period": -7}}, r"scheduler.grace_period: .* got -7"),
    ({"scheduler": {"kind": "asha", "grace_period": 3, "max_t": 2}}, "past scheduler.max_t"),
    ({"scheduler": {"kind": "asha", "reduction_factor": 1}}, r"reduction_factor: must be .* > 1"),
    ({"scheduler": {"kind": "asha", "brackets": 0}}, "scheduler.brackets"),
    ({"scheduler": {"kind": "asha", "max_t": "x"}}, "scheduler.max_t"),
    ({"max_failures": "abc"}, r"max_failures: must be an integer >= 0, got 'abc'"),
    ({"max_failures": -7}, r"max_failures: .* got -7"),
    ({"max_concurrent_trials": 1.5}, "max_concurrent_trials"),
    ({"num_samples": "8"}, "num_samples"),
    ({"keep_checkpoints": 0}, "keep_checkpoints"),
    ({"reuse_actors": "yes"}, "reuse_actors: must be true or false"),
    ({"stack_runs": "no"}, "stack_runs: must be true or false"),
    ({"seed": 0.5}, "seed"),
    ({"name": "../elsewhere"}, "name: .* path separators"),
    ({"resources": {"cpu": "one"}}, "resources.cpu"),
    ({"resources": {"workers": 0}}, "resources.workers"),
    ({"resources": {"use_gpu": "no"}}, "resources.use_gpu"),
])
def test_every_scheduler_search_and_failure_field_is_type_and_range_checked(data, match):
    with pytest.raises(SearchSpecError, match=match):
        _spec(**data)


@pytest.mark.parametrize("line", ["scheduler: {kind: asha, grace_period: abc}",
                                  "max_failures: -7"])
def test_validate_and_tune_refuse_a_bad_field_with_one_line_and_create_nothing(
        tmp_path, capsys, line):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"space:\n  optim.lr: {{loguniform: [0.01, 1.0]}}\n{line}\n")
    assert cli_main(["validate", str(bad)]) == 1
    out = capsys.readouterr().out
    assert line.split(":")[0] in out and "Traceback" not in out
    code = cli_main(["tune", str(QUICK), str(bad), f"output_dir={tmp_path / 'runs'}",
                     "--output-dir", str(tmp_path / "tune")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "tune").exists()


def test_the_driver_hands_the_trainable_to_tune_without_importing_lightning():
    """Lightning (~5 s of CPU here) is imported by the trial processes, not by the driver
    that builds the trainable before any trial starts."""
    code = ("import sys; from kanplatform.search.trainable import TrialSetup, make_trainable; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('pytorch_lightning', 'lightning', 'lightning_fabric')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert out.strip() == "[]", f"Lightning imported by the driver: {out}"
    import pytorch_lightning as pl

    from kanplatform.search.reporter import TuneReporter  # what the trials use
    assert issubclass(TuneReporter, pl.Callback)


def test_data_parallel_gpu_trials_take_one_gpu_per_worker_on_nccl():
    """workers > 1 on GPUs: NCCL, exactly one whole GPU per worker (a fraction or several per
    worker is refused before Ray starts); on CPUs gloo."""
    from kanplatform.search.trainable import worker_backend

    spec = _spec(resources={"cpu": 2, "gpu": 1, "workers": 2})
    assert worker_backend(spec.resources.__dict__) == {
        "workers": 2, "use_gpu": True, "backend": "nccl", "per_worker": {"CPU": 2.0, "GPU": 1.0}}
    cpu = worker_backend(_spec(resources={"cpu": 1, "workers": 2}).resources.__dict__)
    assert cpu["backend"] == "gloo" and not cpu["use_gpu"] and "GPU" not in cpu["per_worker"]
    for gpu in (0.5, 2):
        with pytest.raises(SearchSpecError, match="exactly one GPU"):
            _spec(resources={"gpu": gpu, "workers": 2})
        with pytest.raises(ValueError, match="exactly one GPU"):
            worker_backend({"gpu": gpu, "workers": 2})
    assert _spec(resources={"gpu": 0.25}).resources.gpu == 0.25  # one worker: shared GPUs
