"""Every file under jobs/ and docker/ is checked here, by what it is.

Job files load and their command runs through the CLI's own parser and config loader; the
sbatch template renders with each job file and passes `bash -n`; the Ray cluster launcher
YAML passes Ray's own `prepare_config` + `validate_config`; the KubeRay manifests carry the
fields their CRDs require; the Dockerfiles and the compose file are read for the structure
the design asks for. Every `kanplatform ...` command any of them runs or documents parses.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from kanplatform.cli import COMMANDS, build_parser
from kanplatform.launch import slurm
from kanplatform.launch.check import check_runnable
from kanplatform.launch.jobfile import load_job
from kanplatform.launch.storage import job_storage

ROOT = Path(__file__).resolve().parents[2]
JOB_FILES = sorted((ROOT / "jobs").glob("*.yaml"))
SBATCH = sorted((ROOT / "jobs/slurm").glob("*.sbatch"))
K8S = sorted((ROOT / "jobs/k8s").glob("*.yaml"))
CLUSTER = sorted((ROOT / "jobs/cluster").glob("*.yaml"))
DOCKERFILES = sorted((ROOT / "docker").glob("Dockerfile.*[!e]"))  # not *.dockerignore
DOCKERIGNORES = sorted((ROOT / "docker").glob("Dockerfile.*.dockerignore"))
COMPOSE = sorted((ROOT / "docker").glob("*compose*.y*ml"))
CHECKED = {*JOB_FILES, *SBATCH, *K8S, *CLUSTER, *DOCKERFILES, *DOCKERIGNORES, *COMPOSE}


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def assert_parses(argv: list[str], where: str) -> None:
    """Parse ``kanplatform ARGV`` with the CLI's parser."""
    assert argv and argv[0] in COMMANDS, f"{where}: `kanplatform {shlex.join(argv)}` names no " \
        f"command; known: {sorted(COMMANDS)}"
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"{where}: `kanplatform {shlex.join(argv)}` does not parse:\n{err.getvalue()}")
    assert isinstance(args, argparse.Namespace)
    for arg in argv[1:]:  # config/job paths the command names must exist in the repo
        if arg.startswith(("configs/", "jobs/", "/app/")) and "=" not in arg:
            assert (ROOT / arg.removeprefix("/app/")).is_file(), f"{where}: {arg} not found"


def commands_in(text: str) -> list[list[str]]:
    """``kanplatform``/``python -m kanplatform`` command lines in a file (code or comments)."""
    found = []
    for raw in text.splitlines():
        line = raw.strip().lstrip("#").strip()
        match = re.match(r"^(?:python3? -m )?kanplatform\s+(\S.*)$", line)
        if not match:
            continue
        argv = shlex.split(match.group(1).split(" #")[0])
        argv = argv[: argv.index(">")] if ">" in argv else argv  # `... > file`
        if argv and argv[0] in COMMANDS:
            found.append(argv)
    return found


def test_every_file_under_jobs_and_docker_is_checked():
    files = {p for d in ("jobs", "docker") for p in (ROOT / d).rglob("*") if p.is_file()}
    unchecked = sorted(_rel(p) for p in files - CHECKED)
    assert not unchecked, f"add a check for: {unchecked}"
    assert JOB_FILES and SBATCH and K8S and CLUSTER and len(DOCKERFILES) == 2 and COMPOSE


@pytest.mark.parametrize("path", sorted(CHECKED), ids=_rel)
def test_documented_kanplatform_commands_parse(path):
    for argv in commands_in(path.read_text()):
        assert_parses(argv, _rel(path))


# --- job files -----------------------------------------------------------------------


@pytest.mark.parametrize("path", JOB_FILES, ids=_rel)
def test_job_file_loads_and_its_command_runs_through_the_cli(path):
    job = load_job(path, check_paths=False)
    assert_parses(job.argv(), _rel(path))
    load_job(path)  # the config (and search) files exist under the working dir
    check_runnable(job)  # config + overrides load; a tune search fits the config


# --- SLURM ---------------------------------------------------------------------------


@pytest.mark.parametrize("template", SBATCH, ids=_rel)
@pytest.mark.parametrize("path", JOB_FILES, ids=_rel)
def test_sbatch_template_renders_and_passes_bash_n(template, path, tmp_path):
    job = load_job(path, check_paths=False)
    script = slurm.render(job, template)
    assert "{{" not in script and script.startswith("#!/bin/bash\n")
    assert re.search(r"^#SBATCH --nodes=\d+$", script, re.M)
    assert "ray start --head" in script and "ray start --address" in script
    out = tmp_path / "job.sbatch"
    out.write_text(script)
    done = subprocess.run(["bash", "-n", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    runs = [c for c in commands_in(script) if c[0] == job.run.command]
    assert runs == [job.argv(job_storage(job, "slurm"))]
    assert_parses(runs[0], f"{_rel(template)} rendered with {_rel(path)}")


# --- Ray cluster launcher --------------------------------------------------------------


@pytest.mark.parametrize("path", CLUSTER, ids=_rel)
def test_cluster_launcher_config_passes_rays_validation(path):
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load(path.read_text())
    validate_config(prepare_config(copy.deepcopy(config)))  # what `ray up` runs first
    broken = {**copy.deepcopy(config), "max_worker": 3}  # and the check has teeth
    with pytest.raises(Exception, match="max_worker"):
        validate_config(prepare_config(broken))


# --- Kubernetes (KubeRay) --------------------------------------------------------------
# Required fields from the KubeRay v1 CRDs (ray.io_rayclusters.yaml, ray.io_rayjobs.yaml),
# taking the stricter v1.0 lists (rayStartParams and min/maxReplicas were required there),
# plus what a pod needs to run at all (a container name and image).
HEAD_REQUIRED = ("rayStartParams", "template")
WORKER_REQUIRED = ("groupName", "minReplicas", "maxReplicas", "rayStartParams", "template")
CONTAINER_REQUIRED = ("name", "image")
PVC_REQUIRED = ("accessModes", "resources")


def _need(mapping: dict, keys: tuple[str, ...], where: str) -> None:
    assert isinstance(mapping, dict), f"{where} is not a mapping"
    missing = [k for k in keys if k not in mapping]
    assert not missing, f"{where} lacks required {missing}"


def _check_pod_template(template: dict, where: str) -> list[dict]:
    containers = template.get("spec", {}).get("containers")
    assert containers, f"{where}.spec.containers is empty"
    for i, c in enumerate(containers):
        _need(c, CONTAINER_REQUIRED, f"{where}.spec.containers[{i}]")
    return containers


def _check_ray_cluster_spec(spec: dict, where: str) -> None:
    _need(spec, ("headGroupSpec",), where)
    _need(spec["headGroupSpec"], HEAD_REQUIRED, f"{where}.headGroupSpec")
    images = {c["image"] for c in _check_pod_template(spec["headGroupSpec"]["template"],
                                                      f"{where}.headGroupSpec.template")}
    groups = spec.get("workerGroupSpecs", [])
    gpus = 0
    for i, group in enumerate(groups):
        w = f"{where}.workerGroupSpecs[{i}]"
        _need(group, WORKER_REQUIRED, w)
        assert group["minReplicas"] <= group.get("replicas", group["minReplicas"]) \
            <= group["maxReplicas"], f"{w}: replicas outside [minReplicas, maxReplicas]"
        for c in _check_pod_template(group["template"], f"{w}.template"):
            images.add(c["image"])
            gpus += int(c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0))
    assert gpus > 0, f"{where}: no worker asks for nvidia.com/gpu (a GPU cluster)"
    assert all("kanplatform" in i for i in images), f"{where}: not the project's image {images}"


@pytest.mark.parametrize("path", K8S, ids=_rel)
def test_kuberay_manifest_has_the_fields_its_crd_requires(path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert docs
    for doc in docs:
        _need(doc, ("apiVersion", "kind", "metadata", "spec"), _rel(path))
        assert doc["metadata"].get("name"), f"{_rel(path)}: metadata.name"
        kind = doc["kind"]
        if kind == "RayCluster":
            assert doc["apiVersion"] == "ray.io/v1"
            _check_ray_cluster_spec(doc["spec"], "spec")
        elif kind == "RayJob":
            assert doc["apiVersion"] == "ray.io/v1"
            spec = doc["spec"]
            _need(spec, ("entrypoint",), "spec")
            assert "rayClusterSpec" in spec or "clusterSelector" in spec
            if "rayClusterSpec" in spec:
                _check_ray_cluster_spec(spec["rayClusterSpec"], "spec.rayClusterSpec")
            if "runtimeEnvYAML" in spec:
                assert isinstance(yaml.safe_load(spec["runtimeEnvYAML"]), dict)
            argv = shlex.split(spec["entrypoint"])
            assert argv[:3] == ["python", "-m", "kanplatform"], spec["entrypoint"]
            assert_parses(argv[3:], f"{_rel(path)} spec.entrypoint")
        elif kind == "PersistentVolumeClaim":
            assert doc["apiVersion"] == "v1"
            _need(doc["spec"], PVC_REQUIRED, "spec")
        else:
            pytest.fail(f"{_rel(path)}: no check for kind {kind}")


# --- Docker ----------------------------------------------------------------------------


def _instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


@pytest.mark.parametrize("path", DOCKERFILES, ids=_rel)
def test_dockerfile_is_multistage_nonroot_with_the_cli_as_entrypoint(path):
    steps = _instructions(path.read_text())
    froms = [rest for word, rest in steps if word == "FROM"]
    assert len(froms) >= 2 and all(" AS " in f.upper() for f in froms), "multi-stage"
    stages = [f.split()[-1] for f in froms]
    for word, rest in steps:
        if word == "COPY" and rest.startswith("--from="):
            assert rest.split()[0].removeprefix("--from=") in stages
        elif word == "COPY":
            sources = [s for s in rest.split()[:-1] if not s.startswith("--")]
            for src in sources:
                assert (ROOT / src).exists(), f"COPY {src}: not in the build context"
    ignore = path.with_name(path.name + ".dockerignore")
    allowed = {line[1:] for line in ignore.read_text().splitlines() if line.startswith("!")}
    assert "*" in ignore.read_text().splitlines(), "the context is an allowlist"
    copied = {s for word, rest in steps if word == "COPY" and "--from" not in rest
              for s in rest.split()[:-1] if not s.startswith("--")}
    assert copied <= allowed, f"COPY of paths the .dockerignore drops: {copied - allowed}"
    users = [rest for word, rest in steps if word == "USER"]
    assert users and users[-1] not in ("root", "0"), "runs as a non-root user"
    final = steps[max(i for i, (w, _) in enumerate(steps) if w == "FROM"):]
    assert ("ENTRYPOINT", '["kanplatform"]') in final
    args = {rest.split("=")[0] for word, rest in steps if word == "ARG"}
    assert "TORCH_VERSION" in args
    runs = " ".join(rest for word, rest in steps if word == "RUN")
    assert '"torch==${TORCH_VERSION}"' in runs
    assert re.search(r'pip install [^&]*"\.(\[[a-z,]+\])?"', runs), "installs the project"
    deps = (ROOT / "pyproject.toml").read_text()
    assert "ray[tune,default]" in deps and "wandb" in deps


@pytest.mark.parametrize("path", COMPOSE, ids=_rel)
def test_compose_runs_a_ray_head_and_two_workers(path):
    compose = yaml.safe_load(path.read_text())
    services = compose["services"]
    heads = {n: s for n, s in services.items() if "--head" in s.get("command", [])}
    assert len(heads) == 1
    head = next(iter(heads))
    workers = [s for n, s in services.items() if n != head]
    assert len(workers) >= 2
    for worker in workers:
        assert f"--address={head}:6379" in worker["command"]
        assert head in worker.get("depends_on", [])
    built = [s["build"] for s in services.values() if "build" in s]
    assert built
    for build in built:
        context = (path.parent / build["context"]).resolve()
        assert (context / build["dockerfile"]).is_file()
    assert any("8265" in p for p in services[head].get("ports", []))
    assert {s["image"] for s in services.values()} == {services[head]["image"]}


# --- security defaults ------------------------------------------------------------------


def test_nothing_binds_or_advises_binding_every_interface():
    """No 0.0.0.0 in what we ship or document; the one exception is the RayJob's head pod,
    whose dashboard the KubeRay operator reaches through the cluster network, behind a token."""
    shipped = [*CHECKED, ROOT / "README.md", ROOT / "CONTRIBUTING.md",
               *(ROOT / "kanplatform").rglob("*.py")]
    offenders = [_rel(p) for p in shipped if "0.0.0.0" in p.read_text()]
    assert offenders == ["jobs/k8s/rayjob.yaml"], offenders
    rayjob = yaml.safe_load((ROOT / "jobs/k8s/rayjob.yaml").read_text())
    assert rayjob["spec"]["rayClusterSpec"]["authOptions"] == {"mode": "token"}


def test_token_auth_is_on_in_every_cluster_we_ship():
    for path in COMPOSE:
        for service in yaml.safe_load(path.read_text())["services"].values():
            env = service["environment"]
            assert env["RAY_AUTH_MODE"] == "token"
            assert env["RAY_AUTH_TOKEN"].startswith("${RAY_AUTH_TOKEN:?")  # required, no default
    cluster = yaml.safe_load((ROOT / "jobs/k8s/raycluster.yaml").read_text())["spec"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for group in groups:
        for container in group["template"]["spec"]["containers"]:
            env = {e["name"]: e for e in container["env"]}
            assert env["RAY_AUTH_MODE"]["value"] == "token"
            assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "auth_token"
    aws = yaml.safe_load((ROOT / "jobs/cluster/aws.yaml").read_text())
    starts = aws["head_start_ray_commands"] + aws["worker_start_ray_commands"]
    assert all("RAY_AUTH_MODE=token" in c for c in starts if "ray start" in c)
    for path in JOB_FILES:
        script = slurm.render(load_job(path, check_paths=False))
        assert "export RAY_AUTH_MODE=token\n" in script
        assert "disabled" not in script
