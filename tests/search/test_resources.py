"""A trial counted the way Ray places it: plain-dict arithmetic, then real local Rays."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from kanplatform.config import load_config
from kanplatform.search import SearchSpecError, parse_search, run_search
from kanplatform.search.resources import (
    COORDINATOR_MEMORY,
    PlacementWait,
    TrialPlacement,
    check_placement,
    concurrent_trials,
    worker_slots,
)
from kanplatform.search.spec import ResourceSpec
from tests.search.conftest import QUICK, ROOT, read_table, tiny_overrides

MULTIWORKER = ROOT / "configs" / "search" / "multiworker.yaml"


def test_a_data_parallel_trial_is_a_cpu_free_coordinator_plus_its_workers():
    placement = TrialPlacement.of(ResourceSpec(cpu=1, workers=2))
    assert placement.bundles() == [{"memory": COORDINATOR_MEMORY}, {"CPU": 1.0}, {"CPU": 1.0}]
    assert placement.total() == {"CPU": 2.0, "GPU": 0.0}
    assert placement.tune_resources() == {"memory": COORDINATOR_MEMORY}  # no CPU at all
    single = TrialPlacement.of({"cpu": 2, "gpu": 0.25, "workers": 1})
    assert single.bundles() == [{"CPU": 2.0, "GPU": 0.25}]
    assert single.tune_resources() == {"cpu": 2.0, "gpu": 0.25}


def test_two_workers_fit_two_cpus_and_not_one():
    res = ResourceSpec(cpu=1, workers=2)
    check_placement(res, {"CPU": 2}, [{"CPU": 2, "memory": 8e9}])
    with pytest.raises(SearchSpecError) as err:
        check_placement(res, {"CPU": 1}, [{"CPU": 1}])
    msg = str(err.value)
    assert "\n" not in msg
    assert "needs 2 CPU (2 workers x 1 CPU, plus a coordinator holding no CPU)" in msg
    assert "the cluster has 1" in msg and "--num-cpus" in msg and "resources.workers" in msg


def test_workers_are_packed_node_by_node():
    res = ResourceSpec(cpu=2, workers=2)
    nodes = [{"CPU": 3}, {"CPU": 1}]  # 4 CPUs in total, but only one 2-CPU worker fits
    assert worker_slots(TrialPlacement.of(res), nodes) == 1
    with pytest.raises(SearchSpecError, match=r"2 workers of one trial \(2 CPU each\) cannot "
                       r"be placed on the cluster's nodes \(3 CPU, 1 CPU\): at most 1 fit"):
        check_placement(res, {"CPU": 4}, nodes)
    check_placement(res, {"CPU": 4}, [{"CPU": 2}, {"CPU": 2}])
    with pytest.raises(SearchSpecError, match="largest node has 2 CPU"):
        check_placement(ResourceSpec(cpu=3), {"CPU": 4}, [{"CPU": 2}, {"CPU": 2}])


def test_the_coordinator_needs_a_node_with_memory_left():
    res = ResourceSpec(cpu=1, workers=2)
    starved = [{"CPU": 2, "memory": COORDINATOR_MEMORY / 2}]
    with pytest.raises(SearchSpecError, match="at most 0 fit"):
        check_placement(res, {"CPU": 2}, starved)
    # on a second node it fits, and the workers still pack
    check_placement(res, {"CPU": 3}, [*starved, {"CPU": 1, "memory": 2 * COORDINATOR_MEMORY}])


@pytest.mark.parametrize("gpu, nodes, trials", [
    (0.25, [{"CPU": 4, "GPU": 1}], 4),              # four trials share one GPU
    (0.6, [{"CPU": 8, "GPU": 2}], 2),               # a share never spans two GPUs: not 3
    (0.5, [{"CPU": 8, "GPU": 1}, {"CPU": 8, "GPU": 1}], 4),
    (1, [{"CPU": 8, "GPU": 2}], 2),
])
def test_fractional_gpus_are_shares_of_single_gpus(gpu, nodes, trials):
    res = ResourceSpec(cpu=1, gpu=gpu)
    cluster = {k: sum(n[k] for n in nodes) for k in ("CPU", "GPU")}
    check_placement(res, cluster, nodes)
    assert worker_slots(TrialPlacement.of(res), nodes) == trials


def test_gpu_requests_ray_could_never_place_are_refused_by_the_spec():
    base = {"space": {"optim.lr": 1.0}}
    for resources, match in (
        ({"gpu": 1.5}, "fractions only below 1"),
        ({"gpu": 0.5, "workers": 2}, "exactly one GPU per worker"),
        ({"gpu": 2, "workers": 2}, "exactly one GPU per worker"),
        ({"cpu": 0, "gpu": 0}, "needs cpu > 0 or gpu > 0"),
        ({"cpu": "two"}, "resources.cpu: must be a number"),
        ({"workers": 1.5}, "resources.workers: must be an integer"),
        ({"placement_timeout_s": 0}, "placement_timeout_s: must be > 0"),
    ):
        with pytest.raises(SearchSpecError, match=match):
            parse_search({**base, "resources": resources})
    spec = parse_search({**base, "resources": {"gpu": 1, "workers": 2}})
    with pytest.raises(SearchSpecError, match="needs 2 GPU .* the cluster has 1"):
        check_placement(spec.resources, {"CPU": 8, "GPU": 1}, [{"CPU": 8, "GPU": 1}])


def test_concurrency_of_data_parallel_trials_counts_whole_worker_groups():
    res = ResourceSpec(cpu=1, workers=2)
    assert concurrent_trials(res, {"CPU": 5}, [{"CPU": 3}, {"CPU": 2}]) == 2
    assert concurrent_trials(res, {"CPU": 2}, [{"CPU": 2}]) == 1


def test_placement_wait_times_out_only_while_nothing_runs():
    wait = PlacementWait(10, TrialPlacement.of(ResourceSpec(cpu=1)))
    wait.observe(["PENDING", "PENDING"], now=0)
    wait.observe(["RUNNING", "PENDING"], now=8)    # something placed: the clock restarts
    wait.observe(["TERMINATED", "PENDING"], now=9)
    wait.observe(["TERMINATED", "PENDING"], now=18)
    assert wait.message is None
    wait.observe(["TERMINATED", "PENDING"], now=19)
    assert wait.message and "for 10 s" in wait.message and "1 CPU" in wait.message
    assert "resources.placement_timeout_s" in wait.message


def test_multiworker_search_on_too_small_a_local_ray_fails_fast_with_the_numbers(tmp_path):
    """The shipped 2-worker search on a 1-CPU local Ray, as a user runs it (a fresh
    process): refused before Ray starts, and before Lightning is even imported."""
    probe = ("import sys; from kanplatform.cli import main; rc = main(sys.argv[1:]); "
             "print(rc, 'pytorch_lightning' in sys.modules, "
             "'ray' in sys.modules and sys.modules['ray'].is_initialized())")
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", probe, "tune", str(QUICK), str(MULTIWORKER),
         *tiny_overrides(tmp_path), "--num-cpus", "1", "--output-dir", str(tmp_path / "tune")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert time.monotonic() - start < 30
    assert done.stdout.splitlines()[-1:] == ["2 False False"], done.stdout + done.stderr
    err = done.stderr.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert "needs 2 CPU (2 workers x 1 CPU" in err and "the cluster has 1" in err
    assert not (tmp_path / "tune").exists()


@pytest.mark.slow
def test_rays_placement_of_fractional_gpus_matches_the_arithmetic():
    """A real local Ray that declares 1 GPU (there is none): actors of 0.25 GPU + 0.5 CPU,
    as placed by Ray itself, are exactly as many as worker_slots says."""
    import ray

    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, _node_ip_address="127.0.0.1")
    try:
        nodes = [{k: float(v) for k, v in n["Resources"].items()} for n in ray.nodes()]
        res = ResourceSpec(cpu=0.5, gpu=0.25)
        expected = worker_slots(TrialPlacement.of(res), nodes)
        assert expected == 4
        check_placement(res, ray.cluster_resources(), nodes)

        @ray.remote(num_cpus=0.5, num_gpus=0.25)
        class Holder:
            def gpu_ids(self) -> list:
                return ray.get_gpu_ids()

        holders = [Holder.remote() for _ in range(expected + 1)]
        refs = [h.gpu_ids.remote() for h in holders]
        ready, waiting = ray.wait(refs, num_returns=expected, timeout=60)
        assert len(ready) == expected
        assert ray.get(ready) == [[0]] * expected  # four shares of the one GPU
        ready, _ = ray.wait(waiting, timeout=3)
        assert not ready  # the fifth never fits, as the arithmetic says
        with pytest.raises(SearchSpecError, match="needs 2 GPU"):
            check_placement(ResourceSpec(gpu=1, workers=2), ray.cluster_resources(), nodes)
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_a_search_whose_resources_are_held_by_others_times_out_with_the_reason(tmp_path):
    """Ray has the CPU but another job holds it: the search waits placement_timeout_s, then
    fails with one line, and the tables list the trial as not run."""
    import ray

    ray.init(num_cpus=1, include_dashboard=False, _node_ip_address="127.0.0.1")

    @ray.remote(num_cpus=1)
    class Hog:
        def ping(self) -> int:
            return 1

    hog = Hog.remote()
    assert ray.get(hog.ping.remote()) == 1
    cfg = load_config(QUICK, tiny_overrides(tmp_path))
    spec = parse_search({"name": "busy", "space": {"optim.lr": 1.0},
                         "resources": {"cpu": 1, "placement_timeout_s": 3}})
    start = time.monotonic()
    with pytest.raises(SearchSpecError, match="no trial could be placed for 3 s") as err:
        run_search(cfg, spec, storage_path=tmp_path / "tune", verbose=0)
    assert time.monotonic() - start < 60
    assert "\n" not in str(err.value)
    (exp,) = (tmp_path / "tune").glob("busy-*")
    rows, _ = read_table(exp)
    assert [r["status"] for r in rows] == ["not_run"]
    ray.shutdown()
