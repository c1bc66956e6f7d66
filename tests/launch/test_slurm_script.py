"""The rendered sbatch script run by bash against fake `srun`/`scontrol`/`ray`/`python`.

The fakes stand in for a 3-node allocation and record every call (arguments, node, the
environment a step sees) in one log, in order, so the test reads the script the way a
cluster admin would check it: what each `srun` step gets, which ports, whether the command
waits for every node, whether the token reaches every step, and whether any job-file value
can run as a command. Nothing here needs SLURM or a network.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kanplatform.cli import main as cli
from kanplatform.launch import slurm
from kanplatform.launch.jobfile import JobFileError, load_job

ROOT = Path(__file__).resolve().parents[2]
NODES = ["node1", "node2", "node3"]

# Each fake appends one JSON line {"prog", "argv", "env"} to $FAKE_LOG.
_RECORD = f"""#!{sys.executable}
import json, os, sys
KEEP = ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "FAKE_NODE", "WANDB_MODE", "PAYLOAD")
def record(prog, argv):
    with open(os.environ["FAKE_LOG"], "a") as fh:
        env = {{k: os.environ[k] for k in KEEP if k in os.environ}}
        fh.write(json.dumps({{"prog": prog, "argv": argv, "env": env}}) + "\\n")
"""

FAKES = {
    # srun [options] -w NODE CMD...: records the step, runs CMD "on" NODE
    "srun": _RECORD + """
args = sys.argv[1:]
record("srun", args)
i, node = 0, None
while i < len(args) and args[i].startswith("-"):
    if args[i] == "-w":
        node = args[i + 1]
        i += 1
    i += 1
os.environ["FAKE_NODE"] = node or "node1"
os.execvp(args[i], args[i:])
""",
    "scontrol": _RECORD + """
record("scontrol", sys.argv[1:])
assert sys.argv[1:3] == ["show", "hostnames"], sys.argv
print("\\n".join(os.environ["SLURM_JOB_NODELIST"].split(",")))
""",
    "hostname": _RECORD + """
record("hostname", sys.argv[1:])
print("10.0.0." + os.environ.get("FAKE_NODE", "node1").removeprefix("node"))
""",
    # ray start registers the node (unless $FAKE_NEVER_JOINS names it) and blocks; ray
    # status lists the registered nodes as Ray 2.60 prints them
    "ray": _RECORD + """
import time
args = sys.argv[1:]
record("ray", args)
state = os.environ["FAKE_STATE"]
if args[0] == "get-auth-token":
    print("generated-token")
elif args[0] == "start":
    node = os.environ.get("FAKE_NODE")
    if node != os.environ.get("FAKE_NEVER_JOINS"):
        time.sleep(0.5 if "--head" in args else 1.5)  # workers join after the head
        with open(state, "a") as fh:
            fh.write(node + "\\n")
    devnull = os.open(os.devnull, os.O_WRONLY)  # block like `ray start --block`, without
    os.dup2(devnull, 1)                         # holding the script's output pipes open
    os.dup2(devnull, 2)
    time.sleep(60)
elif args[0] == "status":
    nodes = open(state).read().split() if os.path.exists(state) else []
    print("======== Autoscaler status ========\\nNode status\\n" + "-" * 20 + "\\nActive:")
    for n in nodes:
        print(" 1 node_" + n.encode().hex())
    print("Pending:\\n (no pending nodes)\\nRecent failures:\\n (no failures)")
""",
    # python -m kanplatform ...: the job's command, recorded; python -c: the real one
    "python": _RECORD + f"""
if sys.argv[1:3] == ["-m", "kanplatform"]:
    record("kanplatform", sys.argv[3:])
    sys.exit(0)
os.execv({sys.executable!r}, [{sys.executable!r}, *sys.argv[1:]])
""",
}


def _fakes(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in FAKES.items():
        path = bin_dir / name
        path.write_text(text)
        path.chmod(0o755)
    return {
        "PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "FAKE_LOG": str(tmp_path / "calls.jsonl"),
        "FAKE_STATE": str(tmp_path / "joined.txt"),
        "SLURM_JOB_NODELIST": ",".join(NODES),
        "SLURM_JOB_ID": "4242",
        "HOME": str(tmp_path / "home"),
    }


def _job_file(tmp_path: Path, **changes) -> Path:
    data = {
        "name": "kan-study",
        "run": {"command": "tune", "config": "configs/experiment/quick.yaml",
                "search": "configs/search/asha_kan.yaml", "overrides": {"seed": 2}},
        "runtime_env": {"working_dir": str(ROOT), "env_vars": {"WANDB_MODE": "offline"}},
        "resources": {"cpus": 8, "gpus": 2, "nodes": 3},
        "storage_path": "/shared/kan results",
        "slurm": {"partition": "gpu", "time": "04:00:00", "setup": "true",
                  "join_timeout_s": 20},
    }
    for key, value in changes.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) else value
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _run_script(tmp_path: Path, script: str, **env: str) -> tuple[subprocess.CompletedProcess,
                                                                  list[dict]]:
    path = tmp_path / "job.sbatch"
    path.write_text(script)
    full = {**_fakes(tmp_path), **env}
    proc = subprocess.Popen(["bash", str(path)], env=full, cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        try:  # the blocking `ray start` fakes left in the background
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    log = Path(full["FAKE_LOG"])
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return done, calls


def _steps(calls: list[dict], word: str) -> list[list[str]]:
    return [c["argv"] for c in calls if c["prog"] == "srun" and word in c["argv"]]


def _value(argv: list[str], flag: str) -> str:
    return next(a.split("=", 1)[1] for a in argv if a.startswith(flag + "="))


def test_three_node_job_starts_ray_the_way_an_admin_would_accept(tmp_path):
    script = slurm.render(load_job(_job_file(tmp_path)))
    done, calls = _run_script(tmp_path, script)
    assert done.returncode == 0, done.stderr
    starts = _steps(calls, "start")
    assert len(starts) == 3
    for argv in starts:  # every ray start step gets its CPUs and GPUs explicitly
        assert "--cpus-per-task=8" in argv and "--gpus-per-task=2" in argv
        assert "--num-cpus=8" in argv and "--num-gpus=2" in argv
    assert [a[a.index("-w") + 1] for a in starts] == NODES
    head = next(a for a in starts if "--head" in a)
    port = _value(head, "--port")
    dash = _value(head, "--dashboard-port")
    assert port != "6379" and dash != "8265" and int(port) > 1024  # chosen free on the node
    assert _value(head, "--dashboard-host") == "127.0.0.1"
    for argv in starts:
        if argv is not head:
            assert _value(argv, "--address") == f"10.0.0.1:{port}"
    assert f"ssh -L 8265:127.0.0.1:{dash} node1" in done.stdout

    # the command ran once, after `ray status` listed all three nodes, with the token on
    order = [c["prog"] for c in calls]
    run = order.index("kanplatform")
    assert order.count("kanplatform") == 1 and "status" in calls[run - 1]["argv"]
    cmd = calls[run]
    assert cmd["argv"][:3] == ["tune", "configs/experiment/quick.yaml",
                               "configs/search/asha_kan.yaml"]
    assert cmd["argv"][-4:] == ["--output-dir", "/shared/kan results", "--address", "auto"]
    assert cmd["env"]["RAY_AUTH_MODE"] == "token"
    assert cmd["env"]["RAY_AUTH_TOKEN"] == "generated-token"
    assert cmd["env"]["RAY_ADDRESS"] == f"10.0.0.1:{port}"
    for c in calls:
        if c["prog"] == "srun":  # every step inherits the token
            assert c["env"]["RAY_AUTH_TOKEN"] == "generated-token", c
    assert "all 3 Ray node(s) joined" in done.stdout


def test_a_token_the_user_set_is_used_and_none_is_generated(tmp_path):
    script = slurm.render(load_job(_job_file(tmp_path)))
    done, calls = _run_script(tmp_path, script, RAY_AUTH_TOKEN="site-token")
    assert done.returncode == 0, done.stderr
    assert not [c for c in calls if c["prog"] == "ray" and c["argv"][0] == "get-auth-token"]
    assert {c["env"]["RAY_AUTH_TOKEN"] for c in calls} == {"site-token"}


def test_a_node_that_never_joins_fails_the_job_before_the_command(tmp_path):
    script = slurm.render(load_job(_job_file(tmp_path, slurm={"join_timeout_s": 2})))
    done, calls = _run_script(tmp_path, script, FAKE_NEVER_JOINS="node3")
    assert done.returncode == 1
    assert "only 2 of 3 Ray nodes joined within 2 s" in done.stderr
    assert "kanplatform" not in [c["prog"] for c in calls]


def test_a_fixed_ray_port_is_used_when_the_job_file_gives_one(tmp_path):
    script = slurm.render(load_job(_job_file(tmp_path, slurm={"ray_port": 7000})))
    done, calls = _run_script(tmp_path, script)
    assert done.returncode == 0, done.stderr
    head = next(a for a in _steps(calls, "start") if "--head" in a)
    assert _value(head, "--port") == "7000"


PAYLOADS = ["x\ntouch PWNED", "x; touch PWNED", "$(touch PWNED)", "`touch PWNED`"]


@pytest.mark.parametrize("payload", PAYLOADS, ids=["newline", "semicolon", "subst", "backtick"])
@pytest.mark.parametrize("field", [
    {"name": "{}"},
    {"slurm": {"partition": "{}"}},
    {"slurm": {"account": "{}"}},
    {"slurm": {"time": "{}"}},
    {"runtime_env": {"env_vars": {"{}": "1"}}},
    {"runtime_env": {"env_vars": {"RAY_AUTH_MODE": "{}"}}},
    {"run": {"overrides": {"{}": 1}}},
], ids=["name", "partition", "account", "time", "env-key", "auth-mode", "override-key"])
def test_validate_refuses_script_payloads_with_one_line(tmp_path, capsys, field, payload):
    (key, value), = field.items()
    filled = json.loads(json.dumps(value).replace("{}", json.dumps(payload)[1:-1])) \
        if isinstance(value, dict) else payload
    path = _job_file(tmp_path, **{key: filled})
    assert cli(["validate", str(path)]) == 1
    out = capsys.readouterr().out.strip()
    assert "allowed" in out or "use one of" in out, out
    assert out.count("\n") == 0 and "Traceback" not in out
    with pytest.raises(JobFileError):
        load_job(path)


@pytest.mark.parametrize("field", ["partition", "account", "time"])
def test_the_renderer_refuses_what_the_schema_would_have(tmp_path, field):
    """Defence in depth: a JobSpec built by hand, bypassing the schema, still cannot inject."""
    job = load_job(_job_file(tmp_path))
    for payload in PAYLOADS:
        bad = dataclasses.replace(job, slurm=dataclasses.replace(job.slurm, **{field: payload}))
        with pytest.raises(JobFileError, match=f"slurm.{field}"):
            slurm.render(bad)
    bad = dataclasses.replace(job, name="a\nb")
    with pytest.raises(JobFileError, match="`name`"):
        slurm.render(bad)
    env = dataclasses.replace(job.runtime_env, env_vars={"A;touch PWNED": "1"})
    with pytest.raises(JobFileError, match="env_vars"):
        slurm.render(dataclasses.replace(job, runtime_env=env))


def test_values_that_stay_data_are_quoted_and_arrive_literally(tmp_path):
    """Payloads in env values, override values, args and the storage path: the script runs,
    nothing is executed, and each reaches the command exactly as written."""
    payload = "$(touch PWNED); `touch PWNED` \n touch PWNED"
    path = _job_file(tmp_path, runtime_env={"env_vars": {"PAYLOAD": payload}},
                     run={"overrides": {"name": payload}, "args": ["--name", payload]},
                     storage_path=f"/shared/{payload}")
    script = slurm.render(load_job(path))
    done, calls = _run_script(tmp_path, script)
    assert done.returncode == 0, done.stderr
    assert not list(tmp_path.rglob("PWNED")) and not (ROOT / "PWNED").exists()
    (cmd,) = [c for c in calls if c["prog"] == "kanplatform"]
    assert cmd["env"]["PAYLOAD"] == payload
    assert f"name={payload}" in cmd["argv"]
    assert cmd["argv"][cmd["argv"].index("--name") + 1] == payload
    assert cmd["argv"][cmd["argv"].index("--output-dir") + 1] == f"/shared/{payload}"
