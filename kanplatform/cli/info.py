"""``kanplatform info``: what this installation uses — versions, threads and devices, the
compiled KAN kernels, W&B's mode. ``--build`` builds the kernels now (in an image, or once on
each cluster node) and fails if they cannot be built.

Exit status: 0, or 1 when ``--build`` could not build the kernels.
"""

from __future__ import annotations

import argparse
import sys

# shown at the end of `kanplatform info --help`
EXAMPLES = (
    "kanplatform info",
    "kanplatform info --build      # build the compiled kernels now",
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``info`` arguments."""
    parser.add_argument("--build", action="store_true",
                        help="build the compiled KAN kernels now; exit 1 if they cannot be built")


def main(args: argparse.Namespace) -> int:
    import os
    import platform

    import torch

    from kanplatform import __version__
    from kanplatform._util.runinfo import versions
    from kanplatform.kernels import ckernel
    from kanplatform.tracking.wandb_run import resolve_mode

    if args.build:
        os.environ[ckernel.KERNEL_ENV] = "c"
    try:
        kernels = ckernel.describe()
    except ValueError as err:  # a bad KANPLATFORM_KERNEL value
        print(f"error: {err}", file=sys.stderr)
        return 2
    pkgs = versions()
    cuda = (f"{torch.cuda.device_count()} GPU(s), CUDA {torch.version.cuda}"
            if torch.cuda.is_available() else "no GPU")
    if kernels["mode"] == "triton":
        how = "the Triton kernel for every KAN layer (CPU tensors need TRITON_INTERPRET=1)"
    elif kernels["compiled"]:
        how = (f"compiled ({kernels['vector_bits']}-bit SIMD, "
               f"{'OpenMP' if kernels['openmp'] else 'no OpenMP'}): {kernels['path']}")
    else:
        how = f"PyTorch path ({kernels['error']})"
    try:
        from importlib.metadata import PackageNotFoundError, version

        triton = f"triton {version('triton')}: KAN layers on CUDA use it"
        if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
            triton += " (TRITON_INTERPRET is set: CPU interpreter only)"
    except PackageNotFoundError:
        triton = ("not installed: KAN layers on CUDA take the PyTorch path "
                  "(pip install 'kanplatform[gpu]')")
    rows = [
        ("kanplatform", __version__),
        ("python", platform.python_version()),
        ("torch", f"{torch.__version__}, {torch.get_num_threads()} CPU threads, {cuda}"),
        ("threads", _threads_line()),
        ("ray", pkgs.get("ray", "not installed")),
        ("wandb", f"{pkgs.get('wandb', 'not installed')}, default mode {resolve_mode()}"),
        ("KAN kernels", f"{how} [{ckernel.KERNEL_ENV}={kernels['mode']}]"),
        ("GPU kernel", triton),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    if args.build and not kernels["compiled"]:
        print(f"error: the KAN kernels cannot be built here: {kernels['error']}", file=sys.stderr)
        return 1
    return 0


def _threads_line() -> str:
    """A run's default torch threads and why (affinity, cgroup quota), OpenMP waiting."""
    import os

    from kanplatform._util.cpus import available_cpus, cgroup_cpu_limit
    from kanplatform.train.fitting import run_threads

    quota = cgroup_cpu_limit()
    limit = f"cgroup quota {quota:g} CPUs" if quota is not None else "no cgroup CPU quota"
    policy = os.environ.get("OMP_WAIT_POLICY") or "libgomp default"
    return (f"a run's default {run_threads(None)} (CPUs this process may use: "
            f"{available_cpus()}, {limit}); OMP_WAIT_POLICY {policy}")
