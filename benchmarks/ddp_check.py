"""Data-parallel training of a KAN on NCCL (one GPU per worker), checked against one process.

Each worker holds one GPU and half (``1 / workers``) of a fixed batch; DistributedDataParallel
averages the gradients over NCCL. Because the loss is a mean over equal shards, the averaged
gradient is the full batch's, so after ``--steps`` Adam steps every worker's parameters must
equal (to float32 rounding) those of the same model trained in one process on the whole batch,
and be identical across workers. It prints the per-step time and samples per second of both,
which kernel the layers ran on, and the largest parameter difference; exit status 1 if a check
fails. With one GPU it runs one worker (still on NCCL, world size 1) and says so.

    python benchmarks/ddp_check.py                    # GPUs: min(2, visible) workers, NCCL
    python benchmarks/ddp_check.py --device cpu       # checks this script: 2 workers on gloo

Needs only torch and this checkout (``PYTHONPATH=.`` if kanplatform is not installed): the
platform's own multi-GPU trials run the same DDP under Ray Train and Lightning
(``kanplatform.search.trainable``), which a bare GPU box does not have. Rendezvous on
127.0.0.1 (a free port), so nothing listens beyond this machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import socket
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from kanplatform.kernels import spline_backend
from kanplatform.nn import KAN

WIDTH = [32, 64, 8]


def make_data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed regression batch (the same on every worker): ``x`` partly beyond the grid."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, WIDTH[0], generator=gen) * 2.6 - 1.3
    w = torch.randn(WIDTH[0], WIDTH[-1], generator=gen) / WIDTH[0] ** 0.5
    return x, torch.sin(x @ w) + 0.1 * (x[:, : WIDTH[-1]] ** 2)


def make_model(device: torch.device, grid_size: int) -> KAN:
    return KAN(width=WIDTH, grid_size=grid_size, seed=0).to(device)


def train(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int,
          world: int = 1) -> tuple[list[float], float]:
    """``steps`` Adam steps on ``(x, y)``: the losses (of the whole batch: averaged over the
    ``world`` workers' shards) and the median step time in ms."""
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    losses, times = [], []
    for _ in range(steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        loss = loss.detach()
        if world > 1:
            dist.all_reduce(loss)
        losses.append(float(loss) / world)  # a host sync: the step has finished
        times.append(1e3 * (time.perf_counter() - t0))
    times = sorted(times[1:] or times)  # the first step compiles kernels: not a figure
    return losses, times[len(times) // 2]


def flat_params(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1).double() for p in model.parameters()])


def _device(kind: str, rank: int) -> torch.device:
    return torch.device("cuda", rank) if kind == "cuda" else torch.device("cpu")


def worker(rank: int, world: int, args: argparse.Namespace, port: int, out: str) -> None:
    """One data-parallel worker: its shard of the batch, DDP over NCCL (gloo on CPU)."""
    dev = _device(args.device, rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    else:
        torch.set_num_threads(1)  # CPU workers share the machine: no oversubscription
    backend = "nccl" if dev.type == "cuda" else "gloo"
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world, timeout=datetime.timedelta(seconds=120))
    try:
        x, y = make_data(args.batch)
        shard = args.batch // world
        xs = x[rank * shard:(rank + 1) * shard].to(dev)
        ys = y[rank * shard:(rank + 1) * shard].to(dev)
        model = make_model(dev, args.grid_size)
        layer = model.layers[0]
        kernel = spline_backend(xs, (layer.grid, layer.coef, layer.scale_sp, layer.scale_base),
                                layer.out_features, layer.spline_order)
        ddp = DistributedDataParallel(model, device_ids=[rank] if dev.type == "cuda" else None)
        losses, ms = train(ddp, xs, ys, args.steps, world)
        params = flat_params(model).to(dev)
        gathered = [torch.empty_like(params) for _ in range(world)]
        dist.all_gather(gathered, params)  # over the same backend the gradients used
        if rank == 0:
            spread = max(float((g - params).abs().max()) for g in gathered)
            torch.save({"params": params.cpu(), "losses": losses, "ms": ms, "kernel": kernel,
                        "backend": backend, "spread": spread}, out)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--workers", type=int, default=None,
                        help="default: min(2, GPUs visible) on cuda, 2 on cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=16384, help="the whole batch (all workers)")
    parser.add_argument("--grid-size", type=int, default=10)
    parser.add_argument("--tol", type=float, default=1e-4,
                        help="largest parameter difference to the one-process run")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: ddp_check.py needs CUDA GPUs (torch.cuda.is_available() is False); "
              "--device cpu checks the script on gloo", file=sys.stderr)
        return 2
    visible = torch.cuda.device_count() if args.device == "cuda" else 2
    world = args.workers or min(2, visible)
    if args.device == "cuda" and world > visible:
        print(f"error: --workers {world} but only {visible} GPU(s) are visible: each worker "
              "holds one GPU (NCCL needs one device per rank)", file=sys.stderr)
        return 2
    if args.batch % world:
        print(f"error: --batch {args.batch} is not a multiple of the {world} workers",
              file=sys.stderr)
        return 2
    note = ""
    if args.device == "cuda" and world < 2:
        note = (f"only {visible} GPU visible: ONE worker on NCCL (world size 1); the 2-worker "
                "data-parallel check needs two GPUs")
        print(note, flush=True)
    with tempfile.TemporaryDirectory(prefix="kan-ddp-") as tmp:
        out = str(Path(tmp) / "rank0.pt")
        t0 = time.perf_counter()
        mp.spawn(worker, args=(world, args, _free_port(), out), nprocs=world, join=True)
        ddp_wall = time.perf_counter() - t0
        res = torch.load(out, weights_only=True)
    dev = _device(args.device, 0)
    x, y = make_data(args.batch)
    single = make_model(dev, args.grid_size)
    losses, ms = train(single, x.to(dev), y.to(dev), args.steps)
    diff = float((flat_params(single).cpu() - res["params"]).abs().max())
    loss_diff = max(abs(a - b) for a, b in zip(losses, res["losses"]))
    checks = {
        "workers agree": res["spread"] == 0.0,
        f"matches one process (<= {args.tol:g})": diff <= args.tol,
        "loss decreased": res["losses"][-1] < res["losses"][0],
    }
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else "CPU"
    print(f"{name}: KAN {WIDTH} G={args.grid_size}, batch {args.batch} over {world} worker(s) on "
          f"{res['backend']}, {args.steps} Adam steps; layers on the '{res['kernel']}' kernel")
    print(f"  data-parallel: {res['ms']:.2f} ms/step (median), "
          f"{args.batch / res['ms'] * 1e3:,.0f} samples/s; {ddp_wall:.1f} s with start-up")
    print(f"  one process:   {ms:.2f} ms/step, {args.batch / ms * 1e3:,.0f} samples/s")
    print(f"  loss {res['losses'][0]:.4f} -> {res['losses'][-1]:.4f}; largest difference to "
          f"one process: parameters {diff:.2e}, losses {loss_diff:.2e}; across workers "
          f"{res['spread']:.1e}")
    for check, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}: {check}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "device": name, "workers": world, "backend": res["backend"],
            "kernel": res["kernel"], "note": note, "steps": args.steps, "batch": args.batch,
            "ddp_ms_per_step": res["ms"], "single_ms_per_step": ms, "param_diff": diff,
            "loss_diff": loss_diff, "worker_spread": res["spread"], "losses": res["losses"],
            "checks": checks}, indent=1))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
